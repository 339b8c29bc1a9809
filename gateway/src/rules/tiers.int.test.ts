import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { json } from "../../../test/http.ts";
import { until } from "../../../test/webhook-receiver.ts";
import { adminToken, bearer, partnerToken } from "../../../test/factories/auth.ts";
import { ledgerScenario } from "../../../test/factories/ledger.ts";
import { expectRouteSecurity } from "../../../test/security.ts";
import { fixedClock } from "../infra/clock.ts";
import { createTiersService } from "./tiers.service.ts";

// A database of its own: the ladder is network-wide.
let hub: TestHub;
let admin: string;
beforeAll(async () => {
  hub = await startTestHub();
  admin = await adminToken(hub);
  const res = await send("PUT", "/admin/v1/tiers", admin, ladder);
  expect(res.status, await res.clone().text()).toBe(200);
});
afterAll(async () => {
  await hub.close();
});

const DAY = 86_400_000;
const ladder = {
  basis: "spend_minor",
  window_days: 365,
  grace_days: 30,
  tiers: [
    { code: "silver", name: "Silver", rank: 1, threshold: 10_000, multiplier_bp: 10_000, perks: ["birthday gift"] },
    { code: "gold", name: "Gold", rank: 2, threshold: 50_000, multiplier_bp: 15_000, perks: ["free delivery"] },
    { code: "platinum", name: "Platinum", rank: 3, threshold: 200_000, multiplier_bp: 20_000, perks: ["lounge"] },
  ],
};
const send = (method: string, path: string, token: string, body?: unknown) =>
  hub.fetch(path, { method, headers: { ...bearer(token), "content-type": "application/json" }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
const tierChanges = async (memberId: string) =>
  ((await hub.db("events").where({ type: "tier.changed" }).orderBy("seq").select("data")) as Array<{ data: Record<string, unknown> }>)
    .map((e) => e.data)
    .filter((d) => d.member_id === memberId)
    .map((d) => [d.from_tier, d.to_tier, d.reason]);

describe("tiers", () => {
  it("upgrades at once on qualifying spend, then applies the new tier's multiplier from the next purchase", async () => {
    const s = await ledgerScenario(hub);
    let n = 0;
    const buy = async (amount: number) => json(await s.post("/v1/earn", { member_id: s.member.id, partner_transaction_id: `p${++n}`, amount_minor: amount, currency: "EUR" }));
    await buy(8_000);
    expect((await json(await send("GET", `/admin/v1/members/${s.member.id}/tier`, admin))).tier).toBeNull();
    await buy(3_000); // 110.00 in the window: Silver
    const crossing = await buy(40_000); // 510.00: Gold — this purchase still earns at Silver (×1)
    expect(crossing.computation.items.map((i: { kind: string }) => i.kind)).toEqual(["base_rate"]);
    const next = await buy(10_000); // Gold ×1.5: base 10, extra floor(10 × 5000 / 10000) = 5
    expect(next.computation.items.map((i: { kind: string; points: number }) => [i.kind, i.points])).toEqual([["base_rate", 10], ["tier_multiplier", 5]]);
    expect(next.points_earned).toBe(15);
    expect(await json(await send("GET", `/admin/v1/members/${s.member.id}/tier`, admin))).toMatchObject({ tier: "gold", qualifying_value: 61_000, downgrade_due_at: null, basis: "spend_minor" });
    expect(await tierChanges(s.member.id)).toEqual([[null, "silver", "upgrade"], ["silver", "gold", "upgrade"]]);
    // Each change is addressed to the partners the member is linked to, so their feed (and their
    // webhooks) carry it; a partner the member never met hears nothing.
    const mine = async (scenario: { partner: { id: string }; get: (path: string, tok?: string) => Promise<Response> }) =>
      ((await json(await scenario.get("/v1/events?type=tier.changed&limit=200", await partnerToken(hub, scenario.partner.id, ["events:read"])))).items as Array<{ data: Record<string, unknown> }>)
        .filter((e) => e.data.member_id === s.member.id)
        .map((e) => [e.data.from_tier, e.data.to_tier, e.data.reason]);
    await until(async () => (await mine(s)).length === 2 || undefined, { what: "the tier changes in the partner's feed" });
    expect(await mine(s)).toEqual([[null, "silver", "upgrade"], ["silver", "gold", "upgrade"]]);
    // The partner reads the tier in force and its perks (to honour them at the till); another partner cannot.
    expect(await json(await s.get(`/v1/members/${s.member.id}/tier`))).toMatchObject({ effective_tier: "gold", perks: ["free delivery"] });
    const other = await ledgerScenario(hub);
    expect((await other.get(`/v1/members/${s.member.id}/tier`)).status).toBe(404);
    expect(await mine(other)).toEqual([]);
  });

  it("counts spend net of refunds and never the balance: spending all points keeps the tier", async () => {
    const s = await ledgerScenario(hub);
    const buy = await json(await s.post("/v1/earn", { member_id: s.member.id, partner_transaction_id: "big", amount_minor: 60_000, currency: "EUR" }));
    expect((await json(await send("GET", `/admin/v1/members/${s.member.id}/tier`, admin))).tier).toBe("gold");
    expect((await s.post("/v1/burn", { member_id: s.member.id, partner_transaction_id: "spend-all", points: 60, amount_minor: 600, currency: "EUR" })).status).toBe(201);
    const tiers = createTiersService({ db: hub.db, clock: fixedClock(new Date()) });
    await tiers.reviewTiers();
    expect((await tiers.memberTier(s.member.id)).downgrade_due_at).toBeNull();
    // A refund of 20.00 takes qualifying spend to 580.00 − still Gold; of 480.00 more, to 100.00: below Gold.
    expect((await s.post(`/v1/transactions/${buy.transaction_id}/refund`, { refund_id: "r1", amount_minor: 50_000 })).status).toBe(201);
    expect((await tiers.memberTier(s.member.id)).qualifying_value).toBe(10_000);
  });

  it("moves down only after the grace period, to the tier still reached, and says so", async () => {
    const s = await ledgerScenario(hub);
    const at = new Date(Date.now() - 300 * DAY);
    expect((await s.post("/v1/earn", { member_id: s.member.id, partner_transaction_id: "old", amount_minor: 60_000, currency: "EUR", occurred_at: at.toISOString() })).status).toBe(201);
    expect((await s.post("/v1/earn", { member_id: s.member.id, partner_transaction_id: "recent", amount_minor: 12_000, currency: "EUR" })).status).toBe(201);
    const clock = fixedClock(new Date());
    const tiers = createTiersService({ db: hub.db, clock });
    expect((await tiers.memberTier(s.member.id)).tier).toBe("gold");
    // 70 days on, the old purchase has left the 365-day window: 120.00 qualifies for Silver only.
    clock.advance(70 * DAY);
    await tiers.reviewTiers();
    const graced = await tiers.memberTier(s.member.id);
    expect(graced).toMatchObject({ tier: "gold", downgrade_due_at: new Date(clock.now().getTime() + 30 * DAY).toISOString() });
    clock.advance(29 * DAY);
    await tiers.reviewTiers();
    expect((await tiers.memberTier(s.member.id)).tier).toBe("gold");
    clock.advance(1 * DAY);
    await tiers.reviewTiers();
    expect(await tiers.memberTier(s.member.id)).toMatchObject({ tier: "silver", downgrade_due_at: null });
    expect((await tierChanges(s.member.id)).at(-1)).toEqual(["gold", "silver", "downgrade"]);
    await tiers.reviewTiers();
    expect((await tierChanges(s.member.id)).length).toBe(2);
  });

  it("refuses a ladder whose thresholds do not grow with rank, and reads the ladder back", async () => {
    const bad = await send("PUT", "/admin/v1/tiers", admin, { ...ladder, tiers: [ladder.tiers[0], { ...ladder.tiers[1], threshold: 5_000 }] });
    expect(bad.status).toBe(422);
    expect((await json(bad)).code).toBe("invalid-ladder");
    expect(await json(await send("GET", "/admin/v1/tiers", admin))).toEqual(ladder);
  });

  it("fails closed on the tier routes", async () => {
    await expectRouteSecurity(hub, { method: "PUT", path: "/admin/v1/tiers", body: ladder, scopes: ["admin"], audience: "admin" });
    await expectRouteSecurity(hub, { method: "GET", path: "/admin/v1/tiers", scopes: ["admin"], audience: "admin" });
    await expectRouteSecurity(hub, { method: "GET", path: "/admin/v1/members/mem_x/tier", scopes: ["admin"], audience: "admin" });
    const s = await ledgerScenario(hub);
    await expectRouteSecurity(hub, { method: "GET", path: `/v1/members/${s.member.id}/tier`, scopes: ["members:read"], audience: "partner", partnerId: s.partner.id });
  });
});
