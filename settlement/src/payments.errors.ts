import { defineErrors } from "../../gateway/src/http/problem.ts";

/** Errors of paying and reconciling statements (codes shared with memberships where Stripe is concerned). */
export const paymentErrors = defineErrors({
  "statement-not-found": { status: 404, title: "Settlement statement not found" },
  "run-not-found": { status: 404, title: "Settlement run not found" },
  "import-not-found": { status: 404, title: "Reconciliation import not found" },
  "partner-not-found": { status: 404, title: "Partner not found" },
  "run-not-closed": { status: 409, title: "The month is not closed yet" },
  "nothing-to-instruct": { status: 409, title: "No obligation of the run can be instructed" },
  "stripe-account-missing": { status: 422, title: "A partner has no Stripe account for this rail" },
  "payee-account-missing": { status: 422, title: "A net creditor has no payee account" },
  "invalid-stripe-account": { status: 422, title: "The Stripe account id is not valid" },
  "invalid-statement-file": { status: 422, title: "The bank statement file cannot be read" },
  "invalid-signature": { status: 400, title: "The webhook signature does not verify" },
  "payments-not-configured": { status: 503, title: "Payments are not configured" },
  "payment-provider-error": { status: 502, title: "The payment provider refused or did not answer" },
});
