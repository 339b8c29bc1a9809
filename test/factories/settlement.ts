import type { Db } from "../../gateway/src/infra/db.ts";
import type { Clock } from "../../gateway/src/infra/clock.ts";
import { createLogger } from "../../gateway/src/infra/logger.ts";
import { newId } from "../../gateway/src/infra/ids.ts";
import { createLedger } from "../../gateway/src/ledger/ledger.service.ts";
import { createMemberAccess } from "../../gateway/src/members/member-access.ts";
import { createEarnService, type EarnService } from "../../gateway/src/earn/earn.service.ts";
import { createMember, createPartner } from "./network.ts";

/** A contract version with every settlement term (the network factory's covers earn terms only). */
export async function createSettlementContract(
  db: Db,
  partnerId: string,
  terms: {
    version?: number;
    effectiveFrom?: string;
    currency?: string;
    issuance: bigint;
    redemption: bigint;
    earnPoints?: bigint;
    txFee?: bigint;
    monthlyFee?: bigint;
    breakageBps?: number;
    validityDays?: number;
  },
): Promise<string> {
  const id = newId("ctr");
  await db("contract_versions").insert({
    id,
    partner_id: partnerId,
    version: terms.version ?? 1,
    effective_from: new Date(terms.effectiveFrom ?? "2020-01-01T00:00:00Z"),
    currency: terms.currency ?? "EUR",
    issuance_price_micros: terms.issuance.toString(),
    redemption_price_micros: terms.redemption.toString(),
    earn_points: String(terms.earnPoints ?? 1n),
    earn_per_minor: "1000",
    points_validity_days: terms.validityDays ?? 730,
    refund_policy: "negative_balance",
    negative_floor: "-1000",
    transaction_fee_minor: String(terms.txFee ?? 0n),
    monthly_fee_minor: String(terms.monthlyFee ?? 0n),
    breakage_share_bps: terms.breakageBps ?? 0,
  });
  return id;
}

export interface MonthTraffic {
  partners: { A: string; B: string; C: string };
  members: { m1: string; m2: string; m3: string };
  earn: EarnService;
  /** Hub transaction ids by the name the scenario gives them. */
  txn: Record<string, string>;
}

/**
 * The network of the settlement tests and its first month (April 2026), all through the earn
 * service — never by writing ledger tables. The hand-computed expectations live in the tests.
 *
 * - A (supermarket): issued at 0.0105, redeemed at 0.008, fee 0.05 per transaction, 100.00 a month,
 *   30% breakage share; from 2026-05-16 version 2 issues at 0.012 and costs 120.00 a month.
 * - B (cinema): issued at 0.009, redeemed at 0.0084, 50.00 a month.
 * - C (fuel): 2 points per 10.00, issued at 0.011, redeemed at 0.0075, fee 0.03 per transaction,
 *   50% breakage share, points valid 20 days.
 */
export async function seedNetwork(db: Db, clock: Clock & { set(d: Date | string): void }): Promise<MonthTraffic> {
  const log = createLogger("silent");
  const ledger = createLedger({ db, log });
  const earn = createEarnService({ db, clock, log, ledger, members: createMemberAccess() });
  const A = (await createPartner(db, { name: "Supermarket A" })).id;
  const B = (await createPartner(db, { name: "Cinema B" })).id;
  const C = (await createPartner(db, { name: "Fuel C" })).id;
  await createSettlementContract(db, A, { issuance: 10_500n, redemption: 8_000n, txFee: 5n, monthlyFee: 10_000n, breakageBps: 3_000 });
  await createSettlementContract(db, A, { version: 2, effectiveFrom: "2026-05-16T00:00:00Z", issuance: 12_000n, redemption: 8_000n, txFee: 5n, monthlyFee: 12_000n, breakageBps: 3_000 });
  await createSettlementContract(db, B, { issuance: 9_000n, redemption: 8_400n, monthlyFee: 5_000n });
  await createSettlementContract(db, C, { issuance: 11_000n, redemption: 7_500n, earnPoints: 2n, txFee: 3n, breakageBps: 5_000, validityDays: 20 });
  const m1 = (await createMember(db, A)).id;
  const m2 = (await createMember(db, A)).id;
  const m3 = (await createMember(db, C)).id;
  // Members who shop at more than one partner (what a card presented at the till would do).
  await db("member_partner_links").insert([
    { member_id: m1, partner_id: B, relation: "used" },
    { member_id: m2, partner_id: B, relation: "used" },
    { member_id: m2, partner_id: C, relation: "used" },
    { member_id: m3, partner_id: A, relation: "used" },
    { member_id: m3, partner_id: B, relation: "used" },
  ]);
  const txn: Record<string, string> = {};
  const at = async <T>(when: string, work: () => Promise<T>): Promise<T> => {
    clock.set(when);
    return work();
  };
  const eur = { currency: "EUR" };
  txn.T1 = (await at("2026-04-05T10:00:00Z", () => db.transaction((trx) => earn.earn(trx, A, { member_id: m1, partner_transaction_id: "A-T1", amount_minor: 123_456, ...eur })))).transaction_id;
  txn.T2 = (await at("2026-04-08T10:00:00Z", () => db.transaction((trx) => earn.earn(trx, C, { member_id: m2, partner_transaction_id: "C-T2", amount_minor: 50_000, ...eur })))).transaction_id;
  txn.T2m = (await at("2026-04-15T10:00:00Z", () => db.transaction((trx) => earn.burn(trx, B, { member_id: m2, partner_transaction_id: "B-T2m", points: 30, amount_minor: 300, ...eur })))).transaction_id;
  txn.T3 = (await at("2026-04-20T10:00:00Z", () => db.transaction((trx) => earn.burn(trx, B, { member_id: m1, partner_transaction_id: "B-T3", points: 100, amount_minor: 1_000, ...eur })))).transaction_id;
  txn.T2b = (await at("2026-04-25T10:00:00Z", () => db.transaction((trx) => earn.earn(trx, C, { member_id: m3, partner_transaction_id: "C-T2b", amount_minor: 5_000, ...eur })))).transaction_id;
  await at("2026-04-29T03:00:00Z", () => earn.runExpiry());
  return { partners: { A, B, C }, members: { m1, m2, m3 }, earn, txn };
}

/** May 2026, after April was cleared: late and corrective traffic as well as new. */
export async function seedMay(db: Db, clock: Clock & { set(d: Date | string): void }, t: MonthTraffic): Promise<void> {
  const { earn, txn } = t;
  const { A, B, C } = t.partners;
  const { m1, m2, m3 } = t.members;
  const eur = { currency: "EUR" };
  const at = async <T>(when: string, work: () => Promise<T>): Promise<T> => {
    clock.set(when);
    return work();
  };
  // Sent on 2 May for a purchase of 25 April: April is closed, so it is a May adjustment.
  txn.L1 = (
    await at("2026-05-02T09:00:00Z", () =>
      db.transaction((trx) => earn.earn(trx, A, { member_id: m3, partner_transaction_id: "A-L1", amount_minor: 8_000, occurred_at: "2026-04-25T12:00:00Z", ...eur })),
    )
  ).transaction_id;
  txn.T4 = (
    await at("2026-05-03T10:00:00Z", () =>
      db.transaction((trx) => earn.earn(trx, A, { member_id: m1, partner_transaction_id: "A-T4", amount_minor: 20_000, burn: { points: 20, amount_minor: 200 }, ...eur })),
    )
  ).transaction_id;
  txn.T5 = (await at("2026-05-10T10:00:00Z", () => db.transaction((trx) => earn.earn(trx, A, { member_id: m2, partner_transaction_id: "A-T5", amount_minor: 99_999, ...eur })))).transaction_id;
  // A refund in May of an April purchase: the statement line names the April statement.
  await at("2026-05-12T10:00:00Z", () => db.transaction((trx) => earn.refund(trx, A, txn.T1!, { refund_id: "A-R1" })));
  txn.T8 = (await at("2026-05-15T10:00:00Z", () => db.transaction((trx) => earn.earn(trx, C, { member_id: m3, partner_transaction_id: "C-T8", amount_minor: 10_000, ...eur })))).transaction_id;
  await at("2026-05-16T03:00:00Z", () => earn.runExpiry());
  txn.T9 = (await at("2026-05-18T10:00:00Z", () => db.transaction((trx) => earn.burn(trx, B, { member_id: m3, partner_transaction_id: "B-T9", points: 10, amount_minor: 100, ...eur })))).transaction_id;
  txn.T6 = (await at("2026-05-20T10:00:00Z", () => db.transaction((trx) => earn.earn(trx, A, { member_id: m2, partner_transaction_id: "A-T6", amount_minor: 45_000, ...eur })))).transaction_id;
  const held = await at("2026-05-21T10:00:00Z", () =>
    db.transaction((trx) => earn.hold(trx, B, { member_id: m2, partner_transaction_id: "B-H1", points: 40, amount_minor: 400, ...eur })),
  );
  await at("2026-05-21T10:05:00Z", () => db.transaction((trx) => earn.capture(trx, B, held.id, { points: 25 })));
  txn.H1 = held.id;
  // A refund in May of an April burn at B: the points go back, the redemption is reversed.
  await at("2026-05-25T10:00:00Z", () => db.transaction((trx) => earn.refund(trx, B, txn.T3!, { refund_id: "B-R3" })));
}
