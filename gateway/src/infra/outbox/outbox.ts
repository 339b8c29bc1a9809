import type { Knex } from "knex";
import type { Db, DbOrTrx } from "../db.ts";
import type { Logger } from "../logger.ts";
import type { AddOptions, JobQueue, QueueJobs, QueueName } from "../queue/queue.types.ts";

interface OutboxRow {
  id: bigint;
  queue: QueueName;
  job_id: string;
  payload: unknown;
  attempts: number;
}

/**
 * Write a job into the outbox inside the caller's transaction: it reaches the queue only if the
 * transaction commits, and it reaches it even if Redis is down right now.
 */
export async function enqueueInTx<N extends QueueName>(
  trx: DbOrTrx,
  queue: N,
  data: QueueJobs[N],
  opts: Pick<AddOptions, "jobId"> & { delayMs?: number },
): Promise<void> {
  await trx("outbox").insert({
    queue,
    job_id: opts.jobId,
    payload: JSON.stringify(data),
    ...(opts.delayMs ? { available_at: trx.raw(`now() + (? * interval '1 millisecond')`, [opts.delayMs]) } : {}),
  });
}

/**
 * A change and the job that must follow it, in one statement (`WITH change AS (…) INSERT INTO outbox`):
 * one round trip instead of two, the same guarantees as enqueueInTx after the change.
 */
export async function enqueueWithInTx<N extends QueueName>(
  trx: DbOrTrx,
  change: { sql: string; bindings: readonly Knex.RawBinding[] },
  queue: N,
  data: QueueJobs[N],
  opts: Pick<AddOptions, "jobId">,
): Promise<void> {
  await trx.raw(`WITH change AS (${change.sql}) INSERT INTO outbox (queue, job_id, payload) VALUES (?, ?, ?::jsonb)`, [
    ...change.bindings,
    queue,
    opts.jobId,
    JSON.stringify(data),
  ]);
}

/** Many jobs of one queue into the outbox in one statement (a batch's events); same guarantees. */
export async function enqueueManyInTx<N extends QueueName>(trx: DbOrTrx, queue: N, jobs: Array<{ data: QueueJobs[N]; jobId: string }>): Promise<void> {
  if (jobs.length === 0) return;
  await trx("outbox").insert(jobs.map((j) => ({ queue, job_id: j.jobId, payload: JSON.stringify(j.data) })));
}

export interface OutboxRelay {
  /** Moves up to `limit` committed jobs to the queue; returns how many moved. */
  relayOnce(limit?: number): Promise<number>;
  start(): void;
  /** Asks the relay to look now rather than at its next tick. */
  nudge(): void;
  stop(): Promise<void>;
  pending(): Promise<number>;
}

/** Default delivery options per queue (attempts, backoff); features add theirs here. */
export type JobDefaults = Partial<Record<QueueName, Omit<AddOptions, "jobId">>>;

export function createOutboxRelay(deps: { db: Db; queue: JobQueue; log: Logger; pollMs: number; defaults?: JobDefaults }): OutboxRelay {
  const { db, queue, log } = deps;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = true;
  let again = false;
  let lastFailureLogged = 0;

  async function relayOnce(limit = 200): Promise<number> {
    return db.transaction(async (trx) => {
      // SKIP LOCKED: several worker processes relay side by side without taking the same rows.
      const rows: OutboxRow[] = await trx("outbox")
        .select("id", "queue", "job_id", "payload", "attempts")
        .whereNull("relayed_at")
        .andWhere("available_at", "<=", trx.fn.now())
        .orderBy("id")
        .limit(limit)
        .forUpdate()
        .skipLocked();
      if (rows.length === 0) return 0;
      const done: bigint[] = [];
      let failure: unknown;
      for (const row of rows) {
        try {
          // The job id is deterministic, so a relay that dies after add() but before commit is
          // harmless: the next add() of the same id is ignored by the queue.
          await queue.add(row.queue, row.payload as never, { ...deps.defaults?.[row.queue], jobId: row.job_id });
          done.push(row.id);
        } catch (err) {
          failure = err;
          break;
        }
      }
      if (done.length > 0) await trx("outbox").whereIn("id", done.map(String)).update({ relayed_at: trx.fn.now() });
      if (failure) {
        const first = rows[done.length]!;
        await trx("outbox")
          .where("id", String(first.id))
          .update({ attempts: first.attempts + 1, last_error: String((failure as Error).message ?? failure).slice(0, 500) });
        if (Date.now() - lastFailureLogged > 10_000) {
          lastFailureLogged = Date.now();
          log.warn({ err: (failure as Error).message, waiting: rows.length - done.length }, "outbox relay cannot reach the queue; will retry");
        }
      }
      return done.length;
    });
  }

  async function loop() {
    if (stopped) return;
    let moved = 0;
    try {
      moved = await relayOnce();
    } catch (err) {
      log.warn({ err: (err as Error).message }, "outbox relay pass failed");
    }
    if (stopped) return;
    const delay = moved > 0 || again ? 0 : deps.pollMs;
    again = false;
    timer = setTimeout(tick, delay);
    timer.unref?.();
  }

  function tick() {
    timer = undefined;
    running = loop().finally(() => {
      running = undefined;
    });
  }

  return {
    relayOnce,
    start() {
      if (!stopped) return;
      stopped = false;
      tick();
    },
    nudge() {
      if (stopped) return;
      if (running) {
        again = true;
        return;
      }
      if (timer) clearTimeout(timer);
      tick();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
    async pending() {
      const row = await db("outbox").whereNull("relayed_at").count<{ count: bigint }[]>({ count: "*" }).first();
      return Number(row?.count ?? 0);
    },
  };
}
