import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import type { Logger } from "../logger.ts";
import type { AddOptions, Job, JobQueue, Processor, QueueJobs, QueueName } from "./queue.types.ts";

function connectionFrom(url: string, forWorker: boolean) {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.pathname.length > 1 ? { db: Number(u.pathname.slice(1)) } : {}),
    ...(u.protocol === "rediss:" ? { tls: {} } : {}),
    // A worker waits out a Redis outage; a producer fails fast so the outbox keeps the job.
    maxRetriesPerRequest: forWorker ? null : 1,
    enableOfflineQueue: forWorker,
    connectTimeout: 2_000,
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]);
}

/**
 * BullMQ refuses custom job ids containing ":" (unless split into exactly three parts, a legacy
 * of repeatable jobs), and our deterministic ids use ":" freely (`evt:${id}`). Percent-encoding
 * ":" (and "%" itself, so the mapping stays one-to-one) keeps every id distinct and accepted.
 */
export function bullmqJobId(id: string): string {
  return id.replace(/[%:]/g, (c) => (c === "%" ? "%25" : "%3A"));
}

export function fromBullmqJobId(id: string): string {
  return id.replace(/%(25|3A)/g, (_m, code: string) => (code === "25" ? "%" : ":"));
}

/** BullMQ on Redis: the production queue, shared by every API and worker process. */
export function createBullmqQueue(url: string, log: Logger, opts: { prefix?: string } = {}): JobQueue {
  const prefix = opts.prefix ?? "hub";
  const queues = new Map<QueueName, Queue>();
  const workers: Worker[] = [];
  // A small connection of its own for readiness: it must fail fast, never queue commands offline.
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 1_000 });
  probe.on("error", () => undefined);

  function queue(name: QueueName): Queue {
    let q = queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: connectionFrom(url, false), prefix });
      q.on("error", (err) => log.warn({ err: err.message, queue: name }, "queue connection error"));
      queues.set(name, q);
    }
    return q;
  }

  return {
    kind: "bullmq",
    async add<N extends QueueName>(name: N, data: QueueJobs[N], o: AddOptions) {
      await withTimeout(
        queue(name).add(name, data, {
          jobId: bullmqJobId(o.jobId),
          ...(o.delayMs ? { delay: o.delayMs } : {}),
          attempts: o.attempts ?? 1,
          backoff: { type: "exponential", delay: o.backoffMs ?? 1000, jitter: 0.5 },
          removeOnComplete: { age: 24 * 3600, count: 50_000 },
          removeOnFail: { age: 7 * 24 * 3600 },
        }),
        3_000,
        `enqueue ${name}`,
      );
    },
    process<N extends QueueName>(name: N, processor: Processor<N>, o?: { concurrency?: number }) {
      const w = new Worker(
        name,
        async (job) => {
          await processor({ id: fromBullmqJobId(job.id!), name, data: job.data as QueueJobs[N], attemptsMade: job.attemptsMade } as Job<N>);
        },
        { connection: connectionFrom(url, true), prefix, concurrency: o?.concurrency ?? 1 },
      );
      w.on("error", (err) => log.warn({ err: err.message, queue: name }, "worker connection error"));
      w.on("failed", (job, err) => log.warn({ err: err.message, queue: name, jobId: job?.id, attempt: job?.attemptsMade }, "job failed"));
      workers.push(w);
    },
    async ping() {
      try {
        if (probe.status === "wait" || probe.status === "end") await withTimeout(probe.connect(), 1_000, "redis connect");
        return (await withTimeout(probe.ping(), 1_000, "redis ping")) === "PONG";
      } catch {
        return false;
      }
    },
    async close() {
      await Promise.allSettled(workers.map((w) => w.close()));
      await Promise.allSettled([...queues.values()].map((q) => q.close()));
      probe.disconnect();
    },
  };
}
