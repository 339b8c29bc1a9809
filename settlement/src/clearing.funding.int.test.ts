import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, fixedClock } from "../../test/harness.ts";
import { createMember, createPartner } from "../../test/factories/network.ts";
import { createSettlementContract } from "../../test/factories/settlement.ts";
import { createLogger } from "../../gateway/src/infra/logger.ts";
import { newId } from "../../gateway/src/infra/ids.ts";
import type { Db } from "../../gateway/src/infra/db.ts";
import { createLedger, type Ledger } from "../../gateway/src/ledger/ledger.service.ts";
import { createMemberAccess } from "../../gateway/src/members/member-access.ts";
import { createEarnService, type EarnService } from "../../gateway/src/earn/earn.service.ts";
import { createRulesService } from "../../gateway/src/rules/rules.service.ts";
import { createTiersService } from "../../gateway/src/rules/tiers.service.ts";
import { createMoneyLedger, type MoneyLedger } from "../../gateway/src/banking/money-ledger.ts";
import { createClearingService, type ClearingService } from "./clearing.service.ts";
import { createStatementsService, type LineRow } from "./statements.service.ts";

/**
 * A month of mixed traffic across a supermarket (A), a cinema (B) and a bank (K): points earned at A
 * under A's base rate, A's own promotion and an operator-funded promotion; burnt at B; cashback at A
 * (part funded by A, part by the operator) and its partial reversal; a round-up A matches through K;
 * a cashback payout K made; expiry of partner- and operator-funded lots. Then October: a refund of a
 * September purchase after September closed, a late earn dated September, more expiry. Every
 * statement is checked against the figures computed by hand in the comments, and the network sum
 * against zero. Points go through the earn and rules services, money through the banking feature's
 * ledger module (what its card-transaction, round-up and cashback services call).
 */
let db: Db;
const clock = fixedClock("2026-09-01T00:00:00Z");
let clearing: ClearingService;
let earn: EarnService;
let money: MoneyLedger;
let ledger: Ledger;
const P = { A: "", B: "", K: "" };
const M = { m1: "", m2: "", m3: "" };
const txn: Record<string, string> = {};

const stmt = (period: string, partnerId: string) => `stm_${period.replace("-", "")}_${partnerId}`;

async function linesOf(statementId: string) {
  const rows: LineRow[] = await db("settlement_lines").where({ statement_id: statementId }).orderBy("line_no").select("*");
  return rows.map((l) => ({ group: l.line_group, corrects: l.corrects_period, points: Number(l.points), txns: l.transaction_count, amount: Number(l.amount_minor) }));
}
const net = async (id: string) => Number((await db("settlement_statements").where({ id }).first("net_amount_minor")).net_amount_minor);
const at = async <T>(when: string, work: () => Promise<T>): Promise<T> => {
  clock.set(when);
  return work();
};
const eur = { currency: "EUR" };

beforeAll(async () => {
  db = await createTestDb();
  const log = createLogger("silent");
  ledger = createLedger({ db, log });
  const members = createMemberAccess();
  const rules = createRulesService({ db, clock, ledger, members, tiers: createTiersService({ db, clock }) });
  earn = createEarnService({ db, clock, log, ledger, members, rules: rules.earnRules });
  money = createMoneyLedger({ ledger });
  clearing = createClearingService({ db, clock, log });

  P.A = (await createPartner(db, { name: "Supermarket A" })).id;
  P.B = (await createPartner(db, { name: "Cinema B" })).id;
  P.K = (await createPartner(db, { name: "Bank K", kind: "bank" })).id;
  // A: 1 point per 10.00, issued at 0.010, redeemed at 0.008, 0.05 per transaction, 100.00 a month,
  // 50% breakage share, points valid 10 days. B: redeemed at 0.0085. K: no fees.
  await createSettlementContract(db, P.A, { issuance: 10_000n, redemption: 8_000n, txFee: 5n, monthlyFee: 10_000n, breakageBps: 5_000, validityDays: 10 });
  await createSettlementContract(db, P.B, { issuance: 9_000n, redemption: 8_500n });
  await createSettlementContract(db, P.K, { issuance: 10_000n, redemption: 8_000n });
  const rule = { status: "active", stack_group: null, valid_from: new Date("2026-01-01T00:00:00Z"), target: JSON.stringify({ kind: "all" }), caps: JSON.stringify({}) };
  // The operator's promotion: 50 bonus points on every purchase at A, funded by the operator.
  await db("earn_rules").insert({ ...rule, id: newId("rul"), owner_partner_id: null, name: "Coalition week", type: "fixed_bonus", priority: 10, partner_ids: JSON.stringify([P.A]), params: JSON.stringify({ points: 50 }) });
  // A's own promotion: 20 bonus points per purchase, funded by A.
  await db("earn_rules").insert({ ...rule, id: newId("rul"), owner_partner_id: P.A, name: "A's loyalty days", type: "fixed_bonus", priority: 20, partner_ids: null, params: JSON.stringify({ points: 20 }) });
  M.m1 = (await createMember(db, P.A)).id;
  M.m2 = (await createMember(db, P.A)).id;
  M.m3 = (await createMember(db, P.A)).id;
  await db("member_partner_links").insert({ member_id: M.m1, partner_id: P.B, relation: "used" });
});
afterAll(async () => {
  await db.destroy();
});

describe("a month of mixed traffic with operator-funded points, cashback and round-up matches", () => {
  it("September: each statement as computed by hand; the network sums to zero", async () => {
    const { A, B, K } = P;
    // S1: 100.00 at A → base 10 (A) + 50 (operator) + 20 (A) = 80; lots A 30, operator 50.
    const s1 = await at("2026-09-02T10:00:00Z", () => db.transaction((trx) => earn.earn(trx, A, { member_id: M.m1, partner_transaction_id: "A-S1", amount_minor: 10_000, ...eur })));
    expect(s1.points_earned).toBe(80);
    expect(s1.computation.items.map((i: { funded_by?: string; points: number }) => [i.funded_by, i.points])).toEqual([
      [`partner:${A}`, 10],
      ["operator", 50],
      [`partner:${A}`, 20],
    ]);
    const lots = await db("ledger_lots").where({ member_id: M.m1 }).orderBy("id").select("funded_by", "amount");
    expect(lots.map((l: { funded_by: string; amount: bigint }) => [l.funded_by, Number(l.amount)])).toEqual([
      [`partner:${A}`, 30],
      ["operator", 50],
    ]);
    // S2: m1 pays 60 points at B: A's lot (30) first, then 30 of the operator's. B is paid for all 60.
    await at("2026-09-03T10:00:00Z", () => db.transaction((trx) => earn.burn(trx, B, { member_id: M.m1, partner_transaction_id: "B-S2", points: 60, amount_minor: 600, ...eur })));
    // S3: cashback 10.00 for m2 at A, A funds 60% (6.00), the operator 4.00. S4: 2.50 of it reversed.
    await at("2026-09-05T10:00:00Z", () =>
      db.transaction((trx) => money.cashback(trx, { memberId: M.m2, partnerId: A, currency: "EUR", amount: 1_000n, fundingBps: 6_000, occurredAt: clock.now(), ref: { type: "card_purchase", id: "cp_S3" }, contractVersionId: null })),
    );
    await at("2026-09-08T10:00:00Z", () =>
      db.transaction((trx) => money.cashback(trx, { memberId: M.m2, partnerId: A, currency: "EUR", amount: -250n, fundingBps: 6_000, occurredAt: clock.now(), ref: { type: "card_purchase", id: "cp_S3" }, contractVersionId: null })),
    );
    // S5: K swept 0.73 of m1's round-ups and credited A's match of 0.20. S6: K paid m2 5.00 of cashback.
    await at("2026-09-10T10:00:00Z", () =>
      db.transaction((trx) => money.roundup(trx, { memberId: M.m1, bankId: K, currency: "EUR", roundup: 73n, matches: [{ partnerId: A, amount: 20n }], occurredAt: clock.now(), ref: { type: "roundup_sweep", id: "swp_S5" } })),
    );
    await at("2026-09-12T10:00:00Z", () =>
      db.transaction((trx) => money.payout(trx, { memberId: M.m2, bankId: K, currency: "EUR", amount: 500n, occurredAt: clock.now(), ref: { type: "cashback_payout", id: "pay_S6" } })),
    );
    // S7: m1's last 20 operator-funded points expire (earned 2 Sept, valid 10 days).
    await at("2026-09-15T03:00:00Z", () => earn.runExpiry());
    // S8: 200.00 at A for m2 → 20 + 50 + 20 = 90 (A 40, operator 50). S9: 300.00 for m3 → 100 (A 50, operator 50).
    await at("2026-09-20T10:00:00Z", () => db.transaction((trx) => earn.earn(trx, A, { member_id: M.m2, partner_transaction_id: "A-S8", amount_minor: 20_000, ...eur })));
    txn.S9 = (await at("2026-09-25T10:00:00Z", () => db.transaction((trx) => earn.earn(trx, A, { member_id: M.m3, partner_transaction_id: "A-S9", amount_minor: 30_000, ...eur })))).transaction_id;
    // S10: m2's lots expire: A's 40 (share to A) and the operator's 50 (no share).
    await at("2026-09-30T12:00:00Z", () => earn.runExpiry());

    clock.set("2026-10-01T01:00:00Z");
    const { run } = await clearing.startRun("2026-09");
    expect((await clearing.runToEnd(run.id)).status).toBe("closed");

    expect(await linesOf(stmt("2026-09", A))).toEqual([
      // 30 + 40 + 50 points A funds (base and its own promotion) at 0.010 = 1.20
      { group: "issuance", corrects: null, points: 120, txns: 0, amount: -120 },
      // 3 × 50 operator-funded: shown, not charged
      { group: "operator_funded_issuance", corrects: null, points: 150, txns: 0, amount: 0 },
      // 40 expired points A funded: 40 × 0.010 × 50% = 0.20
      { group: "breakage_share", corrects: null, points: 40, txns: 0, amount: 20 },
      // 20 + 50 expired operator-funded points: no share
      { group: "operator_funded_breakage", corrects: null, points: 70, txns: 0, amount: 0 },
      { group: "cashback_funding", corrects: null, points: 0, txns: 0, amount: -600 },
      { group: "cashback_funding_reversal", corrects: null, points: 0, txns: 0, amount: 150 },
      { group: "roundup_match_funding", corrects: null, points: 0, txns: 0, amount: -20 },
      // S1, S8, S9 × 0.05
      { group: "transaction_fee", corrects: null, points: 0, txns: 3, amount: -15 },
      { group: "monthly_fee", corrects: null, points: 0, txns: 0, amount: -10_000 },
    ]);
    // B is paid for all 60 points, whoever funded them: 60 × 0.0085 = 0.51.
    expect(await linesOf(stmt("2026-09", B))).toEqual([{ group: "redemption", corrects: null, points: 60, txns: 0, amount: 51 }]);
    // K is owed the cashback it paid out and the match it credited.
    expect(await linesOf(stmt("2026-09", K))).toEqual([
      { group: "cashback_payout", corrects: null, points: 0, txns: 0, amount: 500 },
      { group: "roundup_match_credited", corrects: null, points: 0, txns: 0, amount: 20 },
    ]);
    expect([await net(stmt("2026-09", A)), await net(stmt("2026-09", B)), await net(stmt("2026-09", K))]).toEqual([-10_585, 51, 520]);

    const report = (await clearing.getRun(run.id)).run.report as {
      currencies: Array<Record<string, unknown> & { operator_revenue_minor: Record<string, number> }>;
      points: Record<string, unknown>;
    };
    expect(report.currencies).toHaveLength(1);
    expect(report.currencies[0]).toMatchObject({
      currency: "EUR",
      partners_net_total_minor: -10_014,
      operator_revenue_total_minor: 10_014,
      network_sum_minor: 0,
      // 150 operator-funded points at A's issuance price 0.010
      operator_funded: { points_issued: 150, points_clawed_back: 0, points_expired: 70, promotion_cost_minor: 150 },
      // money: A −6.00 + 1.50 − 0.20, K + 5.00 + 0.20 = 0.50; members hold 2.50 of cashback and 0.93 of
      // savings, the operator funded 3.00 of cashback net and K holds the 0.93 saved: −3.93 on 'funding'.
      money: { partners_lines_minor: 50, ledger_counterpart_minor: { funding: -393, member_cashback: 250, member_roundup: 93 } },
    });
    expect(report.currencies[0]!.operator_revenue_minor).toEqual({
      issuance: 120,
      issuance_reversal: 0,
      adjustment: 0,
      operator_funded_issuance: 150,
      operator_funded_reversal: 0,
      redemption: -51,
      redemption_reversal: 0,
      breakage_share: -20,
      cashback_funding: 600,
      cashback_funding_reversal: -150,
      roundup_match_funding: 20,
      cashback_payout: -500,
      roundup_match_credited: -20,
      transaction_fee: 15,
      monthly_fee: 10_000,
      operator_funded_promotion: -150,
    });
    // 120 + 150 issued − 60 redeemed − (40 + 70) expired = 100: m3's purchase.
    expect(report.points).toMatchObject({ issued: 270, redeemed: 60, expired: 110, members_change: 100, operator_funded: { issued: 150, clawed_back: 0, expired: 70 } });
    expect(await ledger.checkInvariants()).toEqual([]);
  });

  it("October: a refund after September closed splits by funder; a late earn is an adjustment naming September", async () => {
    const { A, B, K } = P;
    // O1: half of S9 refunded: 50 of its 100 points; the operator's share floor(50 × 50 ÷ 100) = 25, A's 25.
    const r = await at("2026-10-02T10:00:00Z", () => db.transaction((trx) => earn.refund(trx, A, txn.S9!, { refund_id: "A-R9", amount_minor: 15_000 })));
    expect(r.points_clawed_back).toBe(50);
    // The member keeps 25 of A's lot and 25 of the operator's.
    const lots = await db("ledger_lots").where({ member_id: M.m3 }).orderBy("id").select("funded_by", "remaining");
    expect(lots.map((l: { funded_by: string; remaining: bigint }) => [l.funded_by, Number(l.remaining)])).toEqual([
      [`partner:${A}`, 25],
      ["operator", 25],
    ]);
    // O2: sent on 3 October for a purchase of 28 September: 50.00 → 5 + 50 + 20 = 75 (A 25, operator 50).
    await at("2026-10-03T09:00:00Z", () =>
      db.transaction((trx) => earn.earn(trx, A, { member_id: M.m1, partner_transaction_id: "A-L1", amount_minor: 5_000, occurred_at: "2026-09-28T12:00:00Z", ...eur })),
    );
    // O3: m3's rest expires (25 + 25); O4: m1's late points expire (25 + 50).
    await at("2026-10-06T03:00:00Z", () => earn.runExpiry());
    await at("2026-10-10T03:00:00Z", () => earn.runExpiry());

    clock.set("2026-11-01T01:00:00Z");
    const { run } = await clearing.startRun("2026-10");
    expect((await clearing.runToEnd(run.id)).status).toBe("closed");
    expect(await linesOf(stmt("2026-10", A))).toEqual([
      // the late earn: 25 A-funded points at 0.010, an adjustment of September
      { group: "issuance", corrects: "2026-09", points: 25, txns: 0, amount: -25 },
      // the refund: A gets back the issuance price of its 25 points only
      { group: "issuance_reversal", corrects: null, points: 25, txns: 0, amount: 25 },
      { group: "operator_funded_issuance", corrects: "2026-09", points: 50, txns: 0, amount: 0 },
      { group: "operator_funded_reversal", corrects: null, points: 25, txns: 0, amount: 0 },
      // 25 + 25 A-funded points expired: 50 × 0.010 × 50% = 0.25
      { group: "breakage_share", corrects: null, points: 50, txns: 0, amount: 25 },
      { group: "operator_funded_breakage", corrects: null, points: 75, txns: 0, amount: 0 },
      { group: "transaction_fee", corrects: "2026-09", points: 0, txns: 1, amount: -5 },
      { group: "monthly_fee", corrects: null, points: 0, txns: 0, amount: -10_000 },
    ]);
    expect([await net(stmt("2026-10", A)), await net(stmt("2026-10", B)), await net(stmt("2026-10", K))]).toEqual([-9_980, 0, 0]);
    const report = (await clearing.getRun(run.id)).run.report as { currencies: Array<Record<string, unknown>>; points: Record<string, unknown> };
    expect(report.currencies[0]).toMatchObject({
      network_sum_minor: 0,
      operator_revenue_total_minor: 9_980,
      // 50 issued (0.50) − 25 taken back (0.25)
      operator_funded: { points_issued: 50, points_clawed_back: 25, points_expired: 75, promotion_cost_minor: 25 },
    });
    // 75 issued − 50 clawed back − 125 expired = −100: m3's 100 are gone, m1's 75 came and went.
    expect(report.points).toMatchObject({ issued: 75, clawed_back: 50, expired: 125, members_change: -100 });

    // The refund's CSV record names the purchase and the September statement that cleared it.
    let csv = "";
    await createStatementsService({ db }).renderCsv(stmt("2026-10", A), (c) => {
      csv += c;
    });
    const refund = csv.split("\r\n").find((l) => l.includes(",issuance_reversal,"))!.split(",");
    expect([refund[5], refund[6], refund[15]]).toEqual(["A-S9", "A-R9", stmt("2026-09", A)]);
    expect(await ledger.checkInvariants()).toEqual([]);
  });

  it("a money posting clearing cannot classify fails the run loudly and changes nothing", async () => {
    const { A } = P;
    // An entry that moves A's receivable (opened in September) without saying what for (no memo.money).
    await at("2026-11-05T10:00:00Z", async () => {
      await db.transaction((trx) =>
        ledger.post(trx, {
          kind: "adjust",
          partnerId: A,
          occurredAt: clock.now(),
          postings: [
            { accountId: `acc_rcv_${A}_EUR`, asset: "EUR", amount: -100n },
            { accountId: "acc_opfund_EUR", asset: "EUR", amount: 100n },
          ],
        }),
      );
    });
    clock.set("2026-12-01T01:00:00Z");
    const { run } = await clearing.startRun("2026-11");
    await expect(clearing.runToEnd(run.id)).rejects.toThrow(/clearing has no rule for it/);
    const failed = await clearing.getRun(run.id);
    expect(failed.run.status).toBe("failed");
    expect(Number((await db("settlement_items").where({ statement_id: stmt("2026-11", A) }).count("* as n").first())?.n)).toBe(0);
  });
});
