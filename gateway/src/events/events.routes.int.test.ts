import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { createPartner } from "../../../test/factories/network.ts";
import { bearer, partnerToken } from "../../../test/factories/auth.ts";
import { expectRouteSecurity } from "../../../test/security.ts";
import { json } from "../../../test/http.ts";
import { recordEvent, type EventType } from "./events.service.ts";
import { createDb, type DbOrTrx } from "../infra/db.ts";
import { until } from "../../../test/webhook-receiver.ts";

let t: TestHub;
let partnerId: string;
let token: string;

beforeAll(async () => {
  t = await startTestHub({ workers: false });
  partnerId = (await createPartner(t.db)).id;
  token = await partnerToken(t, partnerId, ["events:read"]);
});
afterAll(() => t.close());

const feed = async (query = "", tok = token) => {
  const res = await t.fetch(`/v1/events${query}`, { headers: bearer(tok) });
  return { status: res.status, body: await json(res) };
};

/**
 * The feed shows an event once every transaction older than it has finished — on a shared server
 * that includes other test files' transactions — so a test waits for what it just committed.
 */
async function feedUntil(query: string, tok: string, count: number) {
  let last: Awaited<ReturnType<typeof feed>> | undefined;
  await until(async () => {
    last = await feed(query, tok);
    return last.body.items.length >= count;
  }, { what: `${count} events in the feed`, timeoutMs: 10_000 });
  return last!;
}

function emit(db: DbOrTrx, type: EventType, occurredAt: Date, data: Record<string, unknown> = {}, pid = partnerId) {
  return recordEvent(db, { type, partnerId: pid, occurredAt, data });
}

describe("GET /v1/events", () => {
  it("pages through the partner's own events in order and keeps a cursor to poll with", async () => {
    const p = (await createPartner(t.db)).id;
    const tok = await partnerToken(t, p, ["events:read"]);
    const empty = await feed("", tok);
    expect(empty).toEqual({ status: 200, body: { items: [], has_more: false, next_cursor: null } });

    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await t.db.transaction((trx) => emit(trx, "earn.posted", new Date(Date.UTC(2026, 10, 1, 0, i)), { earn_id: `ern_${i}`, points: i }, p)));
    await t.db.transaction((trx) => emit(trx, "earn.posted", new Date(), {}, partnerId)); // someone else's
    await feedUntil("?limit=200", tok, 5);

    const first = await feed("?limit=2", tok);
    expect(first.body.items.map((e: { id: string }) => e.id)).toEqual(ids.slice(0, 2));
    expect(first.body.items[0]).toEqual({ id: ids[0], type: "earn.posted", occurred_at: "2026-11-01T00:00:00.000Z", data: { earn_id: "ern_0", points: 0 } });
    expect(first.body.has_more).toBe(true);
    const second = await feed(`?limit=2&cursor=${first.body.next_cursor}`, tok);
    expect(second.body.items.map((e: { id: string }) => e.id)).toEqual(ids.slice(2, 4));
    const third = await feed(`?limit=2&cursor=${second.body.next_cursor}`, tok);
    expect(third.body.items.map((e: { id: string }) => e.id)).toEqual(ids.slice(4));
    expect(third.body.has_more).toBe(false);

    // Polling at the end: nothing new, the same cursor back; then only what is new.
    const idle = await feed(`?cursor=${third.body.next_cursor}`, tok);
    expect(idle.body).toEqual({ items: [], has_more: false, next_cursor: third.body.next_cursor });
    const later = await t.db.transaction((trx) => emit(trx, "tier.changed", new Date(), { tier: "gold" }, p));
    const fresh = await feedUntil(`?cursor=${idle.body.next_cursor}`, tok, 1);
    expect(fresh.body.items.map((e: { id: string }) => e.id)).toEqual([later]);
  });

  it("filters by type and by time range", async () => {
    const p = (await createPartner(t.db)).id;
    const tok = await partnerToken(t, p, ["events:read"]);
    const at = (d: number) => new Date(Date.UTC(2026, 9, d));
    const a = await t.db.transaction((trx) => emit(trx, "earn.posted", at(1), {}, p));
    const b = await t.db.transaction((trx) => emit(trx, "burn.posted", at(2), {}, p));
    const c = await t.db.transaction((trx) => emit(trx, "tier.changed", at(3), {}, p));
    const ids = (r: { body: { items: Array<{ id: string }> } }) => r.body.items.map((e) => e.id);
    await feedUntil("", tok, 3);
    expect(ids(await feed("?type=burn.posted", tok))).toEqual([b]);
    expect(ids(await feed("?type=earn.posted&type=tier.changed", tok))).toEqual([a, c]);
    expect(ids(await feed(`?since=${at(2).toISOString()}`, tok))).toEqual([b, c]);
    expect(ids(await feed(`?until=${at(2).toISOString()}`, tok))).toEqual([a]);
    expect(ids(await feed(`?since=${at(2).toISOString()}&until=${at(3).toISOString()}&type=burn.posted`, tok))).toEqual([b]);
  });

  it("rejects a forged cursor and bad parameters", async () => {
    for (const q of ["?cursor=garbage", `?cursor=${Buffer.from("1:x").toString("base64url")}`, "?limit=0", "?limit=201", "?since=yesterday"]) {
      const r = await feed(q);
      expect(r.status, q).toBe(422);
      expect(r.body.code, q).toBe("validation-error");
    }
  });

  it("runs the shared security set, and shows a partner none of another partner's events", async () => {
    await expectRouteSecurity(t, { method: "GET", path: "/v1/events", scopes: ["events:read"], audience: "partner", partnerId });
    const mine = await t.db.transaction((trx) => emit(trx, "earn.posted", new Date()));
    const other = await partnerToken(t, (await createPartner(t.db)).id, ["events:read"]);
    expect((await feed("", other)).body.items).toEqual([]);
    await until(async () => (await feed("?limit=200")).body.items.some((e: { id: string }) => e.id === mine), { what: "my event" });
    const wrongScope = await partnerToken(t, partnerId, ["webhooks:manage"]);
    expect((await feed("", wrongScope)).status).toBe(403);
  });
});

describe.runIf(process.env.DATABASE_URL)("GET /v1/events with concurrent writers", () => {
  it("never skips an event committed late by a transaction that started first", async () => {
    const p = (await createPartner(t.db)).id;
    const tok = await partnerToken(t, p, ["events:read"]);
    await t.db.transaction((trx) => emit(trx, "earn.posted", new Date(), { n: 0 }, p));
    const start = (await feedUntil("", tok, 1)).body.next_cursor as string;

    const slow = await t.db.transaction();
    const late = await emit(slow, "earn.posted", new Date(), { n: 1 }, p); // takes the lower seq, commits last
    const quick = await t.db.transaction((trx) => emit(trx, "earn.posted", new Date(), { n: 2 }, p));
    const meanwhile = await feed(`?cursor=${start}`, tok);
    // Served "quick" now would move the partner's cursor past "late" for ever: it must wait.
    expect(meanwhile.body.items).toEqual([]);
    await slow.commit();
    const after = await feedUntil(`?cursor=${meanwhile.body.next_cursor}`, tok, 2);
    expect(after.body.items.map((e: { id: string }) => e.id).sort()).toEqual([late, quick].sort());
  });

  it("is not held back by a long transaction in another database on the same server", async () => {
    const p = (await createPartner(t.db)).id;
    const tok = await partnerToken(t, p, ["events:read"]);
    const elsewhere = await createDb({ url: process.env.DATABASE_URL!, poolMax: 1 });
    const stuck = await elsewhere.transaction();
    try {
      await stuck.raw("SELECT pg_current_xact_id()"); // now it holds a transaction id, and keeps it
      const id = await t.db.transaction((trx) => emit(trx, "earn.posted", new Date(), {}, p));
      const page = await feed("", tok);
      expect(page.body.items.map((e: { id: string }) => e.id)).toEqual([id]);
    } finally {
      await stuck.rollback();
      await elsewhere.destroy();
    }
  });
});
