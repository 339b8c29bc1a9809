import { defineErrors } from "../http/problem.ts";

export const memberErrors = defineErrors({
  "member-not-found": { status: 404, title: "Member not found" },
  "member-erased": { status: 422, title: "The member's personal data has been erased" },
  "customer-reference-taken": { status: 409, title: "This partner already enrolled a member with that customer reference" },
  "already-enrolled": { status: 409, title: "The member is already enrolled through this partner" },
  "unknown-referral-code": { status: 422, title: "No member holds that referral code" },
  "admission-criteria-not-met": { status: 422, title: "The programme is closed and the admission criteria are not met" },
});
