import type { HubDeps } from "../../gateway/src/hub.ts";
import type { ClearingService } from "./clearing.service.ts";
import { ClearingImbalance } from "./settlement.errors.ts";

/**
 * The run's jobs. `settlement.run` moves a month on (statements → waiting for clearing → network
 * check → close); `settlement.clear` (job id `clear:{partnerId}:{period}`) clears one partner. Both
 * re-read their row under a lock, so a duplicate or a retry after a crash does only what is left.
 * A run that does not balance is recorded as failed by the service and is not retried by the queue:
 * the operator looks at the failure and starts it again.
 */
export function registerSettlementJobs(deps: Pick<HubDeps, "queue" | "log" | "config">, clearing: ClearingService): void {
  const { queue, log } = deps;
  // Each worker clears this many statements at once, and a month's collection is dealt into as
  // many groups, so that many lanes collect it at once (more workers simply share the groups).
  const lanes = deps.config.SETTLEMENT_CLEAR_LANES;
  const quiet = async (work: () => Promise<unknown>) => {
    try {
      await work();
    } catch (err) {
      if (err instanceof ClearingImbalance) return;
      throw err;
    }
  };
  queue.process("settlement.run", async (job) => {
    await quiet(() => clearing.advanceRun(job.data.runId));
  });
  queue.process(
    "settlement.clear",
    async (job) => {
      await quiet(() => clearing.clearStatement(job.data.statementId, { lanes }));
      log.debug({ statementId: job.data.statementId }, "statement cleared");
    },
    { concurrency: lanes },
  );
}
