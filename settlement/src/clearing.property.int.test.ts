import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, fixedClock } from "../../test/harness.ts";
import { seedNetwork, type MonthTraffic } from "../../test/factories/settlement.ts";
import { createLogger } from "../../gateway/src/infra/logger.ts";
import type { Db } from "../../gateway/src/infra/db.ts";
import { createClearingService, type ClearingService } from "./clearing.service.ts";
import { createDisputesService } from "./disputes.service.ts";

/**
 * Random months of traffic — earns, burns, partial refunds and expiry across three partners and
 * three members, and disputes of earlier statements' lines accepted with random adjustments or
 * rejected — each cleared in turn: every run must pass its own checks (trace to the ledger,
 * pricing twice, points conservation) and the network must sum to exactly zero.
 */

let db: Db;
const clock = fixedClock("2026-04-01T00:00:00Z");
let t: MonthTraffic;
let clearing: ClearingService;
let month = 4;

type Op =
  | { kind: "earn"; p: number; m: number; amount: number; day: number }
  | { kind: "burn"; p: number; m: number; points: number; day: number }
  | { kind: "refund"; idx: number; pct: number; day: number }
  | { kind: "expire"; day: number }
  | { kind: "dispute"; idx: number; line: number; accept: boolean; amount: number; day: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("earn" as const), p: fc.nat(2), m: fc.nat(2), amount: fc.integer({ min: 1, max: 300_000 }), day: fc.integer({ min: 1, max: 28 }) }),
  fc.record({ kind: fc.constant("burn" as const), p: fc.nat(2), m: fc.nat(2), points: fc.integer({ min: 1, max: 80 }), day: fc.integer({ min: 1, max: 28 }) }),
  fc.record({ kind: fc.constant("refund" as const), idx: fc.nat(), pct: fc.integer({ min: 1, max: 100 }), day: fc.integer({ min: 1, max: 28 }) }),
  fc.record({ kind: fc.constant("expire" as const), day: fc.integer({ min: 1, max: 28 }) }),
  fc.record({
    kind: fc.constant("dispute" as const),
    idx: fc.nat(),
    line: fc.nat(),
    accept: fc.boolean(),
    amount: fc.integer({ min: -50_000, max: 50_000 }).filter((a) => a !== 0),
    day: fc.integer({ min: 1, max: 28 }),
  }),
);

beforeAll(async () => {
  db = await createTestDb();
  t = await seedNetwork(db, clock);
  clearing = createClearingService({ db, clock, log: createLogger("silent") });
  const partners = Object.values(t.partners);
  for (const m of Object.values(t.members)) {
    await db("member_partner_links")
      .insert(partners.map((p) => ({ member_id: m, partner_id: p, relation: "used" })))
      .onConflict(["member_id", "partner_id"])
      .ignore();
  }
  clock.set("2026-05-01T01:00:00Z");
  await clearing.runToEnd((await clearing.startRun("2026-04")).run.id);
});
afterAll(async () => {
  await db.destroy();
});

describe("random months", () => {
  it("every month clears, passes its checks and sums to zero across the network", async () => {
    const partners = Object.values(t.partners);
    const members = Object.values(t.members);
    const earned: Array<{ partner: string; id: string }> = [];
    const disputes = createDisputesService({ db, clock });
    let n = 0;
    let accepted = 0n;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 12 }), async (ops) => {
        month++;
        const y = 2026 + Math.floor((month - 1) / 12);
        const mo = ((month - 1) % 12) + 1;
        const period = `${y}-${String(mo).padStart(2, "0")}`;
        for (const o of [...ops].sort((a, b) => a.day - b.day)) {
          clock.set(`${period}-${String(o.day).padStart(2, "0")}T12:00:00Z`);
          try {
            if (o.kind === "earn") {
              const r = await db.transaction((trx) =>
                t.earn.earn(trx, partners[o.p]!, { member_id: members[o.m]!, partner_transaction_id: `P-${++n}`, amount_minor: o.amount, currency: "EUR" }),
              );
              earned.push({ partner: partners[o.p]!, id: r.transaction_id });
            } else if (o.kind === "burn") {
              await db.transaction((trx) => t.earn.burn(trx, partners[o.p]!, { member_id: members[o.m]!, partner_transaction_id: `P-${++n}`, points: o.points, amount_minor: o.points * 10, currency: "EUR" }));
            } else if (o.kind === "refund" && earned.length > 0) {
              const e = earned[o.idx % earned.length]!;
              const row: { amount_minor: bigint; refunded_minor: bigint } = await db("point_transactions").where({ id: e.id }).first("amount_minor", "refunded_minor");
              const left = Number(row.amount_minor) - Number(row.refunded_minor);
              if (left > 0) {
                await db.transaction((trx) => t.earn.refund(trx, e.partner, e.id, { refund_id: `R-${++n}`, amount_minor: Math.max(1, Math.floor((left * o.pct) / 100)) }));
              }
            } else if (o.kind === "expire") {
              await t.earn.runExpiry();
            } else if (o.kind === "dispute") {
              const closed: Array<{ id: string; partner_id: string }> = await db("settlement_statements").where({ status: "closed" }).orderBy("id").select("id", "partner_id");
              const st = closed[o.idx % closed.length]!;
              const lines: Array<{ line_no: number }> = await db("settlement_lines").where({ statement_id: st.id }).orderBy("line_no").select("line_no");
              if (lines.length > 0) {
                const d = await db.transaction((trx) =>
                  disputes.open(trx, st.partner_id, "cli_p", st.id, { line_no: lines[o.line % lines.length]!.line_no, reason: "random", amount_claimed_minor: o.amount }),
                );
                await db.transaction((trx) => disputes.resolve(trx, d.id, "cli_o", { outcome: o.accept ? "accepted" : "rejected", note: "random" }));
                if (o.accept) accepted += BigInt(o.amount);
              }
            }
          } catch (err) {
            // Refusals (not enough points) are part of the traffic; anything else is a failure.
            if ((err as { code?: string }).code !== "insufficient-points") throw err;
          }
        }
        clock.set(new Date(Date.UTC(y, mo, 1, 1)));
        const run = await clearing.runToEnd((await clearing.startRun(period)).run.id);
        expect(run.status, run.failure ?? "").toBe("closed");
        const report = (typeof run.report === "string" ? JSON.parse(run.report) : run.report) as { currencies: Array<{ network_sum_minor: number }> };
        for (const c of report.currencies) expect(c.network_sum_minor).toBe(0);
        const sums = (await db.raw(
          `SELECT coalesce(sum(s.net_amount_minor), 0)::bigint AS nets, (SELECT coalesce(sum(l.amount_minor), 0)::bigint FROM settlement_lines l JOIN settlement_statements s2 ON s2.id = l.statement_id WHERE s2.run_id = ?) AS lines
             FROM settlement_statements s WHERE s.run_id = ?`,
          [run.id, run.id],
        )) as { rows: Array<{ nets: bigint; lines: bigint }> };
        expect(BigInt(sums.rows[0]!.nets)).toBe(BigInt(sums.rows[0]!.lines));
        // Every accepted adjustment so far is on exactly one closed statement, for its amount.
        const adj = (await db.raw(
          `SELECT count(*)::int AS n, coalesce(sum(a.amount_minor), 0)::bigint AS total,
                  count(*) FILTER (WHERE s.status IS DISTINCT FROM 'closed' OR l.amount_minor IS DISTINCT FROM a.amount_minor)::int AS bad
             FROM settlement_adjustments a
             LEFT JOIN settlement_statements s ON s.id = a.statement_id
             LEFT JOIN settlement_lines l ON l.statement_id = a.statement_id AND l.adjustment_id = a.id`,
        )) as { rows: Array<{ n: number; total: bigint; bad: number }> };
        expect(adj.rows[0]!.bad).toBe(0);
        expect(BigInt(adj.rows[0]!.total)).toBe(accepted);
      }),
      { numRuns: 8 },
    );
    // Eight months cleared in full (with each statement's PDF rendered): minutes on a loaded 2-core machine.
  }, 300_000);
});
