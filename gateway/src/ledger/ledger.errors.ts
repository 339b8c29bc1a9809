import { defineErrors } from "../http/problem.ts";

export const ledgerErrors = defineErrors({
  "insufficient-points": { status: 422, title: "The member does not have enough points" },
});
