import type { HubDeps } from "../hub.ts";

/** Housekeeping jobs of the hub itself. */
export function registerSystemJobs(deps: Pick<HubDeps, "db" | "queue" | "log" | "config">): void {
  deps.queue.process("system.echo", async (job) => {
    deps.log.info({ jobId: job.id, message: job.data.message }, "echo job ran");
  });
  deps.queue.process("system.idempotency-sweep", async () => {
    const removed = await deps.db("idempotency_keys").where("created_at", "<", deps.db.raw("now() - interval '48 hours'")).delete();
    deps.log.info({ removed }, "idempotency keys swept");
  });
}
