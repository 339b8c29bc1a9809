import { defineErrors } from "../http/problem.ts";

export const rulesErrors = defineErrors({
  "rule-not-found": { status: 404, title: "Rule not found" },
  "invalid-rule": { status: 422, title: "The rule is not valid" },
  "rule-not-draft": { status: 409, title: "Only a draft rule can be changed this way" },
  "no-tier-ladder": { status: 404, title: "No tier ladder is defined" },
  "invalid-ladder": { status: 422, title: "The tier ladder is not valid" },
  "no-matching-rule": { status: 422, title: "No active rule rewards this event" },
  "draw-not-found": { status: 404, title: "Draw not found" },
  "invalid-draw": { status: 422, title: "The draw is not valid" },
  "draw-not-ready": { status: 409, title: "The draw cannot take this step now" },
  "membership-not-found": { status: 404, title: "Membership not found" },
  "membership-plan-not-found": { status: 404, title: "Membership plan not found" },
  "invalid-signature": { status: 400, title: "The webhook signature does not verify" },
  "payments-not-configured": { status: 503, title: "Payments are not configured" },
  "payment-provider-error": { status: 502, title: "The payment provider refused or did not answer" },
});
