import { defineErrors } from "../http/problem.ts";

export const idempotencyErrors = defineErrors({
  "idempotency-key-reused": { status: 422, title: "This Idempotency-Key was used for another request" },
});
