import { defineErrors } from "../http/problem.ts";

export const bankingErrors = defineErrors({
  "not-a-bank": { status: 403, title: "Only a bank partner may use this operation" },
  "not-a-merchant": { status: 403, title: "Only a merchant partner may set card-linked offers" },
  "partner-not-active": { status: 403, title: "The partner is not active in the network" },
  "payment-card-not-found": { status: 404, title: "Payment card not found" },
  "payment-card-already-linked": { status: 409, title: "This card token is already linked" },
  "offer-not-found": { status: 404, title: "Offer not found" },
  "offer-invalid": { status: 422, title: "The offer is not valid" },
  "purchase-not-found": { status: 404, title: "Card purchase not found" },
  "event-conflict": { status: 422, title: "The card event contradicts the purchase it names" },
  "file-invalid": { status: 422, title: "The file is not valid" },
  "sweep-not-found": { status: 404, title: "Round-up sweep not found" },
  "sweep-already-confirmed": { status: 409, title: "The sweep was already confirmed" },
  "confirmation-exceeds-sweep": { status: 422, title: "The confirmed amount exceeds the instructed amount" },
});
