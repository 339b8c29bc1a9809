import type { Logger } from "../logger.ts";
import type { AddOptions, Job, JobQueue, Processor, QueueJobs, QueueName } from "./queue.types.ts";

interface Entry {
  job: Job;
  opts: AddOptions;
  runAt: number;
}

const KEEP_FINISHED_IDS = 50_000;

/**
 * The in-process queue behind the same interface as BullMQ, for the embedded default: one process
 * is the API and the workers. Job ids deduplicate as in BullMQ while the job is waiting, running or
 * recently finished; failed jobs retry with exponential backoff and jitter. Jobs live in memory, so
 * what must survive a crash goes through the outbox, which re-relays anything not yet relayed.
 */
export function createMemoryQueue(log: Logger): JobQueue & { drain(): Promise<void> } {
  const waiting = new Map<QueueName, Entry[]>();
  const processors = new Map<QueueName, { fn: Processor<QueueName>; concurrency: number; running: number }>();
  const known = new Set<string>();
  const finished: string[] = [];
  const running = new Set<Promise<void>>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const key = (name: string, id: string) => `${name}:${id}`;

  function remember(k: string) {
    finished.push(k);
    if (finished.length > KEEP_FINISHED_IDS) known.delete(finished.shift()!);
  }

  function schedule() {
    if (closed) return;
    if (timer) clearTimeout(timer);
    let next = Infinity;
    for (const list of waiting.values()) for (const e of list) next = Math.min(next, e.runAt);
    if (next === Infinity) return;
    timer = setTimeout(pump, Math.max(0, next - Date.now()));
    timer.unref?.();
  }

  function pump() {
    timer = undefined;
    const now = Date.now();
    for (const [name, list] of waiting) {
      const p = processors.get(name);
      if (!p) continue;
      list.sort((a, b) => a.runAt - b.runAt);
      while (p.running < p.concurrency && list.length > 0 && list[0]!.runAt <= now) {
        const entry = list.shift()!;
        p.running++;
        const run = execute(entry, p.fn).finally(() => {
          p.running--;
          running.delete(run);
          schedule();
        });
        running.add(run);
      }
    }
    schedule();
  }

  async function execute(entry: Entry, fn: Processor<QueueName>) {
    const k = key(entry.job.name, entry.job.id);
    try {
      await fn(entry.job);
      remember(k);
    } catch (err) {
      entry.job.attemptsMade++;
      const attempts = entry.opts.attempts ?? 1;
      if (entry.job.attemptsMade < attempts && !closed) {
        const base = entry.opts.backoffMs ?? 1000;
        const delay = base * 2 ** (entry.job.attemptsMade - 1);
        entry.runAt = Date.now() + Math.round(delay * (0.5 + Math.random() / 2));
        waiting.get(entry.job.name)!.push(entry);
        log.warn({ err, queue: entry.job.name, jobId: entry.job.id, attempt: entry.job.attemptsMade }, "job failed, will retry");
      } else {
        remember(k);
        log.error({ err, queue: entry.job.name, jobId: entry.job.id, attempt: entry.job.attemptsMade }, "job failed for good");
      }
    }
  }

  return {
    kind: "in-process",
    async add<N extends QueueName>(name: N, data: QueueJobs[N], opts: AddOptions) {
      if (closed) throw new Error("queue is closed");
      const k = key(name, opts.jobId);
      if (known.has(k)) return;
      known.add(k);
      const list = waiting.get(name) ?? [];
      waiting.set(name, list);
      list.push({ job: { id: opts.jobId, name, data, attemptsMade: 0 }, opts, runAt: Date.now() + (opts.delayMs ?? 0) });
      setImmediate(pump);
    },
    process<N extends QueueName>(name: N, fn: Processor<N>, opts?: { concurrency?: number }) {
      processors.set(name, { fn: fn as unknown as Processor<QueueName>, concurrency: opts?.concurrency ?? 1, running: 0 });
      if (!waiting.has(name)) waiting.set(name, []);
      setImmediate(pump);
    },
    async ping() {
      return !closed;
    },
    async drain() {
      while (running.size > 0) await Promise.allSettled([...running]);
    },
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      while (running.size > 0) await Promise.allSettled([...running]);
    },
  };
}
