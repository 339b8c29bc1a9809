import { defineErrors } from "../http/problem.ts";

export const earnErrors = defineErrors({
  "partner-not-active": { status: 403, title: "The partner is not active in the network" },
  "no-contract-in-force": { status: 422, title: "No contract of the partner is in force at that date" },
  "currency-mismatch": { status: 422, title: "The currency is not the contract's currency" },
  "duplicate-transaction": { status: 409, title: "This partner transaction id was already used" },
  "burn-exceeds-amount": { status: 422, title: "The part paid with points exceeds the amount" },
  "transaction-not-found": { status: 404, title: "Transaction not found" },
  "refund-exceeds-transaction": { status: 422, title: "The refund exceeds what is left to refund" },
  "duplicate-refund": { status: 409, title: "This refund id was already used" },
  "redemption-not-found": { status: 404, title: "Redemption not found" },
  "redemption-not-held": { status: 409, title: "The redemption is no longer held" },
  "redemption-expired": { status: 409, title: "The hold expired and its points went back to the member" },
  "capture-exceeds-hold": { status: 422, title: "The capture exceeds the points held" },
});
