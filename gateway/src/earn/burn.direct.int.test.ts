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
function directBurn(partnerId: string) {
  const db = hub.db;
  const log = createLogger("silent");
  const earn = createEarnService({ db, clock: hub.clock, log, ledger: createLedger({ db }), members: createMemberAccess() });
  const direct = createDirectBurn({ db, clock: hub.clock, log, earn, idempotency: createIdempotency({ db }) });
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
