import { defineErrors } from "../../gateway/src/http/problem.ts";

export const disputeErrors = defineErrors({
  "dispute-not-found": { status: 404, title: "Dispute not found" },
  "statement-line-not-found": { status: 422, title: "The statement has no such line" },
  "dispute-already-open": { status: 409, title: "The line already has an open dispute" },
  "dispute-not-open": { status: 409, title: "The dispute is already resolved" },
  "adjustment-amount-required": { status: 422, title: "An accepted dispute needs an adjustment amount" },
  "adjustment-amount-not-allowed": { status: 422, title: "Only an accepted dispute books an adjustment" },
});
