import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, fixedClock } from "../../test/harness.ts";
import { createSettlementContract, seedNetwork, type MonthTraffic } from "../../test/factories/settlement.ts";
import { createMember, createPartner } from "../../test/factories/network.ts";
import { createLogger } from "../../gateway/src/infra/logger.ts";
import type { Db } from "../../gateway/src/infra/db.ts";
import { createClearingService, type NetworkReport } from "./clearing.service.ts";

/**
 * A developer's sandbox partner earns and burns with its sandbox members in the same month as the
 * live network of clearing.int.test.ts. The month must clear exactly as if the sandbox did not
 * exist: no statement (so no line) for the sandbox partner, no item for any sandbox entry, and the
 * network report of the hand-computed April.
 */
let db: Db;
const clock = fixedClock("2026-04-01T00:00:00Z");
let t: MonthTraffic;
let sandbox: string;
let sandboxEntries: string[];

beforeAll(async () => {
  db = await createTestDb();
  t = await seedNetwork(db, clock);
  // The sandbox network: a partner with the same kind of contract, two test members.
  sandbox = (await createPartner(db, { name: "Supermarket A (sandbox)" })).id;
  await db("partners").where({ id: sandbox }).update({ sandbox: true });
  await createSettlementContract(db, sandbox, { issuance: 10_000n, redemption: 8_000n, txFee: 5n, monthlyFee: 10_000n, breakageBps: 3_000, validityDays: 10 });
  const s1 = (await createMember(db, sandbox)).id;
  const s2 = (await createMember(db, sandbox)).id;
  await db("members").whereIn("id", [s1, s2]).update({ sandbox: true });
  const eur = { currency: "EUR" };
  const at = async <T>(when: string, work: () => Promise<T>): Promise<T> => {
    clock.set(when);
    return work();
  };
  await at("2026-04-06T10:00:00Z", () => db.transaction((trx) => t.earn.earn(trx, sandbox, { member_id: s1, partner_transaction_id: "SBX-1", amount_minor: 500_000, ...eur })));
  const second = await at("2026-04-07T10:00:00Z", () => db.transaction((trx) => t.earn.earn(trx, sandbox, { member_id: s2, partner_transaction_id: "SBX-2", amount_minor: 70_000, ...eur })));
  await at("2026-04-09T10:00:00Z", () => db.transaction((trx) => t.earn.burn(trx, sandbox, { member_id: s1, partner_transaction_id: "SBX-3", points: 120, amount_minor: 1_200, ...eur })));
  await at("2026-04-10T10:00:00Z", () => db.transaction((trx) => t.earn.refund(trx, sandbox, second.transaction_id, { refund_id: "SBX-R" })));
  // s1's remaining points expire on the 16th: breakage in the sandbox too.
  await at("2026-04-29T04:00:00Z", () => t.earn.runExpiry());
  sandboxEntries = (await db("ledger_entries").where({ partner_id: sandbox }).orWhereIn("member_id", [s1, s2]).select("id")).map((r: { id: string }) => r.id);
});
afterAll(async () => {
  await db.destroy();
});

describe("sandbox traffic in clearing", () => {
  it("is real ledger traffic in the month (the premise of the test)", () => {
    // Two earns, a burn, a refund and an expiry.
    expect(sandboxEntries.length).toBeGreaterThanOrEqual(5);
  });

  it("produces no statement and no statement line, and leaves the network report as computed by hand", async () => {
    clock.set("2026-05-01T01:00:00Z");
    const clearing = createClearingService({ db, clock, log: createLogger("silent") });
    const { run } = await clearing.startRun("2026-04");
    const done = await clearing.runToEnd(run.id);
    expect(done).toMatchObject({ status: "closed", step: "done" });
    const { A, B, C } = t.partners;

    const { statements } = await clearing.getRun(run.id);
    expect(statements.map((s) => s.partner_id).sort()).toEqual([A, B, C].sort());
    expect(await db("settlement_statements").where({ partner_id: sandbox }).select("id")).toEqual([]);
    expect(await db("settlement_items").whereIn("entry_id", sandboxEntries).select("entry_id")).toEqual([]);
    const lines = await db("settlement_lines as l").join("settlement_statements as s", "s.id", "l.statement_id").where("s.partner_id", sandbox).select("l.line_no");
    expect(lines).toEqual([]);

    // The same figures as the live month alone (clearing.int.test.ts, computed by hand).
    expect(statements.map((s) => [s.partner_id, Number(s.net_amount_minor)]).sort()).toEqual(
      [
        [A, -10_134],
        [B, -4_891],
        [C, -89],
      ].sort(),
    );
    const report = (await clearing.getRun(run.id)).run.report as NetworkReport;
    expect(report.currencies).toHaveLength(1);
    expect(report.currencies[0]).toMatchObject({ currency: "EUR", operator_revenue_total_minor: 15_114, partners_net_total_minor: -15_114, network_sum_minor: 0 });
    expect(report.currencies[0]!.partners.map((p) => p.partner_id).sort()).toEqual([A, B, C].sort());
    expect(report.currencies[0]!.operator_revenue_minor).toMatchObject({ issuance: 250, redemption: -109, breakage_share: -38, transaction_fee: 11, monthly_fee: 15_000 });
    expect(report.points).toMatchObject({ issued: 233, redeemed: 130, expired: 70, members_change: 33, liability_outstanding: 33 });
  });
});
