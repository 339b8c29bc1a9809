import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, testConfig } from "../../../test/harness.ts";
import type { Db } from "../infra/db.ts";
import { createLogger } from "../infra/logger.ts";
import { createMemoryQueue } from "../infra/queue/memory.queue.ts";
import { registerSystemJobs } from "../system/system.jobs.ts";
import { createIdempotency, KEY_RETENTION_HOURS } from "./idempotency.service.ts";

let db: Db;
beforeAll(async () => {
  db = await createTestDb();
});
afterAll(async () => {
  await db?.destroy();
});

async function keyAged(key: string, hours: number) {
  await db("idempotency_keys").insert({
    principal: "cli_sweep",
    key,
    request_hash: "h",
    method: "POST",
    path: "/v1/earn",
    response_status: 201,
    response_body: JSON.stringify({ ok: true }),
    created_at: db.raw(`now() - (? * interval '1 hour')`, [hours]),
  });
}
const keys = async () => (await db("idempotency_keys").where({ principal: "cli_sweep" }).orderBy("key").pluck("key")) as string[];

describe("keeping Idempotency-Keys", () => {
  it("keeps every key at least 24 hours (48 by default) and sweeps the older ones, answering how many", async () => {
    expect(KEY_RETENTION_HOURS).toBeGreaterThanOrEqual(24);
    await keyAged("a-fresh", 0);
    await keyAged("b-25h", 25);
    await keyAged("c-47h", 47);
    await keyAged("d-49h", 49);
    await keyAged("e-30d", 24 * 30);
    const idem = createIdempotency({ db });

    expect(await idem.sweep()).toBe(2);
    expect(await keys()).toEqual(["a-fresh", "b-25h", "c-47h"]);
    expect(await idem.sweep()).toBe(0);
    // A shorter retention may be asked for, never one under 24 hours.
    expect(await idem.sweep(24)).toBe(2);
    expect(await keys()).toEqual(["a-fresh"]);
    await expect(idem.sweep(12)).rejects.toThrow(/at least 24 hours/);
    expect(await keys()).toEqual(["a-fresh"]);
  });

  it("sweeps from the daily job, the same way", async () => {
    await keyAged("f-72h", 72);
    const queue = createMemoryQueue(createLogger("silent"));
    registerSystemJobs({ db, queue, log: createLogger("silent"), config: testConfig() });
    await queue.add("system.idempotency-sweep", {}, { jobId: "idempotency-sweep:test" });
    await new Promise((r) => setImmediate(r)); // the in-process queue starts jobs on the next turn
    await queue.drain();
    expect(await keys()).toEqual(["a-fresh"]);
    await queue.close();
  });
});
