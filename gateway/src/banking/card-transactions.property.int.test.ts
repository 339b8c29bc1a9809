import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixedClock, startTestHub, type TestHub } from "../../../test/harness.ts";
import { bankScenario, cardEvent } from "../../../test/factories/banking.ts";
import { createLedger } from "../ledger/ledger.service.ts";
import { derivePurchase, keptReward } from "./card-transactions.rules.ts";
import type { CardEventInput, PurchaseRow } from "./card-transactions.service.ts";

const clock = fixedClock("2026-11-03T12:00:00.000Z");
let hub: TestHub;
let scenarios: Array<Awaited<ReturnType<typeof bankScenario>> & { cashbackBps: number | null }>;

beforeAll(async () => {
  hub = await startTestHub({ clock, workers: false });
  const points = await bankScenario(hub);
  const cashback = await bankScenario(hub);
  await hub.db("card_offers").insert({
    id: "off_property_5pct",
    partner_id: cashback.merchant.id,
    name: "5%",
    reward_type: "cashback",
    cashback_bps: 500,
    currency: "EUR",
    starts_at: new Date("2026-01-01T00:00:00Z"),
    return_period_days: 30,
    created_at: new Date(),
  });
  scenarios = [];
  for (const [s, bps] of [
    [points, null],
    [cashback, 500],
  ] as const) {
    await hub.db.transaction((trx) => s.banking.cards.link(trx, s.bank.id, { member_id: s.member.id, card_token: s.cardToken, bin: "411111", last_four: "1111", expiry_month: "2029-04" }));
    scenarios.push({ ...s, cashbackBps: bps });
  }
});
afterAll(async () => {
  expect(await createLedger({ db: hub.db }).checkInvariants()).toEqual([]);
  await hub.close();
});

/** One purchase's events: an optional auth, its reversal or not, 0–2 clearings, 0–2 refunds. */
const purchaseEvents = fc.record({
  auth: fc.option(fc.integer({ min: 1, max: 50_000 }), { nil: null }),
  reversed: fc.boolean(),
  clearings: fc.array(fc.integer({ min: 1, max: 50_000 }), { maxLength: 2 }),
  refunds: fc.array(fc.integer({ min: 1, max: 30_000 }), { maxLength: 2 }),
});

type Plan = { type: "auth" | "clearing" | "reversal" | "refund"; amount: number; n: number };

function plan(p: { auth: number | null; reversed: boolean; clearings: number[]; refunds: number[] }): Plan[] {
  const out: Plan[] = [];
  if (p.auth !== null) out.push({ type: "auth", amount: p.auth, n: 0 });
  if (p.auth !== null && p.reversed) out.push({ type: "reversal", amount: p.auth, n: 0 });
  p.clearings.forEach((a, n) => out.push({ type: "clearing", amount: a, n }));
  p.refunds.forEach((a, n) => out.push({ type: "refund", amount: a, n }));
  return out;
}

/** An arrival order: every event at least once, some twice or three times, in any order. */
const arrival = (n: number) =>
  fc.tuple(fc.array(fc.integer({ min: 0, max: Math.max(0, n - 1) }), { maxLength: n }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 3 * n, maxLength: 3 * n })).map(([dups, keys]) => {
    const seq = [...Array.from({ length: n }, (_, i) => i), ...dups, ...dups.slice(0, 1)];
    return seq.map((idx, k) => ({ idx, key: keys[k] ?? 0 })).sort((a, b) => a.key - b.key).map((x) => x.idx);
  });

let run = 0;

describe("card events converge", () => {
  it("duplicated and out-of-order events of a purchase end in the same state and the same ledger, the one its event set says, whichever path took them", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 1 }),
        purchaseEvents
          .filter((p) => p.auth !== null || p.clearings.length > 0)
          .chain((p) => {
            const events = plan(p);
            return fc.tuple(fc.constant(events), arrival(events.length), arrival(events.length), fc.integer({ min: 1, max: 2 * events.length }));
          }),
        fc.context(),
        async (which, [events, first, second, chunk], ctx) => {
          const orders = [first, second];
          const s = scenarios[which]!;
          const rows: PurchaseRow[] = [];
          for (const order of orders) {
            const ref = `prop-${++run}`;
            const inputs: CardEventInput[] = events.map((e, i) =>
              cardEvent(s, { id: `${ref}-${e.type}-${e.n}-${i}`, type: e.type, purchase: ref, amount: e.amount, at: "2026-11-02T10:00:00.000Z" }) as CardEventInput,
            );
            const batch = order === second;
            ctx.log(`${ref} (${batch ? `batch path, chunks of ${chunk}` : "one by one"}): ${order.map((i) => `${events[i]!.type}:${events[i]!.amount}`).join(", ")}`);
            if (!batch) {
              // Each arrival is its own request (its own transaction), as a bank's retries would be.
              for (const i of order) await hub.db.transaction((trx) => s.banking.transactions.ingest(trx, s.bank.id, [inputs[i]!]));
            } else {
              // The batch path: the arrivals cut into chunks, each chunk one transaction (as a file's).
              for (let c = 0; c < order.length; c += chunk) {
                await hub.db.transaction((trx) => s.banking.transactions.ingestBatch(trx, s.bank.id, order.slice(c, c + chunk).map((i) => inputs[i]!)));
              }
            }
            rows.push(await hub.db("card_purchases").where({ bank_partner_id: s.bank.id, purchase_ref: ref }).first());
          }
          const pick = (r: PurchaseRow) => ({
            status: r.status,
            authorized: Number(r.authorized_minor),
            cleared: Number(r.cleared_minor),
            refunded: Number(r.refunded_minor),
            pendingPoints: Number(r.pending_points),
            pendingCashback: Number(r.pending_cashback_minor),
            points: Number(r.booked_points),
            cashback: Number(r.booked_cashback_minor),
          });
          expect(pick(rows[0]!)).toEqual(pick(rows[1]!));

          // …and that state is the one the set of events says, whatever the order.
          const state = derivePurchase(
            events.map((e) => ({ type: e.type, amountMinor: BigInt(e.amount), transactionAt: new Date("2026-11-02T10:00:00.000Z") })),
            clock.now(),
            7,
          );
          const basis = state.status === "authorized" ? state.authorizedMinor : state.clearedMinor;
          const full = s.cashbackBps === null ? basis / 1000n : (basis * BigInt(s.cashbackBps)) / 10000n;
          const booked = state.status === "cleared" || state.status === "refunded" ? keptReward(full, state.clearedMinor, state.refundedMinor) : 0n;
          expect(pick(rows[0]!)).toEqual({
            status: state.status,
            authorized: Number(state.authorizedMinor),
            cleared: Number(state.clearedMinor),
            refunded: Number(state.refundedMinor),
            pendingPoints: state.status === "authorized" && s.cashbackBps === null ? Number(full) : 0,
            pendingCashback: state.status === "authorized" && s.cashbackBps !== null ? Number(full) : 0,
            points: s.cashbackBps === null ? Number(booked) : 0,
            cashback: s.cashbackBps !== null ? Number(booked) : 0,
          });

          // The ledger holds exactly what each purchase says it booked.
          for (const r of rows) {
            const sums: Array<{ kind: string; s: string }> = await hub.db("ledger_postings as p")
              .join("ledger_entries as e", "e.id", "p.entry_id")
              .join("ledger_accounts as a", "a.id", "p.account_id")
              .where({ "e.ref_type": "card_purchase", "e.ref_id": r.id })
              .whereIn("a.kind", ["partner_issuance", "member_cashback"])
              .groupBy("a.kind")
              .select("a.kind", hub.db.raw("sum(p.amount)::bigint AS s"));
            const of = (k: string) => Number(sums.find((x) => x.kind === k)?.s ?? 0);
            expect(0 - of("partner_issuance")).toBe(Number(r.booked_points));
            expect(of("member_cashback")).toBe(Number(r.booked_cashback_minor));
          }
        },
      ),
      { numRuns: 40 },
    );
  }, 240_000);
});
