import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, fixedClock } from "../../../test/harness.ts";
import { createContract, createMember, createPartner } from "../../../test/factories/network.ts";
import type { Db } from "../infra/db.ts";
import { createLogger } from "../infra/logger.ts";
import { createLedger } from "../ledger/ledger.service.ts";
import { createMemberAccess } from "../members/member-access.ts";
import { createEarnService } from "../earn/earn.service.ts";
import { createAnalyticsService, rfmSegment } from "./analytics.service.ts";

/*
 * A small network whose every figure is counted by hand below. All through the earn service (the
 * ledger writes its own tables). P: 1 point per 10.00, points valid 730 days. Q: 1 point per 10.00,
 * points valid 5 days. Window: March and April 2026.
 *
 *   2026-02-20  mem_1 earns 100.00 at P  → 10 pts   (before the window: opening liability 10)
 *   2026-03-02  mem_1 earns 200.00 at P  → 20 pts
 *   2026-03-05  mem_2 earns  50.00 at P  →  5 pts
 *   2026-03-10  mem_3 earns  30.00 at Q  →  3 pts   (expires 03-15)
 *   2026-03-12  mem_3 earns  20.00 at Q  →  2 pts   (expires 03-17)
 *   2026-03-13  mem_3 burns 1 pt at Q
 *   2026-03-18  expiry run: the 4 points left of mem_3's lots expire
 *   2026-04-03  mem_1 burns 15 pts at P
 *   2026-04-04  mem_2 earns 400.00 at P  → 40 pts
 *   2026-04-06  mem_4 earns 1000.00 at P → 100 pts
 *   2026-04-08  mem_5 earns  10.00 at P  →  1 pt
 *
 * And a developer's sandbox partner S (points valid 5 days) with sandbox members, whose traffic
 * would move every measure if it counted — opening liability, flows, breakage, active members,
 * retention, RFM and the top fifth — and must not:
 *
 *   2026-02-25  mem_s1 earns  500.00 at S → 50 pts   (expires 03-02)
 *   2026-03-03  mem_s1 earns  300.00 at S → 30 pts   (expires 03-08)
 *   2026-03-04  mem_s2 earns 9000.00 at S → 900 pts  (expires 03-09; the largest spender by far)
 *   2026-03-06  mem_s2 burns 100 pts at S
 *   2026-03-18  the same expiry run: 880 sandbox points expire
 *   2026-04-05  mem_s1 earns   50.00 at S → 5 pts
 */
let db: Db;
const clock = fixedClock("2026-02-20T10:00:00Z");
const W = { from: new Date("2026-03-01T00:00:00Z"), to: new Date("2026-05-01T00:00:00Z") };

beforeAll(async () => {
  db = await createTestDb();
  const log = createLogger("silent");
  const earn = createEarnService({ db, clock, log, ledger: createLedger({ db, log }), members: createMemberAccess() });
  const P = (await createPartner(db, { name: "P" })).id;
  const Q = (await createPartner(db, { name: "Q" })).id;
  await createContract(db, P);
  await createContract(db, Q, { points_validity_days: 5 });
  for (const n of [1, 2, 4, 5]) await createMember(db, P, { id: `mem_${n}` });
  await createMember(db, Q, { id: "mem_3" });
  const S = (await createPartner(db, { name: "S (sandbox)", sandbox: true })).id;
  await createContract(db, S, { points_validity_days: 5 });
  for (const n of [1, 2]) await createMember(db, S, { id: `mem_s${n}`, sandbox: true });
  const at = async (when: string, work: () => Promise<unknown>) => {
    clock.set(when);
    await work();
  };
  const buy = (partner: string, member: string, id: string, amount: number) => db.transaction((trx) => earn.earn(trx, partner, { member_id: member, partner_transaction_id: id, amount_minor: amount, currency: "EUR" }));
  const burn = (partner: string, member: string, id: string, points: number) => db.transaction((trx) => earn.burn(trx, partner, { member_id: member, partner_transaction_id: id, points, amount_minor: points * 10, currency: "EUR" }));
  await at("2026-02-20T10:00:00Z", () => buy(P, "mem_1", "t0", 10_000));
  await at("2026-02-25T10:00:00Z", () => buy(S, "mem_s1", "s0", 50_000));
  await at("2026-03-03T10:00:00Z", () => buy(S, "mem_s1", "s1", 30_000));
  await at("2026-03-04T10:00:00Z", () => buy(S, "mem_s2", "s2", 900_000));
  await at("2026-03-06T10:00:00Z", () => burn(S, "mem_s2", "sb1", 100));
  await at("2026-03-02T10:00:00Z", () => buy(P, "mem_1", "t1", 20_000));
  await at("2026-03-05T10:00:00Z", () => buy(P, "mem_2", "t2", 5_000));
  await at("2026-03-10T10:00:00Z", () => buy(Q, "mem_3", "t3", 3_000));
  await at("2026-03-12T10:00:00Z", () => buy(Q, "mem_3", "t4", 2_000));
  await at("2026-03-13T10:00:00Z", () => burn(Q, "mem_3", "b1", 1));
  await at("2026-03-18T03:00:00Z", () => earn.runExpiry());
  await at("2026-04-03T10:00:00Z", () => burn(P, "mem_1", "b2", 15));
  await at("2026-04-04T10:00:00Z", () => buy(P, "mem_2", "t5", 40_000));
  await at("2026-04-06T10:00:00Z", () => buy(P, "mem_4", "t6", 100_000));
  await at("2026-04-05T10:00:00Z", () => buy(S, "mem_s1", "s3", 5_000));
  await at("2026-04-08T10:00:00Z", () => buy(P, "mem_5", "t7", 1_000));
  clock.set("2026-04-30T12:00:00Z");
});
afterAll(async () => db?.destroy());

const analytics = () => createAnalyticsService({ db, clock });

describe("network analytics on a hand-computed network", () => {
  it("has sandbox traffic in the window that the figures below leave out", async () => {
    const n = (q: string) => db.raw(q).then((r: { rows: Array<{ n: number }> }) => Number(r.rows[0]!.n));
    expect(await n("SELECT count(*) AS n FROM point_transactions t JOIN partners p ON p.id = t.partner_id WHERE p.sandbox")).toBe(5);
    expect(await n("SELECT count(*) AS n FROM ledger_entries e JOIN members m ON m.id = e.member_id WHERE m.sandbox AND e.kind = 'expire'")).toBeGreaterThan(0);
  });

  it("points liability outstanding at the end of each day", async () => {
    const series = await analytics().liability(W);
    expect(series).toHaveLength(61);
    const at = (d: string) => series.find((x) => x.day === d)!.points;
    expect(at("2026-03-01")).toBe(10n);
    expect(at("2026-03-02")).toBe(30n);
    expect(at("2026-03-12")).toBe(40n);
    expect(at("2026-03-13")).toBe(39n);
    expect(at("2026-03-18")).toBe(35n);
    expect(at("2026-04-03")).toBe(20n);
    expect(at("2026-04-30")).toBe(161n);
    // It agrees with the ledger's own balances of live members' accounts; the sandbox members hold
    // 5 more points that the operator's liability leaves out.
    const balances = async (sandbox: boolean) =>
      BigInt(
        ((await db.raw("SELECT coalesce(sum(a.balance), 0)::bigint AS b FROM ledger_accounts a JOIN members m ON m.id = a.member_id WHERE a.kind IN ('member_points', 'member_points_held', 'member_points_debt') AND m.sandbox = ?", [sandbox])) as { rows: Array<{ b: bigint }> }).rows[0]!.b,
      );
    expect(await balances(false)).toBe(161n);
    expect(await balances(true)).toBe(5n);
  });

  it("points issued and redeemed per day, and the redemption rate", async () => {
    const series = await analytics().issuedRedeemed(W);
    expect(series).toHaveLength(61);
    const nonZero = series.filter((x) => x.issued || x.redeemed).map((x) => [x.day, Number(x.issued), Number(x.redeemed)]);
    expect(nonZero).toEqual([
      ["2026-03-02", 20, 0],
      ["2026-03-05", 5, 0],
      ["2026-03-10", 3, 0],
      ["2026-03-12", 2, 0],
      ["2026-03-13", 0, 1],
      ["2026-04-03", 0, 15],
      ["2026-04-04", 40, 0],
      ["2026-04-06", 100, 0],
      ["2026-04-08", 1, 0],
    ]);
    // 16 redeemed of 171 issued = 9.356…% → 935 bps (floored).
    expect(await analytics().redemptionRate(W)).toEqual({ issued: 171n, redeemed: 16n, rate_bps: 935 });
  });

  it("breakage: 4 of the 5 points that came due expired", async () => {
    expect(await analytics().breakage(W)).toEqual({ expired: 4n, due: 5n, expired_of_due: 4n, rate_bps: 8_000 });
    // Lots due on 03-15 and 03-17, expired by the run of 03-18: a window of 03-16 … 03-17 sees one
    // lot come due (2 points, both expired) and no expiry run.
    expect(await analytics().breakage({ from: new Date("2026-03-16T00:00:00Z"), to: new Date("2026-03-18T00:00:00Z") })).toEqual({ expired: 0n, due: 2n, expired_of_due: 2n, rate_bps: 10_000 });
    expect(await analytics().breakage({ from: new Date("2026-04-01T00:00:00Z"), to: W.to })).toEqual({ expired: 0n, due: 0n, expired_of_due: 0n, rate_bps: null });
  });

  it("active members per month and month-on-month retention", async () => {
    expect(await analytics().activeMembers(W)).toEqual([
      { month: "2026-03", members: 3 },
      { month: "2026-04", members: 4 },
    ]);
    // Of March's mem_1, mem_2, mem_3, two came back in April.
    expect(await analytics().retention(W)).toEqual([{ month: "2026-04", base: 3, retained: 2, rate_bps: 6_666 }]);
  });

  it("RFM scores by NTILE(3) and the segments", async () => {
    const { members, segments } = await analytics().rfm(W, "EUR");
    expect(members.map((m) => [m.member_id, m.recency_days, m.frequency, Number(m.monetary), m.r, m.f, m.m, m.segment])).toEqual([
      ["mem_1", 60, 1, 20_000, 1, 1, 2, "lost"],
      ["mem_2", 27, 2, 45_000, 2, 2, 2, "loyal"],
      ["mem_3", 50, 2, 5_000, 1, 3, 1, "at_risk"],
      ["mem_4", 25, 1, 100_000, 2, 1, 3, "needs_attention"],
      ["mem_5", 23, 1, 1_000, 3, 2, 1, "loyal"],
    ]);
    expect(segments.map((s) => [s.segment, s.members, Number(s.spend)])).toEqual([
      ["champions", 0, 0],
      ["loyal", 2, 46_000],
      ["new", 0, 0],
      ["at_risk", 1, 5_000],
      ["lost", 1, 20_000],
      ["needs_attention", 1, 100_000],
    ]);
    expect(rfmSegment(3, 3)).toBe("champions");
    expect(rfmSegment(3, 1)).toBe("new");
  });

  it("the top fifth of members' share of spend (20/80)", async () => {
    // 5 spending members → the top 1 (mem_4, 1000.00) of 1710.00 = 58.479…% → 5847 bps.
    expect(await analytics().topFifthShare(W, "EUR")).toEqual({ members: 5, top_members: 1, top_spend: 100_000n, total_spend: 171_000n, share_bps: 5_847 });
    expect(await analytics().topFifthShare(W, "USD")).toEqual({ members: 0, top_members: 0, top_spend: 0n, total_spend: 0n, share_bps: null });
  });
});
