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

  // Migration 20261201200000: the references of ledger rows are checked once per statement, not by
  // row-level foreign keys. The database must refuse exactly what the foreign keys refused.
  it("refuses, in the database, a ledger row naming a member, partner, contract version, account or entry that does not exist", async () => {
    const m = (await createMember(db, partnerId)).id;
    const { entryId } = await earn(m, 10n);
    const refused = async (write: (trx: Db) => Promise<unknown>, constraint: string) => {
      const err = await db.transaction(write).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, constraint).toMatchObject({ code: "23503", constraint });
    };
    const entry = (over: Record<string, unknown>) => ({ id: `ent_r${Math.random()}`, kind: "adjust", occurred_at: now, ...over });
    await refused((trx) => trx("ledger_entries").insert(entry({ member_id: "mem_nobody" })), "ledger_entries_member_id_foreign");
    await refused((trx) => trx("ledger_entries").insert(entry({ partner_id: "ptn_nobody" })), "ledger_entries_partner_id_foreign");
    await refused((trx) => trx("ledger_entries").insert(entry({ contract_version_id: "ctr_nobody" })), "ledger_entries_contract_version_id_foreign");
    // One bad row among good ones refuses the whole statement.
    await refused(
      (trx) => trx("ledger_entries").insert([entry({ member_id: m, partner_id: partnerId }), entry({ member_id: m, partner_id: "ptn_nobody" })]),
      "ledger_entries_partner_id_foreign",
    );
    await refused(
      (trx) =>
        trx("ledger_postings").insert([
          { entry_id: "ent_nobody", account_id: accountIds.points(m), asset: POINTS, amount: "1" },
          { entry_id: "ent_nobody", account_id: accountIds.issuance(partnerId), asset: POINTS, amount: "-1" },
        ]),
      "ledger_postings_entry_id_foreign",
    );
    await refused(async (trx) => {
      await trx("ledger_entries").insert({ id: "ent_acc", kind: "adjust", occurred_at: now });
      await trx("ledger_postings").insert([
        { entry_id: "ent_acc", account_id: accountIds.points(m), asset: "EUR", amount: "1" },
        { entry_id: "ent_acc", account_id: accountIds.issuance(partnerId), asset: "EUR", amount: "-1" },
      ]);
    }, "ledger_postings_account_id_asset_foreign");
    const lot = (over: Record<string, unknown>) => ({
      id: `lot_r${Math.random()}`,
      member_id: m,
      account_id: accountIds.points(m),
      issuing_partner_id: partnerId,
      entry_id: entryId,
      earned_at: now,
      expires_at: later,
      amount: "1",
      remaining: "1",
      funded_by: `partner:${partnerId}`,
      ...over,
    });
    await refused((trx) => trx("ledger_lots").insert(lot({ member_id: "mem_nobody" })), "ledger_lots_member_id_foreign");
    await refused((trx) => trx("ledger_lots").insert(lot({ account_id: "acc_nobody" })), "ledger_lots_account_id_foreign");
    await refused((trx) => trx("ledger_lots").insert(lot({ issuing_partner_id: "ptn_nobody" })), "ledger_lots_issuing_partner_id_foreign");
    await refused((trx) => trx("ledger_lots").insert(lot({ contract_version_id: "ctr_nobody" })), "ledger_lots_contract_version_id_foreign");
    await refused((trx) => trx("ledger_lots").insert(lot({ entry_id: "ent_nobody" })), "ledger_lots_entry_id_foreign");
    const seller = (await createPartner(db)).id;
    const contract = await createContract(db, seller);
    const txn = (over: Record<string, unknown>) => ({
      id: `txn_r${Math.random()}`,
      partner_id: seller,
      partner_transaction_id: `r${Math.random()}`,
      kind: "earn",
      member_id: m,
      amount_minor: "100",
      currency: "EUR",
      occurred_at: now,
      contract_version_id: contract.id,
      ledger_ref_type: "transaction",
      ledger_ref_id: "x",
      ...over,
    });
    await refused((trx) => trx("point_transactions").insert(txn({ partner_id: "ptn_nobody" })), "point_transactions_partner_id_foreign");
    await refused((trx) => trx("point_transactions").insert(txn({ member_id: "mem_nobody" })), "point_transactions_member_id_foreign");
    await refused((trx) => trx("point_transactions").insert(txn({ contract_version_id: "ctr_nobody" })), "point_transactions_contract_version_id_foreign");
    await refused(
      (trx) => trx("events").insert({ id: `evt_r${Math.random()}`, type: "test", partner_id: "ptn_nobody", occurred_at: now, data: {} }),
      "events_partner_id_foreign",
    );
    // What names existing rows is written; nothing refused above was.
    await db("point_transactions").insert(txn({}));
    expect((await ledger.balances(db, m)).points).toBe(10n);
    expect(await ledger.checkInvariants()).toEqual([]);
  });

  it("never deletes a partner, member or account that ledger rows may name, nor changes its key or a lot's provenance", async () => {
    const m = (await createMember(db, partnerId)).id;
    const { lotId } = await earn(m, 10n);
    const other = (await createPartner(db)).id;
    await expect(db("partners").where({ id: other }).delete()).rejects.toMatchObject({ code: "23503" });
    await expect(db("members").where({ id: m }).delete()).rejects.toMatchObject({ code: "23503" });
    await expect(db("ledger_accounts").where({ id: accountIds.points(m) }).delete()).rejects.toMatchObject({ code: "23503" });
    await expect(db.raw("TRUNCATE partners CASCADE")).rejects.toMatchObject({ code: "23503" });
    await expect(db("partners").where({ id: other }).update({ id: "ptn_renamed" })).rejects.toThrow(/partners\.id of .* cannot change/);
    await expect(db("members").where({ id: m }).update({ id: "mem_renamed" })).rejects.toThrow(/cannot change/);
    await expect(db("ledger_accounts").where({ id: accountIds.points(m) }).update({ asset: "EUR" })).rejects.toThrow(/cannot change/);
    await expect(db("ledger_lots").where({ id: lotId }).update({ issuing_partner_id: other })).rejects.toThrow(/issuing_partner_id .* cannot change/);
    // Other columns still change as before.
    await db("partners").where({ id: other }).update({ name: "Renamed", id: other });
    expect((await db("partners").where({ id: other }).first("name")).name).toBe("Renamed");
    expect((await ledger.balances(db, m)).points).toBe(10n);
  });

  it("deletes a draft contract version only if no ledger row names it, waiting for transactions still writing", async () => {
    const m = (await createMember(db, partnerId)).id;
    const draft = await createContract(db, partnerId, { version: 91, effective_from: new Date("2099-01-01T00:00:00Z") });
    const unused = await createContract(db, partnerId, { version: 92, effective_from: new Date("2099-06-01T00:00:00Z") });
    await db("contract_versions").where({ id: unused.id }).delete();
    expect(await db("contract_versions").where({ id: unused.id }).first()).toBeUndefined();

    // A writer names the draft and has not committed yet: the delete waits for it, then refuses.
    const writer = await db.transaction();
    await writer("ledger_entries").insert({ id: `ent_draft_${m}`, kind: "adjust", member_id: m, contract_version_id: draft.id, occurred_at: now });
    let settled = false;
    const deleting = db("contract_versions")
      .where({ id: draft.id })
      .delete()
      .finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(settled).toBe(false);
    // The entry needs its postings before commit (an entry balances); a zero-sum pair will do.
    await writer("ledger_postings").insert([
      { entry_id: `ent_draft_${m}`, account_id: accountIds.issuance(partnerId), asset: POINTS, amount: "1" },
      { entry_id: `ent_draft_${m}`, account_id: accountIds.issuance(partnerId), asset: POINTS, amount: "-1" },
    ]);
    await writer.commit();
    await expect(deleting).rejects.toThrow(/contract version .* is named by ledger rows: DELETE refused/);
    expect(await db("contract_versions").where({ id: draft.id }).first()).toBeDefined();
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
          WHERE p.proname IN ('ledger_earn_rows', 'points_earn_batch', 'ledger_apply_postings', 'ledger_check_entries_balanced') ORDER BY p.proname`,
      )
    ).rows as Array<{ proname: string; proconfig: string[] | null }>;
    expect(rows.map((r) => r.proname)).toEqual(["ledger_apply_postings", "ledger_check_entries_balanced", "ledger_earn_rows", "points_earn_batch"]);
    for (const r of rows) {
      // The batched earn also waits at most 25 ms for a lock (20261202010000) and plans its
      // statements once (20261202030000).
      const expected =
        r.proname === "points_earn_batch"
          ? ["enable_seqscan=off", "jit=off", "lock_timeout=25ms", "plan_cache_mode=force_generic_plan"]
          : ["enable_seqscan=off", "jit=off"];
      expect([...(r.proconfig ?? [])].sort(), r.proname).toEqual(expected);
    }
  });
});
