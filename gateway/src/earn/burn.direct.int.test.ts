import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { json } from "../../../test/http.ts";
import { createMember } from "../../../test/factories/network.ts";
import { ledgerScenario } from "../../../test/factories/ledger.ts";
import { createLogger } from "../infra/logger.ts";
import type { AppError } from "../http/problem.ts";
import { createLedger } from "../ledger/ledger.service.ts";
import { createIdempotency } from "../idempotency/idempotency.service.ts";
import { createMemberAccess } from "../members/member-access.ts";
import { createEarnService, type BurnInput } from "./earn.service.ts";
import { createDirectBurn } from "./burn.direct.ts";

let hub: TestHub;
beforeAll(async () => {
  // No workers: the expiry job would otherwise expire the test's lots past their date before the burn does.
  hub = await startTestHub({ workers: false });
});
afterAll(async () => {
  expect(await createLedger({ db: hub.db }).checkInvariants()).toEqual([]);
  await hub.close();
});

const DAY_MS = 86_400_000;

/** A direct burn of its own (for its counts) beside the hub's, and a way to call it as the route does. */
function directBurn(partnerId: string, opts: { batchMaxItems?: number } = {}) {
  const db = hub.db;
  const log = createLogger("silent");
  const earn = createEarnService({ db, clock: hub.clock, log, ledger: createLedger({ db }), members: createMemberAccess() });
  const direct = createDirectBurn({ db, clock: hub.clock, log, earn, idempotency: createIdempotency({ db }), ...opts });
  const burn = (input: BurnInput, key: string) =>
    direct
      .submit({ partnerId, input, request: { principal: `partner:${partnerId}`, key, method: "POST", path: "/v1/burn", body: input } })
      .then(
        (r) => ({ status: r.status, body: r.body as Record<string, unknown> }),
        (e: AppError) => ({ status: e.status, body: { code: e.code, ...e.extensions } as Record<string, unknown> }),
      );
  return { direct, burn, earn };
}

const burnBody = (memberId: string, points: number, txn: string) => ({ member_id: memberId, partner_transaction_id: txn, points, amount_minor: points * 10, currency: "EUR" });

describe("the burn in one statement", () => {
  it("burns the soonest-expiring lots first, answers as the one-by-one path does, and replays the answer", async () => {
    const s = await ledgerScenario(hub);
    const now = Date.now();
    // Two lots: 50 points earned 100 days ago (expiring first), 30 points earned today.
    expect((await s.post("/v1/earn", { member_id: s.member.id, partner_transaction_id: "old", amount_minor: 50_000, currency: "EUR", occurred_at: new Date(now - 100 * DAY_MS).toISOString() })).status).toBe(201);
    expect((await s.post("/v1/earn", { member_id: s.member.id, partner_transaction_id: "new", amount_minor: 30_000, currency: "EUR" })).status).toBe(201);
    const { direct, burn, earn } = directBurn(s.partner.id);

    const first = await burn(burnBody(s.member.id, 40, "b-1"), "b-1");
    expect(first).toMatchObject({
      status: 201,
      body: { partner_transaction_id: "b-1", member_id: s.member.id, points_burned: 40, amount_minor: 400, currency: "EUR", balance: { available: 40, held: 0, owed: 0 } },
    });
    expect(direct.stats()).toEqual({ direct: 1, oneByOne: 0 });
    const lots = await createLedger({ db: hub.db }).openLots(hub.db, s.member.id);
    // 40 of the old lot's 50 (it expires first), none of the new one's 30.
    expect(lots.map((l) => l.remaining)).toEqual([10n, 30n]);

    // The same keys as the one-by-one path writes: a retry over HTTP replays the stored answer.
    const replay = await s.post("/v1/burn", burnBody(s.member.id, 40, "b-1"), "b-1");
    expect(replay.status).toBe(201);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(await json(replay)).toEqual(first.body);

    // The one-by-one path's answer has the same keys, in the same order.
    const slow = await hub.db.transaction((trx) => earn.burn(trx, s.partner.id, burnBody(s.member.id, 5, "b-2")));
    expect(Object.keys(slow)).toEqual(Object.keys(first.body));
    expect((await json(await s.get(`/v1/members/${s.member.id}/balance`))).available).toBe(35);
  });

  it("sends the unusual calls one by one, for their exact answers", async () => {
    const s = await ledgerScenario(hub);
    const expiring = await createMember(hub.db, s.partner.id);
    const stranger = await ledgerScenario(hub);
    expect((await s.post("/v1/earn", { member_id: s.member.id, partner_transaction_id: "e", amount_minor: 40_000, currency: "EUR" })).status).toBe(201);
    // 10 points earned three years ago (past their date, not yet expired by the job) and 20 today.
    await s.post("/v1/earn", { member_id: expiring.id, partner_transaction_id: "x-old", amount_minor: 10_000, currency: "EUR", occurred_at: new Date(Date.now() - 3 * 365 * DAY_MS).toISOString() });
    await s.post("/v1/earn", { member_id: expiring.id, partner_transaction_id: "x-new", amount_minor: 20_000, currency: "EUR" });
    const { direct, burn } = directBurn(s.partner.id);

    expect(await burn(burnBody(s.member.id, 41, "short"), "short")).toMatchObject({ status: 422, body: { code: "insufficient-points" } });
    expect(await burn(burnBody(s.member.id, 10, "ok"), "ok")).toMatchObject({ status: 201, body: { balance: { available: 30 } } });
    expect(await burn(burnBody(s.member.id, 10, "ok"), "ok-again")).toMatchObject({ status: 409, body: { code: "duplicate-transaction" } });
    expect(await burn(burnBody(stranger.member.id, 1, "stranger"), "stranger")).toMatchObject({ status: 404, body: { code: "member-not-found" } });
    expect(await burn({ ...burnBody(s.member.id, 1, "usd"), currency: "USD" }, "usd")).toMatchObject({ status: 422, body: { code: "currency-mismatch" } });
    // The lot past its date expires first, then the burn takes from what is left.
    expect(await burn(burnBody(expiring.id, 15, "after-expiry"), "after-expiry")).toMatchObject({ status: 201, body: { balance: { available: 5 } } });
    expect(await burn(burnBody(expiring.id, 6, "too-much"), "too-much")).toMatchObject({ status: 422, body: { code: "insufficient-points" } });
    expect(direct.stats()).toEqual({ direct: 1, oneByOne: 6 });

    // A refusal is stored under its key like any answer: the retry gets it again.
    const retry = await s.post("/v1/burn", burnBody(s.member.id, 41, "short"), "short-http");
    expect(retry.status).toBe(422);
    expect((await burn(burnBody(s.member.id, 41, "short"), "short")).status).toBe(422);

    await hub.db("partners").where({ id: s.partner.id }).update({ status: "suspended" });
    expect(await burn(burnBody(s.member.id, 1, "suspended"), "suspended")).toMatchObject({ status: 403, body: { code: "partner-not-active" } });
    expect((await createLedger({ db: hub.db }).balances(hub.db, s.member.id)).points).toBe(30n);
  });

  it("gives concurrent calls with one key one effect, and never spends a point twice", async () => {
    const s = await ledgerScenario(hub);
    expect((await s.post("/v1/earn", { member_id: s.member.id, partner_transaction_id: "e", amount_minor: 100_000, currency: "EUR" })).status).toBe(201);
    const { burn } = directBurn(s.partner.id);
    const twins = await Promise.all([1, 2, 3].map(() => burn(burnBody(s.member.id, 30, "twin"), "twin")));
    expect(twins.map((t) => t.status)).toEqual([201, 201, 201]);
    expect(new Set(twins.map((t) => t.body.transaction_id)).size).toBe(1);
    // Eight burns of 15 on 70 points: four pass, four are refused, whatever the interleaving.
    const many = await Promise.all(Array.from({ length: 8 }, (_, i) => burn(burnBody(s.member.id, 15, `m-${i}`), `m-${i}`)));
    expect(many.filter((m) => m.status === 201)).toHaveLength(4);
    expect(many.filter((m) => m.status === 422 && m.body.code === "insufficient-points")).toHaveLength(4);
    expect((await createLedger({ db: hub.db }).balances(hub.db, s.member.id)).points).toBe(10n);
  });
});

describe("burns written together", () => {
  const balanceOf = async (memberId: string) => (await createLedger({ db: hub.db }).balances(hub.db, memberId)).points;

  it("writes the burns that arrive together in one transaction, each answered on its own and as it would be one after the other", async () => {
    const s = await ledgerScenario(hub);
    const m2 = await createMember(hub.db, s.partner.id);
    const m3 = await createMember(hub.db, s.partner.id);
    // 100, 50 and 10 points.
    for (const [m, amount] of [[s.member.id, 100_000], [m2.id, 50_000], [m3.id, 10_000]] as const) {
      expect((await s.post("/v1/earn", { member_id: m, partner_transaction_id: `e-${m}`, amount_minor: amount, currency: "EUR" })).status).toBe(201);
    }
    const { direct, burn } = directBurn(s.partner.id, { batchMaxItems: 32 });
    // The first call leaves at once; the others, sent meanwhile, leave together when it returns.
    const [first, ...together] = await Promise.all([
      burn(burnBody(m3.id, 1, "t-0"), "t-0"),
      burn(burnBody(s.member.id, 30, "t-1"), "t-1"),
      // The same member again: the second burn sees the first one's points gone.
      burn(burnBody(s.member.id, 30, "t-2"), "t-2"),
      burn(burnBody(m2.id, 20, "t-3"), "t-3"),
      // 40 of m2's 30 left: set aside by the batch, refused one by one with the balance.
      burn(burnBody(m2.id, 40, "t-4"), "t-4"),
      // One key twice with one body: one effect, one answer.
      burn(burnBody(m3.id, 2, "t-5"), "t-5"),
      burn(burnBody(m3.id, 2, "t-5"), "t-5"),
      // The first call's partner transaction id under another key: refused as a duplicate.
      burn(burnBody(s.member.id, 1, "t-1"), "t-6"),
    ]);
    expect(first).toMatchObject({ status: 201, body: { balance: { available: 9 } } });
    expect(together.map((r) => r.status)).toEqual([201, 201, 201, 422, 201, 201, 409]);
    expect(together[0]!.body.balance).toEqual({ available: 70, held: 0, owed: 0 });
    expect(together[1]!.body.balance).toEqual({ available: 40, held: 0, owed: 0 });
    expect(together[2]!.body.balance).toEqual({ available: 30, held: 0, owed: 0 });
    expect(together[3]!.body).toMatchObject({ code: "insufficient-points" });
    expect(together[4]!.body.transaction_id).toBe(together[5]!.body.transaction_id);
    expect(together[6]!.body).toMatchObject({ code: "duplicate-transaction" });
    expect(await balanceOf(s.member.id)).toBe(40n);
    expect(await balanceOf(m2.id)).toBe(30n);
    expect(await balanceOf(m3.id)).toBe(7n);
    // Two statements carried the eight calls; four were written by the batch, the rest one by one.
    expect(direct.stats()).toEqual({ direct: 5, oneByOne: 3, batches: 2, batchedCalls: 8 });
    // Written as the one-by-one path writes them: an HTTP retry replays a batched call's answer.
    const replay = await s.post("/v1/burn", burnBody(s.member.id, 30, "t-2"), "t-2");
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(await json(replay)).toEqual(together[1]!.body);
  });

  // PostgreSQL only: PGlite has one connection, so a transaction held open stops every other query.
  it.runIf(process.env.DATABASE_URL)("does not hold up the others behind a member another transaction holds: the batch fails at once and its calls go one by one", async () => {
    const s = await ledgerScenario(hub);
    const m2 = await createMember(hub.db, s.partner.id);
    const m3 = await createMember(hub.db, s.partner.id);
    for (const m of [s.member.id, m2.id, m3.id]) {
      expect((await s.post("/v1/earn", { member_id: m, partner_transaction_id: `e-${m}`, amount_minor: 20_000, currency: "EUR" })).status).toBe(201);
    }
    const { direct, burn } = directBurn(s.partner.id, { batchMaxItems: 32 });
    // A long transaction holds the first member's accounts (a refund, the expiry job ...).
    const holder = await hub.db.transaction();
    try {
      await holder.raw("SELECT 1 FROM ledger_accounts WHERE member_id = ? ORDER BY id FOR UPDATE", [s.member.id]);
      let lockedDone = false;
      const alone = burn(burnBody(m3.id, 1, "h-0"), "h-0");
      const locked = burn(burnBody(s.member.id, 5, "h-1"), "h-1").finally(() => (lockedDone = true));
      const free = burn(burnBody(m2.id, 7, "h-2"), "h-2");
      const answer = await Promise.race([free, new Promise<"stuck">((r) => setTimeout(() => r("stuck"), 5_000))]);
      expect(answer, "the other member's burn is answered while the lock is held").not.toBe("stuck");
      expect(answer).toMatchObject({ status: 201, body: { balance: { available: 13 } } });
      expect((await alone).status).toBe(201);
      expect(lockedDone, "the held member's burn waits for its lock").toBe(false);
      await holder.commit();
      expect(await locked).toMatchObject({ status: 201, body: { balance: { available: 15 } } });
    } finally {
      if (!holder.isCompleted()) await holder.rollback();
    }
    // The batch of the two failed as a whole (nothing of it written); both went one by one.
    expect(direct.stats()).toEqual({ direct: 1, oneByOne: 2, batches: 2, batchedCalls: 3 });
    expect(await balanceOf(s.member.id)).toBe(15n);
    expect(await balanceOf(m2.id)).toBe(13n);
  });
});
