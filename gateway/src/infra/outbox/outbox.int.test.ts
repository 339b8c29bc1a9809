import { afterEach, describe, expect, it } from "vitest";
import { createTestDb, createTestQueue } from "../../../../test/harness.ts";
import { createLogger } from "../logger.ts";
import type { Db } from "../db.ts";
import type { JobQueue, QueueJobs } from "../queue/queue.types.ts";
import { createOutboxRelay, enqueueInTx } from "./outbox.ts";

const log = createLogger("silent");
let db: Db | undefined;
let queue: JobQueue | undefined;

afterEach(async () => {
  await queue?.close();
  await db?.destroy();
  db = queue = undefined;
});

async function until(cond: () => boolean | Promise<boolean>, ms = 10_000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("transactional outbox", () => {
  it("runs the jobs of committed transactions, once each, and never those of rolled-back ones", async () => {
    db = await createTestDb();
    queue = createTestQueue();
    const seen: string[] = [];
    queue.process("system.echo", async (job) => {
      seen.push(job.data.message);
    });
    await db.transaction((trx) => enqueueInTx(trx, "system.echo", { message: "committed" }, { jobId: "c1" }));
    await db
      .transaction(async (trx) => {
        await enqueueInTx(trx, "system.echo", { message: "rolled back" }, { jobId: "r1" });
        throw new Error("abort");
      })
      .catch(() => undefined);
    // the same job id twice (a relay that died after add, before commit) runs once
    await db.transaction((trx) => enqueueInTx(trx, "system.echo", { message: "committed" }, { jobId: "c1" }));

    const relay = createOutboxRelay({ db, queue, log, pollMs: 20 });
    relay.start();
    await until(async () => (await relay.pending()) === 0 && seen.length >= 1);
    await new Promise((r) => setTimeout(r, 200));
    await relay.stop();
    expect(seen).toEqual(["committed"]);
  });

  it("keeps jobs while the queue is unreachable and relays them when it is back", async () => {
    db = await createTestDb();
    const real = createTestQueue();
    queue = real;
    let up = false;
    const flaky: JobQueue = {
      ...real,
      kind: real.kind,
      async add<N extends keyof QueueJobs>(name: N, data: QueueJobs[N], o: { jobId: string }) {
        if (!up) throw new Error("connection refused");
        return real.add(name, data, o);
      },
    };
    const seen: string[] = [];
    real.process("system.echo", async (job) => {
      seen.push(job.data.message);
    });
    for (let i = 0; i < 5; i++) await enqueueInTx(db, "system.echo", { message: `m${i}` }, { jobId: `j${i}` });
    const relay = createOutboxRelay({ db, queue: flaky, log, pollMs: 20 });
    relay.start();
    await new Promise((r) => setTimeout(r, 150));
    expect(await relay.pending()).toBe(5);
    const row = await db("outbox").orderBy("id").first();
    expect(row.attempts).toBeGreaterThan(0);
    expect(row.last_error).toMatch(/connection refused/);
    up = true;
    await until(() => seen.length === 5);
    await relay.stop();
    expect(seen.sort()).toEqual(["m0", "m1", "m2", "m3", "m4"]);
  });
});
