import type { HubDeps } from "../../gateway/src/hub.ts";
import type { StripeRail } from "./stripe-rail.ts";

/**
 * `settlement.stripe-pay` (job id `stp:{obligationId}:{instruction}`): one Stripe transfer or
 * invoice. The rail re-reads the obligation and does nothing if it is no longer its instruction to
 * act on; Stripe's idempotency keys make a retry after a lost answer return the first result.
 */
export function registerPaymentJobs(deps: Pick<HubDeps, "queue">, stripeRail: StripeRail): void {
  deps.queue.process("settlement.stripe-pay", async (job) => {
    await stripeRail.pay(job.data.obligationId, job.data.instruction);
  });
}
