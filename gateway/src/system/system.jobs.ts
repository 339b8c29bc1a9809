import type { HubDeps } from "../hub.ts";
import { createIdempotency } from "../idempotency/idempotency.service.ts";

/** Housekeeping jobs of the hub itself. */
export function registerSystemJobs(deps: Pick<HubDeps, "db" | "queue" | "log" | "config">): void {
  deps.queue.process("system.echo", async (job) => {
    deps.log.info({ jobId: job.id, message: job.data.message }, "echo job ran");
  });
  deps.queue.process("system.idempotency-sweep", async () => {
    const removed = await createIdempotency({ db: deps.db }).sweep();
    deps.log.info({ removed }, "idempotency keys swept");
  });
}
