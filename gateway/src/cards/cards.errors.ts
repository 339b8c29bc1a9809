import { defineErrors } from "../http/problem.ts";

export const cardErrors = defineErrors({
  "card-not-found": { status: 404, title: "Card not found" },
  "card-blocked": { status: 422, title: "The card is blocked" },
  "card-lost": { status: 422, title: "The card was reported lost" },
  "card-replaced": { status: 422, title: "The card was replaced by another card" },
  "card-expired": { status: 422, title: "The card has expired" },
  "invalid-card-transition": { status: 409, title: "The card cannot move to that status from its current one" },
  "not-card-issuer": { status: 403, title: "Only the card's co-brand partner may change or replace it" },
  "card-number-collision": { status: 503, title: "No free card number was found; retry" },
});
