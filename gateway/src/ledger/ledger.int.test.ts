import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../../../test/harness.ts";
import { createContract, createMember, createPartner } from "../../../test/factories/network.ts";
import type { Db } from "../infra/db.ts";
import { accountIds, createLedger, type Ledger } from "./ledger.service.ts";
import { POINTS } from "./ledger.types.ts";

let db: Db;
let ledger: Ledger;
let partnerId: string;
const now = new Date("2026-06-01T12:00:00Z");
const later = new Date("2028-06-01T12:00:00Z");

beforeAll(async () => {
  db = await createTestDb();
  ledger = createLedger({ db });
  partnerId = (await createPartner(db)).id;
  await createContract(db, partnerId);
});
afterAll(async () => {
  await db.destroy();
});

async function earn(memberId: string, points: bigint, expiresAt = later) {
  return db.transaction((trx) =>
    ledger.earn(trx, { memberId, partnerId, points, contractVersionId: null, earnedAt: now, expiresAt, ref: { type: "test", id: `e${Math.random()}` } }),
  );
}

describe("the ledger", () => {
  it("credits a lot and keeps balance, postings and lots in agreement", async () => {
    const m = (await createMember(db, partnerId)).id;
    await earn(m, 100n);
    expect((await ledger.balances(db, m)).points).toBe(100n);
    const lots = await ledger.openLots(db, m);
    expect(lots).toHaveLength(1);
    expect(lots[0]).toMatchObject({ issuingPartnerId: partnerId, amount: 100n, remaining: 100n });
    expect(await ledger.checkInvariants()).toEqual([]);
  });

  it("burns soonest-expiring lots first and records which", async () => {
    const m = (await createMember(db, partnerId)).id;
    await earn(m, 50n, new Date("2029-01-01T00:00:00Z"));
    const soon = await earn(m, 30n, new Date("2027-01-01T00:00:00Z"));
    const res = await db.transaction((trx) => ledger.burn(trx, { memberId: m, partnerId, points: 40n, occurredAt: now, now, ref: { type: "test", id: "b1" } }));
    expect(res.lots).toEqual([
      { lotId: soon.lotId, amount: 30n },
      { lotId: expect.any(String), amount: 10n },
    ]);
    expect((await ledger.balances(db, m)).points).toBe(40n);
    expect(await ledger.checkInvariants()).toEqual([]);
  });

  it("refuses a burn beyond the balance with insufficient-points", async () => {
    const m = (await createMember(db, partnerId)).id;
    await earn(m, 10n);
    await expect(
      db.transaction((trx) => ledger.burn(trx, { memberId: m, partnerId, points: 11n, occurredAt: now, now, ref: { type: "test", id: "b2" } })),
    ).rejects.toMatchObject({ code: "insufficient-points", status: 422 });
  });

  it("refuses, in the database, an entry that does not balance", async () => {
    const m = (await createMember(db, partnerId)).id;
    await earn(m, 10n);
    await expect(
      db.transaction(async (trx) => {
        await trx("ledger_entries").insert({ id: "ent_bad", kind: "adjust", occurred_at: now });
        await trx("ledger_postings").insert([
          { entry_id: "ent_bad", account_id: accountIds.points(m), asset: POINTS, amount: "5" },
          { entry_id: "ent_bad", account_id: accountIds.issuance(partnerId), asset: POINTS, amount: "-4" },
        ]);
      }),
    ).rejects.toThrow(/does not balance/);
    expect((await ledger.balances(db, m)).points).toBe(10n);
  });

  it("refuses, in the database, an entry with a single posting, and one unbalanced among many in a statement", async () => {
    const m = (await createMember(db, partnerId)).id;
    await earn(m, 10n);
    await expect(
      db.transaction(async (trx) => {
        await trx("ledger_entries").insert({ id: "ent_one", kind: "adjust", occurred_at: now });
        await trx("ledger_postings").insert({ entry_id: "ent_one", account_id: accountIds.points(m), asset: POINTS, amount: "5" });
      }),
    ).rejects.toThrow(/has 1 posting\(s\)/);
    await expect(
      db.transaction(async (trx) => {
        await trx("ledger_entries").insert([
          { id: "ent_ok", kind: "adjust", occurred_at: now },
          { id: "ent_off", kind: "adjust", occurred_at: now },
        ]);
        await trx("ledger_postings").insert([
          { entry_id: "ent_ok", account_id: accountIds.points(m), asset: POINTS, amount: "3" },
          { entry_id: "ent_ok", account_id: accountIds.issuance(partnerId), asset: POINTS, amount: "-3" },
          { entry_id: "ent_off", account_id: accountIds.points(m), asset: POINTS, amount: "2" },
          { entry_id: "ent_off", account_id: accountIds.issuance(partnerId), asset: POINTS, amount: "-1" },
        ]);
      }),
    ).rejects.toThrow(/ledger entry ent_off does not balance: PTS sums to 1/);
    expect((await ledger.balances(db, m)).points).toBe(10n);
  });

  it("moves each maintained balance by the sum of a statement's postings, and refuses a sum below the floor", async () => {
    const m = (await createMember(db, partnerId)).id;
    const n = (await createMember(db, partnerId)).id;
    await earn(m, 10n);
    await earn(n, 10n);
    const post = (id: string, member: string, amount: number) => [
      { entry_id: id, account_id: accountIds.points(member), asset: POINTS, amount: String(amount) },
      { entry_id: id, account_id: accountIds.issuance(partnerId), asset: POINTS, amount: String(-amount) },
    ];
    // Raw postings without lots: rolled back at the end, so the lots invariant holds for the other tests.
    const rollback = new Error("rollback");
    await expect(
      db.transaction(async (trx) => {
        await trx("ledger_entries").insert(["ent_s1", "ent_s2", "ent_s3"].map((id) => ({ id, kind: "adjust", occurred_at: now })));
        await trx("ledger_postings").insert([...post("ent_s1", m, 7), ...post("ent_s2", m, -4), ...post("ent_s3", n, 2)]);
        expect((await ledger.balances(trx, m)).points).toBe(13n);
        expect((await ledger.balances(trx, n)).points).toBe(12n);
        expect((await trx.raw("SELECT * FROM ledger_balance_mismatches()")).rows).toEqual([]);
        await expect(
          trx.transaction(async (sub) => {
            await sub("ledger_entries").insert(["ent_s4", "ent_s5"].map((id) => ({ id, kind: "adjust", occurred_at: now })));
            await sub("ledger_postings").insert([...post("ent_s4", m, 1), ...post("ent_s5", n, -13)]);
          }),
        ).rejects.toThrow(/ledger_accounts_balance_floor/);
        expect((await ledger.balances(trx, m)).points).toBe(13n);
        expect((await ledger.balances(trx, n)).points).toBe(12n);
        throw rollback;
      }),
    ).rejects.toBe(rollback);
    expect((await ledger.balances(db, m)).points).toBe(10n);
    expect(await ledger.checkInvariants()).toEqual([]);
  });

  it("refuses, in the database, a balance below the floor", async () => {
    const m = (await createMember(db, partnerId)).id;
    await earn(m, 10n);
    await expect(
      db.transaction(async (trx) => {
        await trx("ledger_entries").insert({ id: "ent_neg", kind: "adjust", occurred_at: now });
        await trx("ledger_postings").insert([
          { entry_id: "ent_neg", account_id: accountIds.points(m), asset: POINTS, amount: "-11" },
          { entry_id: "ent_neg", account_id: accountIds.issuance(partnerId), asset: POINTS, amount: "11" },
        ]);
      }),
    ).rejects.toThrow(/ledger_accounts_balance_floor/);
  });

  it("refuses, in the database, to change or delete history", async () => {
    const m = (await createMember(db, partnerId)).id;
    const { entryId } = await earn(m, 10n);
    await expect(db("ledger_postings").where({ entry_id: entryId }).update({ amount: "20" })).rejects.toThrow(/append-only/);
    await expect(db("ledger_postings").where({ entry_id: entryId }).delete()).rejects.toThrow(/append-only/);
    await expect(db("ledger_entries").where({ id: entryId }).delete()).rejects.toThrow(/append-only/);
  });

  it("holds, captures part and gives the rest back to the same lots", async () => {
    const m = (await createMember(db, partnerId)).id;
    const a = await earn(m, 60n, new Date("2027-01-01T00:00:00Z"));
    await earn(m, 40n, new Date("2028-01-01T00:00:00Z"));
    const ref = { type: "redemption", id: "red_1" };
    await db.transaction((trx) => ledger.hold(trx, { memberId: m, partnerId, points: 80n, occurredAt: now, now, ref }));
    expect(await ledger.balances(db, m)).toMatchObject({ points: 20n, held: 80n });
    await db.transaction((trx) => ledger.settleHold(trx, { memberId: m, partnerId, held: 80n, capture: 50n, occurredAt: now, ref }));
    expect(await ledger.balances(db, m)).toMatchObject({ points: 50n, held: 0n });
    const lots = await ledger.openLots(db, m);
    // 60 from the first lot and 20 from the second were held; 30 came back, latest-expiring first.
    expect(lots.map((l) => [l.id === a.lotId ? "a" : "b", l.remaining])).toEqual([
      ["a", 10n],
      ["b", 40n],
    ]);
    expect(await ledger.checkInvariants()).toEqual([]);
  });

  it("claws back into debt down to the floor, then into recovery; later earns repay the debt", async () => {
    const m = (await createMember(db, partnerId)).id;
    await earn(m, 100n);
    await db.transaction((trx) => ledger.burn(trx, { memberId: m, partnerId, points: 90n, occurredAt: now, now, ref: { type: "test", id: "b3" } }));
    const res = await db.transaction((trx) =>
      ledger.clawback(trx, { memberId: m, partnerId, points: 100n, preferLotIds: [], policy: "negative_balance", negativeFloor: -50n, occurredAt: now, ref: { type: "refund", id: "r1" } }),
    );
    expect(res).toMatchObject({ fromBalance: 10n, toDebt: 50n, toRecovery: 40n });
    expect(await ledger.balances(db, m)).toMatchObject({ points: 0n, debt: -50n, debtFloor: -50n });
    await earn(m, 70n);
    expect(await ledger.balances(db, m)).toMatchObject({ points: 20n, debt: 0n });
    expect(await ledger.checkInvariants()).toEqual([]);
  });

  it("expires lots past their date into breakage", async () => {
    const m = (await createMember(db, partnerId)).id;
    await earn(m, 25n, new Date("2026-07-01T00:00:00Z"));
    await earn(m, 5n, new Date("2029-07-01T00:00:00Z"));
    const res = await db.transaction((trx) => ledger.expireDue(trx, m, new Date("2026-07-02T00:00:00Z")));
    expect(res.total).toBe(25n);
    expect((await ledger.balances(db, m)).points).toBe(5n);
    expect(await ledger.checkInvariants()).toEqual([]);
  });
});

describe("the ledger's set-based functions", () => {
  // Migration 20261201180000: a plan PL/pgSQL cached while the network was small kept scanning every
  // account for the connection's life. A later CREATE OR REPLACE without the SET clauses would
  // silently drop them; this test says so.
  it("plan by key: sequential scans and JIT off in the functions that look rows up by key", async () => {
    const rows = (
      await db.raw(
        `SELECT p.proname, p.proconfig FROM pg_proc p
          WHERE p.proname IN ('ledger_earn_many', 'points_earn_batch', 'ledger_apply_postings', 'ledger_check_entries_balanced') ORDER BY p.proname`,
      )
    ).rows as Array<{ proname: string; proconfig: string[] | null }>;
    expect(rows.map((r) => r.proname)).toEqual(["ledger_apply_postings", "ledger_check_entries_balanced", "ledger_earn_many", "points_earn_batch"]);
    for (const r of rows) expect([...(r.proconfig ?? [])].sort(), r.proname).toEqual(["enable_seqscan=off", "jit=off"]);
  });
});
