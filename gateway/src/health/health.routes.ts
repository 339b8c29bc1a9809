import type { Db } from "../infra/db.ts";
import type { JobQueue } from "../infra/queue/queue.types.ts";
import { httpErrors } from "../http/problem.ts";
import type { Handlers } from "../http/router.ts";

async function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error("timeout")), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export function healthRoutes(deps: { db: Db; queue: JobQueue }): Handlers {
  return {
    /** Alive: answers as long as the event loop turns, whatever the dependencies do. */
    async getHealth() {
      return { status: 200, body: { status: "ok" } };
    },
    /** Ready: the database answers a query and the queue's backend answers a ping. */
    async getReadiness() {
      const [database, queue] = await Promise.all([
        within(deps.db.raw("select 1"), 2_000).then(
          () => "ok" as const,
          () => "down" as const,
        ),
        within(deps.queue.ping(), 2_000).then(
          (up) => (up ? ("ok" as const) : ("down" as const)),
          () => "down" as const,
        ),
      ]);
      const checks = { database, queue };
      if (database !== "ok" || queue !== "ok") {
        throw httpErrors.make("not-ready", `Down: ${Object.entries(checks).filter(([, v]) => v === "down").map(([k]) => k).join(", ")}.`, { checks });
      }
      return { status: 200, body: { status: "ready", checks } };
    },
  };
}
