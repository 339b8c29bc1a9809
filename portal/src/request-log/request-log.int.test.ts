import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../../../test/harness.ts";
import { logCall } from "../../../test/request-log.ts";
import { createLogger } from "../../../gateway/src/infra/logger.ts";
import { fixedClock } from "../../../gateway/src/infra/clock.ts";
import type { Db } from "../../../gateway/src/infra/db.ts";
import * as ring from "../../../migrations/20261202020000_request_log_ring.ts";
import { createRequestLog, type RequestLog } from "./request-log.ts";

let db: Db;
beforeAll(async () => {
  db = await createTestDb();
});
afterAll(async () => db.destroy());

const clock = fixedClock(new Date("2026-12-01T23:59:59.500Z"));
const logs: RequestLog[] = [];
const open = (cap: number) => {
  const l = createRequestLog({ db, clock, log: createLogger("silent"), cap, flushMs: 60_000 });
  logs.push(l);
  return l;
};
afterAll(async () => {
  for (const l of logs) await l.close();
});

const ids = async (log: RequestLog, partnerId: string, opts: { status?: "errors" } = {}) =>
  (await log.recent(partnerId, { limit: 1000, ...opts })).map((c) => c.request_id);

describe("the partners' request log", () => {
  it("keeps each partner's last `cap` calls, newest first, in a ring that wraps across flushes and within one", async () => {
    const log = open(5);
    for (let i = 1; i <= 3; i++) logCall(log, "ptn_a", `a${i}`);
    logCall(log, "ptn_b", "b1");
    await log.flush();
    expect(await ids(log, "ptn_a")).toEqual(["a3", "a2", "a1"]);

    for (let i = 4; i <= 7; i++) logCall(log, "ptn_a", `a${i}`);
    await log.flush();
    expect(await ids(log, "ptn_a")).toEqual(["a7", "a6", "a5", "a4", "a3"]);

    // More than the cap in one flush: the last five are kept, the numbering goes on.
    for (let i = 8; i <= 19; i++) logCall(log, "ptn_a", `a${i}`, i % 4 === 0 ? 422 : 201);
    await log.flush();
    expect(await ids(log, "ptn_a")).toEqual(["a19", "a18", "a17", "a16", "a15"]);
    expect(await ids(log, "ptn_a", { status: "errors" })).toEqual(["a16"]);
    expect((await log.recent("ptn_a", { limit: 2 })).map((c) => [c.id, c.route, c.status, c.client_id])).toEqual([
      ["19", "/v1/earn", 201, "cli_ptn_a"],
      ["18", "/v1/earn", 201, "cli_ptn_a"],
    ]);

    // One partner's calls never show in another's log; the table holds at most `cap` rows a partner.
    expect(await ids(log, "ptn_b")).toEqual(["b1"]);
    expect(await ids(log, "ptn_c")).toEqual([]);
    const rows = await db("portal_request_log").whereIn("partner_id", ["ptn_a", "ptn_b"]).select("partner_id").count("* as n").groupBy("partner_id").orderBy("partner_id");
    expect(rows.map((r) => Number(r.n))).toEqual([5, 1]);
    expect(String((await db("portal_request_log_heads").where({ partner_id: "ptn_a" }).first("seq")).seq)).toBe("19");
  });

  it("counts every call and every error per partner and UTC day, beyond the cap", async () => {
    const log = open(2);
    for (let i = 0; i < 7; i++) logCall(log, "ptn_u", `u${i}`, i < 3 ? 500 : 200);
    await log.flush();
    logCall(log, "ptn_u", "u7", 404);
    await log.flush();
    expect((await log.callsPerDay("ptn_u", "2026-12-01")).map((d) => ({ ...d, day: new Date(d.day).toISOString().slice(0, 10) }))).toEqual([
      { day: "2026-12-01", calls: 8, errors: 4 },
    ]);
  });

  it("numbers one partner's calls without gap or repeat when two processes flush at once", async () => {
    const one = open(1000);
    const two = open(1000);
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 40; i++) {
        logCall(one, "ptn_x", `one-${round}-${i}`);
        logCall(two, "ptn_x", `two-${round}-${i}`);
      }
      await Promise.all([one.flush(), two.flush()]);
    }
    const seqs = (await db("portal_request_log").where({ partner_id: "ptn_x" }).orderBy("seq").select("seq")).map((r) => Number(r.seq));
    expect(seqs).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
    expect(new Set(await ids(one, "ptn_x")).size).toBe(400);
  });

  it("keeps the last 1,000 calls of each partner through the migration, down and up", async () => {
    const log = open(1000);
    for (let i = 1; i <= 1003; i++) logCall(log, "ptn_m", `m${i}`);
    await log.flush();
    await ring.down(db);
    expect(Number((await db("portal_request_log").where({ partner_id: "ptn_m" }).count("* as n").first())!.n)).toBe(1000);
    await ring.up(db);
    const kept = await ids(log, "ptn_m");
    expect(kept).toHaveLength(1000);
    expect([kept[0], kept[999]]).toEqual(["m1003", "m4"]);
    // And it goes on from there.
    logCall(log, "ptn_m", "m1004");
    await log.flush();
    expect((await ids(log, "ptn_m")).slice(0, 2)).toEqual(["m1004", "m1003"]);
  });
});
