import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, fixedClock } from "../../test/harness.ts";
import { seedMay, seedNetwork, type MonthTraffic } from "../../test/factories/settlement.ts";
import { createLogger } from "../../gateway/src/infra/logger.ts";
import type { Db } from "../../gateway/src/infra/db.ts";
import { createClearingService, type ClearingHooks, type ClearingService } from "./clearing.service.ts";
import { ClearingImbalance } from "./settlement.errors.ts";
import { createStatementsService, type LineRow, type StatementRow } from "./statements.service.ts";

let db: Db;
const clock = fixedClock("2026-04-01T00:00:00Z");
let t: MonthTraffic;
let clearing: ClearingService;
const hooks: ClearingHooks = {};

const stmtId = (period: string, partnerId: string) => `stm_${period.replace("-", "")}_${partnerId}`;

async function linesOf(statementId: string) {
  const rows: LineRow[] = await db("settlement_lines").where({ statement_id: statementId }).orderBy("line_no").select("*");
  return rows.map((l) => ({
    group: l.line_group,
    version: l.contract_version,
    corrects: l.corrects_period,
    points: Number(l.points),
    txns: l.transaction_count,
    amount: Number(l.amount_minor),
  }));
}

async function statement(id: string): Promise<StatementRow> {
  return db("settlement_statements").where({ id }).first("*");
}

async function csvOf(id: string): Promise<string> {
  let out = "";
  await createStatementsService({ db }).renderCsv(id, (c) => {
    out += c;
  });
  return out;
}

beforeAll(async () => {
  db = await createTestDb();
  t = await seedNetwork(db, clock);
  clearing = createClearingService({ db, clock, log: createLogger("silent"), hooks });
});
afterAll(async () => {
  await db.destroy();
});

describe("clearing April 2026 (hand-computed)", () => {
  it("refuses a month that has not ended", async () => {
    clock.set("2026-04-30T23:00:00Z");
    await expect(clearing.startRun("2026-04")).rejects.toMatchObject({ code: "period-not-ended", status: 422 });
  });

  it("clears every partner line by line and the network sums to zero", async () => {
    clock.set("2026-05-01T01:00:00Z");
    const { run } = await clearing.startRun("2026-04");
    const done = await clearing.runToEnd(run.id);
    expect(done).toMatchObject({ status: "closed", step: "done" });
    const { A, B, C } = t.partners;

    // A: 123 points issued at 0.0105 = 1.2915 → 1.29 (half-even on the line); 1 transaction × 0.05; 100.00 a month.
    expect(await linesOf(stmtId("2026-04", A))).toEqual([
      { group: "issuance", version: 1, corrects: null, points: 123, txns: 0, amount: -129 },
      { group: "transaction_fee", version: 1, corrects: null, points: 0, txns: 1, amount: -5 },
      { group: "monthly_fee", version: 1, corrects: null, points: 0, txns: 0, amount: -10_000 },
    ]);
    // B: 30 + 100 points redeemed at 0.0084 = 1.092 → 1.09; 50.00 a month.
    expect(await linesOf(stmtId("2026-04", B))).toEqual([
      { group: "redemption", version: 1, corrects: null, points: 130, txns: 0, amount: 109 },
      { group: "monthly_fee", version: 1, corrects: null, points: 0, txns: 0, amount: -5_000 },
    ]);
    // C: 100 + 10 points issued at 0.011 = 1.21; 2 × 0.03; 70 expired points funded at 0.011 = 0.77, 50% = 0.385 → 0.38 (tie → even).
    expect(await linesOf(stmtId("2026-04", C))).toEqual([
      { group: "issuance", version: 1, corrects: null, points: 110, txns: 0, amount: -121 },
      { group: "breakage_share", version: 1, corrects: null, points: 70, txns: 0, amount: 38 },
      { group: "transaction_fee", version: 1, corrects: null, points: 0, txns: 2, amount: -6 },
    ]);
    expect(Number((await statement(stmtId("2026-04", A))).net_amount_minor)).toBe(-10_134);
    expect(Number((await statement(stmtId("2026-04", B))).net_amount_minor)).toBe(-4_891);
    expect(Number((await statement(stmtId("2026-04", C))).net_amount_minor)).toBe(-89);

    const report = (await clearing.getRun(run.id)).run.report as {
      currencies: Array<{ currency: string; operator_revenue_total_minor: number; partners_net_total_minor: number; network_sum_minor: number; operator_revenue_minor: Record<string, number> }>;
      points: Record<string, number>;
    };
    expect(report.currencies).toHaveLength(1);
    expect(report.currencies[0]).toMatchObject({ currency: "EUR", operator_revenue_total_minor: 15_114, partners_net_total_minor: -15_114, network_sum_minor: 0 });
    expect(report.currencies[0]!.operator_revenue_minor).toMatchObject({ issuance: 250, redemption: -109, breakage_share: -38, transaction_fee: 11, monthly_fee: 15_000 });
    // 123 + 100 + 10 issued − 130 redeemed − 70 expired = 33 points still with members (m1's 23, m3's 10).
    expect(report.points).toMatchObject({ issued: 233, redeemed: 130, expired: 70, members_change: 33, liability_outstanding: 33 });
  });

  it("is final once closed: the database refuses any change", async () => {
    const id = stmtId("2026-04", t.partners.A);
    await expect(db("settlement_statements").where({ id }).update({ net_amount_minor: 0 })).rejects.toThrow(/closed/);
    await expect(db("settlement_lines").where({ statement_id: id }).delete()).rejects.toThrow(/closed/);
    await expect(db("settlement_items").where({ statement_id: id }).update({ points: 1 })).rejects.toThrow(/closed/);
  });

  it("starting a closed month again changes nothing", async () => {
    const before = await db("settlement_statements").orderBy("id").select("id", "content_sha256", "csv_sha256");
    const again = await clearing.startRun("2026-04");
    expect(again.created).toBe(false);
    expect(again.run.status).toBe("closed");
    await clearing.runToEnd(again.run.id);
    expect(await db("settlement_statements").orderBy("id").select("id", "content_sha256", "csv_sha256")).toEqual(before);
  });
});

describe("clearing May 2026: late entries, refunds of a closed month, expiry, a contract change", () => {
  it("prices each line by the contract in force and names what adjustments correct", async () => {
    await seedMay(db, clock, t);
    clock.set("2026-06-01T01:00:00Z");
    const { run } = await clearing.startRun("2026-05");
    expect((await clearing.runToEnd(run.id)).status).toBe("closed");
    const { A, B, C } = t.partners;

    expect(await linesOf(stmtId("2026-05", A))).toEqual([
      // 19 (T4) + 99 (T5) at 0.0105 = 1.239 → 1.24
      { group: "issuance", version: 1, corrects: null, points: 118, txns: 0, amount: -124 },
      // 45 (T6, after the 16th) at 0.012 = 0.54
      { group: "issuance", version: 2, corrects: null, points: 45, txns: 0, amount: -54 },
      // L1: sent in May for 25 April: 8 at 0.0105 = 0.084 → 0.08, an adjustment of April
      { group: "issuance", version: 1, corrects: "2026-04", points: 8, txns: 0, amount: -8 },
      // refund of T1 (April): 123 points back at the price they were issued at, 0.0105 → 1.29
      { group: "issuance_reversal", version: 1, corrects: null, points: 123, txns: 0, amount: 129 },
      // T4 paid 20 points at A: 20 × 0.008 = 0.16
      { group: "redemption", version: 1, corrects: null, points: 20, txns: 0, amount: 16 },
      // T4 (earn + burn: one transaction) and T5 under v1, T6 under v2, L1 for April
      { group: "transaction_fee", version: 1, corrects: null, points: 0, txns: 2, amount: -10 },
      { group: "transaction_fee", version: 2, corrects: null, points: 0, txns: 1, amount: -5 },
      { group: "transaction_fee", version: 1, corrects: "2026-04", points: 0, txns: 1, amount: -5 },
      // v2 is in force at the month's end
      { group: "monthly_fee", version: 2, corrects: null, points: 0, txns: 0, amount: -12_000 },
    ]);
    expect(await linesOf(stmtId("2026-05", B))).toEqual([
      // T9 10 + capture 25 = 35 at 0.0084 = 0.294 → 0.29
      { group: "redemption", version: 1, corrects: null, points: 35, txns: 0, amount: 29 },
      // refund of T3 (April): 100 points given back, 100 × 0.0084 = 0.84 reversed
      { group: "redemption_reversal", version: 1, corrects: null, points: 100, txns: 0, amount: -84 },
      { group: "monthly_fee", version: 1, corrects: null, points: 0, txns: 0, amount: -5_000 },
    ]);
    expect(await linesOf(stmtId("2026-05", C))).toEqual([
      { group: "issuance", version: 1, corrects: null, points: 20, txns: 0, amount: -22 },
      // 10 points of T2b expired: 10 × 0.011 × 50% = 0.055 → 0.06 (tie → even)
      { group: "breakage_share", version: 1, corrects: null, points: 10, txns: 0, amount: 6 },
      { group: "transaction_fee", version: 1, corrects: null, points: 0, txns: 1, amount: -3 },
    ]);
    const a = await statement(stmtId("2026-05", A));
    expect({ net: Number(a.net_amount_minor), opening: Number(a.opening_position_minor), closing: Number(a.closing_position_minor), due: a.due_date, currency: a.currency }).toEqual({
      net: -12_061,
      opening: -10_134,
      closing: -22_195,
      due: "2026-06-15",
      currency: "EUR",
    });
    expect(Number((await statement(stmtId("2026-05", B))).net_amount_minor)).toBe(-5_055);
    expect(Number((await statement(stmtId("2026-05", C))).net_amount_minor)).toBe(-19);

    const report = (await clearing.getRun(run.id)).run.report as { currencies: Array<Record<string, number>>; points: Record<string, number> };
    expect(report.currencies[0]).toMatchObject({ operator_revenue_total_minor: 17_135, network_sum_minor: 0 });
    // 191 issued − 123 clawed back − 55 redeemed + 100 restored − 10 expired = 103
    expect(report.points).toMatchObject({ issued: 191, clawed_back: 123, redeemed: 55, restored: 100, expired: 10, members_change: 103, liability_outstanding: 136 });
  });

  it("lists line items with the partner's own ids, and the same bytes every time", async () => {
    const { A, B } = t.partners;
    const csv = await csvOf(stmtId("2026-05", A));
    const rows = csv.trimEnd().split("\r\n").map((r) => r.split(","));
    expect(rows[0]).toEqual([
      "statement_id", "line_no", "line_group", "occurred_at", "entry_kind", "partner_transaction_id", "partner_refund_id", "hub_transaction_id",
      "ledger_entry_id", "lot_id", "member_id", "points", "price_micros", "share_bps", "corrects_period", "corrects_statement_id", "amount_minor",
    ]);
    const byPtx = (id: string, group: string) => rows.find((r) => r[5] === id && r[2] === group)!;
    expect(byPtx("A-T4", "issuance").slice(0, 6)).toEqual([stmtId("2026-05", A), "1", "issuance", "2026-05-03T10:00:00.000Z", "earn", "A-T4"]);
    expect(byPtx("A-T4", "redemption")[11]).toBe("20");
    expect(byPtx("A-L1", "issuance")[14]).toBe("2026-04");
    const refund = byPtx("A-T1", "issuance_reversal");
    expect(refund[6]).toBe("A-R1");
    expect(refund[11]).toBe("123");
    expect(refund[15]).toBe(stmtId("2026-04", A));
    const restore = (await csvOf(stmtId("2026-05", B))).split("\r\n").find((r) => r.includes(",redemption_reversal,"))!.split(",");
    expect(restore[5]).toBe("B-T3");
    expect(restore[15]).toBe(stmtId("2026-04", B));
    // Every line's points are the sum of its items.
    const sums = new Map<string, number>();
    for (const r of rows.slice(1)) sums.set(r[1]!, (sums.get(r[1]!) ?? 0) + Number(r[11]));
    const lines: LineRow[] = await db("settlement_lines").where({ statement_id: stmtId("2026-05", A) }).select("*");
    for (const l of lines) expect(sums.get(String(l.line_no)) ?? 0).toBe(Number(l.points));
    const st = await statement(stmtId("2026-05", A));
    expect(createHash("sha256").update(csv).digest("hex")).toBe(st.csv_sha256);
    expect(await csvOf(stmtId("2026-05", A))).toBe(csv);
  });

  it("breakage items name the purchase that earned the expired points", async () => {
    const csv = await csvOf(stmtId("2026-05", t.partners.C));
    const row = csv.split("\r\n").find((r) => r.includes(",breakage_share,"))!.split(",");
    expect(row[5]).toBe("C-T2b");
    expect(row[9]).toMatch(/^lot_/);
    expect(row[13]).toBe("5000");
  });
});

describe("a run that does not balance", () => {
  it("fails loudly, records why, keeps nothing, and clears once the fault is gone", async () => {
    const { A, B } = t.partners;
    // June: one earn at A. A fault corrupts one line before its step commits.
    clock.set("2026-06-10T10:00:00Z");
    await db.transaction((trx) => t.earn.earn(trx, A, { member_id: t.members.m1, partner_transaction_id: "A-J1", amount_minor: 50_000, currency: "EUR" }));
    clock.set("2026-07-01T01:00:00Z");
    const before = { entries: await db("ledger_entries").count("* as n").first(), events: await db("events").count("* as n").first() };
    hooks.onStep = async (at) => {
      if (at.scope === "statement" && at.step === "price" && at.phase === "before-commit" && at.id === stmtId("2026-06", A)) {
        await at.trx!("settlement_lines").where({ statement_id: at.id, line_group: "issuance" }).increment("amount_minor", 1);
      }
    };
    const { run } = await clearing.startRun("2026-06");
    await expect(clearing.runToEnd(run.id)).rejects.toBeInstanceOf(ClearingImbalance);
    const failed = await clearing.getRun(run.id);
    expect(failed.run.status).toBe("failed");
    expect(failed.run.failure).toMatch(/line 1 says -59 minor units, its points and price make -60/);
    const a = failed.statements.find((s) => s.partner_id === A)!;
    expect(a).toMatchObject({ status: "failed", step: "collect", net_amount_minor: null, attempts: 1 });
    expect(Number((await db("settlement_lines").where({ statement_id: a.id }).count("* as n").first())?.n)).toBe(0);
    expect(Number((await db("settlement_items").where({ statement_id: a.id }).count("* as n").first())?.n)).toBe(0);
    // Nothing else moved: no ledger entry, no event, no statement closed.
    expect({ entries: await db("ledger_entries").count("* as n").first(), events: await db("events").count("* as n").first() }).toEqual(before);
    expect(failed.statements.every((s) => s.status !== "closed")).toBe(true);

    // An item that no longer traces to the ledger (after its statement verified its lines against its
    // items) fails the month's trace in the network step: the run fails and keeps nothing.
    hooks.onStep = async (at) => {
      if (at.scope === "statement" && at.step === "verify" && at.phase === "before-commit" && at.id === stmtId("2026-06", A)) {
        await at.trx!("settlement_items").where({ statement_id: at.id, line_group: "issuance" }).increment("points", 1);
      }
    };
    expect((await clearing.startRun("2026-06")).created).toBe(true);
    await expect(clearing.runToEnd(run.id)).rejects.toBeInstanceOf(ClearingImbalance);
    const traced = await clearing.getRun(run.id);
    expect(traced.run.status).toBe("failed");
    expect(traced.run.failure).toMatch(/item \S+ \(issuance\) says 51 points, the ledger 50/);
    expect(traced.statements.every((s) => s.status === "failed" && s.net_amount_minor === null)).toBe(true);
    expect(Number((await db("settlement_items").where({ statement_id: a.id }).count("* as n").first())?.n)).toBe(0);
    expect({ entries: await db("ledger_entries").count("* as n").first(), events: await db("events").count("* as n").first() }).toEqual(before);

    hooks.onStep = undefined;
    const again = await clearing.startRun("2026-06");
    expect(again.created).toBe(true);
    expect((await clearing.runToEnd(run.id)).status).toBe("closed");
    // 50 points at 0.012 (v2) = 0.60; one transaction; 120.00 a month.
    expect(await linesOf(stmtId("2026-06", A))).toEqual([
      { group: "issuance", version: 2, corrects: null, points: 50, txns: 0, amount: -60 },
      { group: "transaction_fee", version: 2, corrects: null, points: 0, txns: 1, amount: -5 },
      { group: "monthly_fee", version: 2, corrects: null, points: 0, txns: 0, amount: -12_000 },
    ]);
    expect((await statement(stmtId("2026-06", B))).status).toBe("closed");
  });

  it("leaves what is posted after a run started to the next run, as an adjustment", async () => {
    const { A } = t.partners;
    let late = "";
    hooks.onStep = async (at) => {
      if (at.scope === "run" && at.step === "statements" && at.phase === "after-commit" && !late) {
        // Posted while July is being cleared, for a purchase of 15 July.
        late = (
          await db.transaction((trx) =>
            t.earn.earn(trx, A, { member_id: t.members.m2, partner_transaction_id: "A-LATE", amount_minor: 70_000, occurred_at: "2026-07-15T10:00:00Z", currency: "EUR" }),
          )
        ).transaction_id;
      }
    };
    clock.set("2026-08-01T01:00:00Z");
    const july = await clearing.startRun("2026-07");
    expect((await clearing.runToEnd(july.run.id)).status).toBe("closed");
    hooks.onStep = undefined;
    expect(late).not.toBe("");
    expect(await linesOf(stmtId("2026-07", A))).toEqual([{ group: "monthly_fee", version: 2, corrects: null, points: 0, txns: 0, amount: -12_000 }]);
    clock.set("2026-09-01T01:00:00Z");
    const august = await clearing.startRun("2026-08");
    expect((await clearing.runToEnd(august.run.id)).status).toBe("closed");
    // 70 points at 0.012 = 0.84, and its transaction fee, both named as July's.
    expect(await linesOf(stmtId("2026-08", A))).toEqual([
      { group: "issuance", version: 2, corrects: "2026-07", points: 70, txns: 0, amount: -84 },
      { group: "transaction_fee", version: 2, corrects: "2026-07", points: 0, txns: 1, amount: -5 },
      { group: "monthly_fee", version: 2, corrects: null, points: 0, txns: 0, amount: -12_000 },
    ]);
  });

  it("months close in order, with no gap", async () => {
    clock.set("2026-11-01T00:00:00Z");
    // August is the last cleared: October must wait for September (a skipped month could never be
    // cleared after, and its entries would land in a later one), and nothing was started.
    await expect(clearing.startRun("2026-10")).rejects.toMatchObject({ code: "previous-period-open", status: 409, detail: expect.stringContaining("2026-09 has not been cleared") });
    expect(await db("settlement_runs").where({ period: "2026-10" }).first()).toBeUndefined();
    const september = await clearing.startRun("2026-09");
    // While September runs, October waits for it to close.
    await expect(clearing.startRun("2026-10")).rejects.toMatchObject({ code: "previous-period-open", detail: expect.stringContaining("2026-09 is not closed yet") });
    expect((await clearing.runToEnd(september.run.id)).status).toBe("closed");
    await clearing.startRun("2026-10");
    // A month before one already cleared can no longer be opened.
    await expect(clearing.startRun("2026-03")).rejects.toMatchObject({ code: "run-closed" });
    clock.set("2026-12-01T00:00:00Z");
    await expect(clearing.startRun("2026-11")).rejects.toMatchObject({ code: "previous-period-open" });
  });
});
