import { defineErrors } from "../../gateway/src/http/problem.ts";

export const settlementErrors = defineErrors({
  "statement-not-found": { status: 404, title: "Settlement statement not found" },
  "run-not-found": { status: 404, title: "Settlement run not found" },
  "period-not-ended": { status: 422, title: "The period has not ended yet" },
  "previous-period-open": { status: 409, title: "An earlier period is not closed yet" },
  "run-closed": { status: 409, title: "The period is closed and never changes" },
  "run-not-closed": { status: 409, title: "The month is not closed yet" },
  "no-creditors": { status: 409, title: "No partner is owed money for the month" },
  "payee-account-missing": { status: 422, title: "A net creditor has no payee account" },
  "invalid-bank-account": { status: 422, title: "The bank account is not valid" },
  "partner-not-found": { status: 404, title: "Partner not found" },
});

/**
 * A clearing that does not balance or does not trace to the ledger. Thrown inside a step: the step
 * rolls back, the run undoes what it wrote and records this as its failure.
 */
export class ClearingImbalance extends Error {
  constructor(readonly problems: string[]) {
    super(`clearing does not balance: ${problems.join("; ")}`);
    this.name = "ClearingImbalance";
  }
}
