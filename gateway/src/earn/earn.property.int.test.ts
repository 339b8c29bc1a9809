import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { createTestDb } from "../../../test/harness.ts";
import { createMember } from "../../../test/factories/network.ts";
import { createEarningPartner, linkToPartner } from "../../../test/factories/ledger.ts";
import { fixedClock } from "../infra/clock.ts";
import { createLogger } from "../infra/logger.ts";
import type { Db } from "../infra/db.ts";
import { AppError } from "../http/problem.ts";
import { createLedger } from "../ledger/ledger.service.ts";
import { createIdempotency, type IdempotentRequest } from "../idempotency/idempotency.service.ts";
import type { HandlerResult } from "../http/router.ts";
import { createMemberAccess } from "../members/member-access.ts";
import { createEarnService } from "./earn.service.ts";
import { createEarnBatch } from "./earn.batch.ts";
import { createDirectBurn } from "./burn.direct.ts";
import { baseRateRules } from "./earn.rules.ts";

type Op =
  | { op: "earn"; m: number; p: number; amount: number }
  | { op: "purchase"; m: number; p: number; amount: number; burn: number }
  | { op: "burn"; m: number; p: number; points: number }
  | { op: "burst"; burns: Array<{ m: number; p: number; points: number }> }
  | { op: "hold"; m: number; p: number; points: number; minutes: number }
  | { op: "capture"; r: number; points: number | undefined }
  | { op: "void"; r: number }
  | { op: "refund"; t: number; amount: number | undefined }
  | { op: "time"; days: number }
  | { op: "replay"; i: number };

const w = <T,>(weight: number, arbitrary: fc.Arbitrary<T>) => ({ weight, arbitrary });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  w(4, fc.record({ op: fc.constant("earn" as const), m: fc.nat(2), p: fc.nat(1), amount: fc.integer({ min: 0, max: 200_000 }) })),
  w(2, fc.record({ op: fc.constant("purchase" as const), m: fc.nat(2), p: fc.nat(1), amount: fc.integer({ min: 0, max: 100_000 }), burn: fc.integer({ min: 1, max: 150 }) })),
  w(3, fc.record({ op: fc.constant("burn" as const), m: fc.nat(2), p: fc.nat(1), points: fc.integer({ min: 1, max: 150 }) })),
  // Burns sent at once: the first leaves alone, the others are written together (points_burn_batch).
  w(2, fc.record({ op: fc.constant("burst" as const), burns: fc.array(fc.record({ m: fc.nat(2), p: fc.nat(1), points: fc.integer({ min: 1, max: 80 }) }), { minLength: 2, maxLength: 6 }) })),
  w(3, fc.record({ op: fc.constant("hold" as const), m: fc.nat(2), p: fc.nat(1), points: fc.integer({ min: 1, max: 150 }), minutes: fc.integer({ min: 1, max: 60 * 24 * 3 }) })),
  w(3, fc.record({ op: fc.constant("capture" as const), r: fc.nat(20), points: fc.option(fc.integer({ min: 0, max: 150 }), { nil: undefined }) })),
  w(2, fc.record({ op: fc.constant("void" as const), r: fc.nat(20) })),
  w(3, fc.record({ op: fc.constant("refund" as const), t: fc.nat(20), amount: fc.option(fc.integer({ min: 1, max: 100_000 }), { nil: undefined }) })),
  w(1, fc.record({ op: fc.constant("time" as const), days: fc.integer({ min: 1, max: 40 }) })),
  w(2, fc.record({ op: fc.constant("replay" as const), i: fc.nat(50) })),
);

let db: Db;
beforeAll(async () => {
  db = await createTestDb();
});
afterAll(async () => {
  await db.destroy();
});

describe("the ledger under random sequences of earn, burn, hold, capture, void, refund and expiry", () => {
  it("balances every entry, sums to zero, keeps floors, lots equal balances, and replays change nothing", async () => {
    const clock = fixedClock("2026-01-01T00:00:00Z");
    const ledger = createLedger({ db });
    const idem = createIdempotency({ db });
    const earn = createEarnService({ db, clock, log: createLogger("silent"), ledger, members: createMemberAccess() });
    // Plain earns take the batched path and burns the one-statement path, as over HTTP; the rest goes one by one.
    const batch = createEarnBatch({ db, clock, log: createLogger("silent"), rules: baseRateRules, earn, idempotency: idem, options: { maxWaitMs: 0 } });
    const direct = createDirectBurn({ db, clock, log: createLogger("silent"), earn, idempotency: idem });
    const together = createDirectBurn({ db, clock, log: createLogger("silent"), earn, idempotency: idem, batchMaxItems: 32 });
    const partners = [
      (await createEarningPartner(db, { points_validity_days: 60, negative_floor: -40n, effective_from: new Date("2020-01-01T00:00:00Z") })).partner.id,
      (await createEarningPartner(db, { points_validity_days: 45, refund_policy: "recovery_entry", negative_floor: 0n })).partner.id,
    ];
    let run = 0;

    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 30 }), async (ops) => {
        run++;
        const members: string[] = [];
        const redemptions: Array<{ id: string; p: string }> = [];
        const transactions: Array<{ id: string; p: string }> = [];
        for (let i = 0; i < 3; i++) {
          const m = (await createMember(db, partners[i % 2]!)).id;
          await linkToPartner(db, m, partners[(i + 1) % 2]!);
          members.push(m);
          const p = partners[i % 2]!;
          const funded = await db.transaction((trx) => earn.earn(trx, p, { member_id: m, partner_transaction_id: `fund-${m}`, amount_minor: 150_000, currency: "EUR" }));
          transactions.push({ id: funded.transaction_id, p });
        }
        const done: Array<{ key: string; p: string; path: string; body: unknown; work: Parameters<typeof idem.run>[1] }> = [];
        let seq = 0;

        const call = async (
          p: string,
          path: string,
          body: unknown,
          work: Parameters<typeof idem.run>[1],
          via?: (request: IdempotentRequest) => Promise<HandlerResult>,
        ) => {
          const key = `r${run}-${++seq}`;
          done.push({ key, p, path, body, work });
          const request = { principal: `partner:${p}`, key, method: "POST", path, body };
          try {
            return (await (via ? via(request) : idem.run(request, work))).body as Record<string, unknown>;
          } catch (err) {
            if (err instanceof AppError && err.status < 500) return undefined;
            throw err;
          }
        };

        for (const o of ops) {
          const tx = `t${run}-${seq}`;
          switch (o.op) {
            case "earn":
            case "purchase": {
              const p = partners[o.p]!;
              const body = {
                member_id: members[o.m]!,
                partner_transaction_id: tx,
                amount_minor: o.amount + (o.op === "purchase" ? 1_000 : 0),
                currency: "EUR",
                ...(o.op === "purchase" ? { burn: { points: o.burn, amount_minor: 1_000 } } : {}),
              };
              const work: Parameters<typeof idem.run>[1] = async (trx) => ({ status: 201, body: await earn.earn(trx, p, body) });
              const res =
                o.op === "earn" && batch.accepts(body)
                  ? await call(p, "/v1/earn", body, work, (request) => batch.submit({ partnerId: p, input: body, request }))
                  : await call(p, "/v1/earn", body, work);
              if (res) transactions.push({ id: res.transaction_id as string, p });
              break;
            }
            case "burn": {
              const p = partners[o.p]!;
              const body = { member_id: members[o.m]!, partner_transaction_id: tx, points: o.points, amount_minor: o.points * 10, currency: "EUR" };
              const res = await call(p, "/v1/burn", body, async (trx) => ({ status: 201, body: await earn.burn(trx, p, body) }), (request) =>
                direct.submit({ partnerId: p, input: body, request }),
              );
              if (res) transactions.push({ id: res.transaction_id as string, p });
              break;
            }
            case "burst": {
              const sent = o.burns.map((b, i) => {
                const p = partners[b.p]!;
                const body = { member_id: members[b.m]!, partner_transaction_id: `${tx}-${i}`, points: b.points, amount_minor: b.points * 10, currency: "EUR" };
                return call(p, "/v1/burn", body, async (trx) => ({ status: 201, body: await earn.burn(trx, p, body) }), (request) =>
                  together.submit({ partnerId: p, input: body, request }),
                ).then((res) => res && transactions.push({ id: res.transaction_id as string, p }));
              });
              await Promise.all(sent);
              break;
            }
            case "hold": {
              const p = partners[o.p]!;
              const body = { member_id: members[o.m]!, partner_transaction_id: tx, points: o.points, amount_minor: o.points * 10, currency: "EUR", hold_minutes: o.minutes };
              const res = await call(p, "/v1/redemptions", body, async (trx) => ({ status: 201, body: await earn.hold(trx, p, body) }));
              if (res) redemptions.push({ id: res.id as string, p });
              break;
            }
            case "capture": {
              const r = redemptions[o.r % Math.max(1, redemptions.length)];
              if (!r) break;
              const body = o.points === undefined ? {} : { points: o.points };
              const res = await call(r.p, `/v1/redemptions/${r.id}/capture`, body, async (trx) => ({ status: 200, body: await earn.capture(trx, r.p, r.id, body) }));
              if (res) transactions.push({ id: res.transaction_id as string, p: r.p });
              break;
            }
            case "void": {
              const r = redemptions[o.r % Math.max(1, redemptions.length)];
              if (!r) break;
              await call(r.p, `/v1/redemptions/${r.id}/void`, null, async (trx) => ({ status: 200, body: await earn.void(trx, r.p, r.id) }));
              break;
            }
            case "refund": {
              const t = transactions[o.t % Math.max(1, transactions.length)];
              if (!t) break;
              const body = { refund_id: `rf${run}-${seq}`, ...(o.amount === undefined ? {} : { amount_minor: o.amount }) };
              await call(t.p, `/v1/transactions/${t.id}/refund`, body, async (trx) => ({ status: 201, body: await earn.refund(trx, t.p, t.id, body) }));
              break;
            }
            case "time": {
              clock.advance(o.days * 86_400_000);
              for (const id of await earn.dueHolds()) await earn.expireHold(id);
              await earn.runExpiry({ noticeDays: 10 });
              break;
            }
            case "replay": {
              const d = done[o.i % Math.max(1, done.length)];
              if (!d) break;
              const before = await snapshot(db);
              let replayed: unknown;
              try {
                replayed = await idem.run({ principal: `partner:${d.p}`, key: d.key, method: "POST", path: d.path, body: d.body }, d.work);
              } catch (err) {
                if (!(err instanceof AppError && err.status < 500)) throw err;
                replayed = err.code;
              }
              expect(await snapshot(db)).toEqual(before);
              expect(replayed).toBeDefined();
              break;
            }
          }
        }
        expect(await ledger.checkInvariants()).toEqual([]);
        for (const m of members) {
          const b = await ledger.balances(db, m);
          expect(b.points >= 0n && b.held >= 0n && b.debt <= 0n && b.debt >= b.debtFloor).toBe(true);
        }
      }),
      // A fixed seed keeps CI repeatable (and the coverage check below stable); set PROPERTY_SEED
      // (and PROPERTY_RUNS) to explore other sequences.
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 40), seed: Number(process.env.PROPERTY_SEED ?? 20261122) },
    );
    expect(batch.stats().written, "earns written by the batch").toBeGreaterThan(0);
    expect(direct.stats().direct, "burns written in one statement").toBeGreaterThan(0);
    const t = together.stats();
    expect(t.batchedCalls! - t.batches!, "burns that shared a batch with another").toBeGreaterThan(0);
    // The default seed's sequences reach every kind of movement (else the property proves little);
    // with another PROPERTY_SEED only the invariants above are asserted.
    if (process.env.PROPERTY_SEED) return;
    const kinds: Array<{ kind: string; n: string }> = await db("ledger_entries").groupBy("kind").select("kind", db.raw("count(*)::text AS n"));
    const seen = Object.fromEntries(kinds.map((k) => [k.kind, Number(k.n)]));
    for (const k of ["earn", "burn", "hold", "capture", "release", "refund", "expire"]) expect(seen[k] ?? 0, k).toBeGreaterThan(0);
    const outcomes: { debt: string | null; recovery: string | null } = await db("point_refunds").first(db.raw("sum(to_debt)::text AS debt"), db.raw("sum(to_recovery)::text AS recovery"));
    expect(Number(outcomes.debt ?? 0) + Number(outcomes.recovery ?? 0), "refunds of spent points").toBeGreaterThan(0);
    // 40 sequences of up to 30 operations: seconds on PostgreSQL, minutes on PGlite on a busy machine.
  }, 300_000);
});

async function snapshot(db: Db) {
  const [entries, accounts] = await Promise.all([
    db("ledger_entries").count<{ count: string }[]>("* as count"),
    db("ledger_accounts").orderBy("id").select("id", "balance"),
  ]);
  return { entries: String(entries[0]!.count), accounts: accounts.map((a: { id: string; balance: bigint | null }) => `${a.id}=${a.balance}`) };
}
