import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { json } from "../../../test/http.ts";
import { adminToken, bearer, partnerToken } from "../../../test/factories/auth.ts";
import { createMember } from "../../../test/factories/network.ts";
import { ledgerScenario } from "../../../test/factories/ledger.ts";
import { expectRouteSecurity } from "../../../test/security.ts";
import { createLedger } from "../ledger/ledger.service.ts";
import { fixedClock } from "../infra/clock.ts";
import { createMemberAccess } from "../members/member-access.ts";
import { createRulesService } from "./rules.service.ts";
import { createTiersService } from "./tiers.service.ts";

let hub: TestHub;
let admin: string;
beforeAll(async () => {
  hub = await startTestHub();
  admin = await adminToken(hub);
});
afterAll(async () => {
  expect(await createLedger({ db: hub.db }).checkInvariants()).toEqual([]);
  await hub.close();
});

const send = (method: string, path: string, token: string, body?: unknown) =>
  hub.fetch(path, { method, headers: { ...bearer(token), "content-type": "application/json", "idempotency-key": `k-${Math.random()}` }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });

/** An operator rule, activated, limited to one partner so the tests of this file stay apart. */
async function operatorRule(partnerId: string, rule: Record<string, unknown>) {
  const res = await send("POST", "/admin/v1/rules", admin, { valid_from: "2020-01-01T00:00:00Z", partner_ids: [partnerId], ...rule });
  expect(res.status, JSON.stringify(await res.clone().json())).toBe(201);
  const created = await json(res);
  expect(created.status).toBe("draft");
  const act = await send("POST", `/admin/v1/rules/${created.id}/status`, admin, { status: "active" });
  expect(act.status).toBe(200);
  return created as { id: string };
}

type Scenario = Awaited<ReturnType<typeof ledgerScenario>>;
let txn = 0;
async function earn(s: Scenario, amount: number, extra: Record<string, unknown> = {}, memberId = s.member.id) {
  const res = await s.post("/v1/earn", { member_id: memberId, partner_transaction_id: `pos-${++txn}`, amount_minor: amount, currency: "EUR", ...extra });
  expect(res.status, JSON.stringify(await res.clone().json())).toBe(201);
  return json(res);
}
const itemsOf = (body: { computation: { items: Array<{ kind: string; rule_id?: string | null; points: number }> } }) =>
  body.computation.items.map((i) => [i.kind, i.rule_id ?? null, i.points]);

describe("earn rules through POST /v1/earn", () => {
  it("stacks base rate, a category multiplier and a fixed bonus in priority order, naming each rule and its points", async () => {
    const s = await ledgerScenario(hub);
    const fixed = await operatorRule(s.partner.id, { name: "Weekend bonus", type: "fixed_bonus", priority: 20, params: { points: 25 } });
    const premium = await operatorRule(s.partner.id, { name: "Double points on Premium", type: "multiplier", priority: 10, params: { multiplier_bp: 20_000, categories: ["premium"] } });
    const extra = await operatorRule(s.partner.id, { name: "Extra point per 5.00", type: "base_rate", priority: 30, params: { points: 1, per_minor: 500 } });
    // 100.00: 40.00 premium + 60.00 food. Base floor(10000/1000) = 10; premium extra floor(4000/1000) × (2−1) = 4;
    // fixed 25; extra base floor(10000 × 1 / 500) = 20. Total 59.
    const body = await earn(s, 10_000, { lines: [{ category: "premium", amount_minor: 4_000 }, { category: "food", amount_minor: 6_000 }] });
    expect(itemsOf(body)).toEqual([
      ["base_rate", null, 10],
      ["multiplier", premium.id, 4],
      ["fixed_bonus", fixed.id, 25],
      ["base_rate", extra.id, 20],
    ]);
    expect(body.points_earned).toBe(59);
    expect(body.balance.available).toBe(59);
    expect(body.computation.items[1]).toMatchObject({ funded_by: "operator", rule_name: "Double points on Premium", amount_minor: 4_000 });
    expect(body.computation.items[1].rounding).toMatch(/^floor/);
  });

  it("rounds each rule down on its own line", async () => {
    const s = await ledgerScenario(hub);
    await operatorRule(s.partner.id, { name: "×1.5 on wine", type: "multiplier", params: { multiplier_bp: 15_000, skus: ["WINE-1"] } });
    // Wine 39.99: line base floor(3999/1000) = 3; extra floor(3 × 5000 / 10000) = 1. Base on 39.99 = 3.
    const body = await earn(s, 3_999, { lines: [{ sku: "WINE-1", amount_minor: 3_999 }] });
    expect(itemsOf(body).map((i) => i[2])).toEqual([3, 1]);
  });

  it("gives only the first rule of a stacking group that pays", async () => {
    const s = await ledgerScenario(hub);
    const a = await operatorRule(s.partner.id, { name: "Big spender", type: "fixed_bonus", priority: 1, stack_group: "welcome-or-big", params: { points: 100, min_amount_minor: 50_000 } });
    const b = await operatorRule(s.partner.id, { name: "Small bonus", type: "fixed_bonus", priority: 2, stack_group: "welcome-or-big", params: { points: 5 } });
    expect(itemsOf(await earn(s, 60_000))).toEqual([["base_rate", null, 60], ["fixed_bonus", a.id, 100]]);
    // Below the big spender's minimum, the next rule of the group pays.
    expect(itemsOf(await earn(s, 1_000))).toEqual([["base_rate", null, 1], ["fixed_bonus", b.id, 5]]);
  });

  it("gives 15% back as points on every third purchase of the month, counting afresh each month", async () => {
    const s = await ledgerScenario(hub);
    const r = await operatorRule(s.partner.id, { name: "Every third purchase", type: "nth_purchase", params: { every: 3, period: "month", percent_bp: 1_500, point_value_minor: 100 } });
    const at = (d: string) => ({ occurred_at: `${d}T12:00:00Z` });
    const got = [];
    for (const d of ["2026-09-02", "2026-09-10", "2026-09-20", "2026-09-25", "2026-10-01", "2026-10-02", "2026-10-03"]) {
      got.push(itemsOf(await earn(s, 2_000, at(d))).filter((i) => i[1] === r.id).map((i) => i[2])[0] ?? 0);
    }
    // 3rd of September and 3rd of October: floor(2000 × 1500 ÷ (10000 × 100)) = 3 points.
    expect(got).toEqual([0, 0, 3, 0, 0, 0, 3]);
  });

  it("gives the welcome bonus on the first purchase only", async () => {
    const s = await ledgerScenario(hub);
    const r = await operatorRule(s.partner.id, { name: "Welcome", type: "first_purchase", params: { points: 50 } });
    expect(itemsOf(await earn(s, 1_000))).toContainEqual(["first_purchase", r.id, 50]);
    expect(itemsOf(await earn(s, 1_000)).some((i) => i[1] === r.id)).toBe(false);
  });

  it("does not count a wholly refunded purchase as the first one", async () => {
    const s = await ledgerScenario(hub);
    const r = await operatorRule(s.partner.id, { name: "Welcome (refund)", type: "first_purchase", params: { points: 50 } });
    const first = await earn(s, 1_000, { occurred_at: "2026-06-01T10:00:00Z" });
    expect(first.points_earned).toBe(51);
    expect((await s.post(`/v1/transactions/${first.transaction_id}/refund`, { refund_id: "wr-1" })).status).toBe(201);
    // The refund clawed the welcome back with the rest; the next purchase is the real first one.
    expect(itemsOf(await earn(s, 1_000, { occurred_at: "2026-06-02T10:00:00Z" }))).toContainEqual(["first_purchase", r.id, 50]);
  });

  it("gives the birthday bonus once a year, in the birthday month", async () => {
    const s = await ledgerScenario(hub);
    await hub.db("member_profiles").insert({ member_id: s.member.id, date_of_birth: "1990-03-14" });
    const r = await operatorRule(s.partner.id, { name: "Happy birthday", type: "birthday", params: { points: 200, on: "month" } });
    const got = async (d: string) => itemsOf(await earn(s, 1_000, { occurred_at: `${d}T10:00:00Z` })).filter((i) => i[1] === r.id).length;
    expect(await got("2026-02-28")).toBe(0);
    expect(await got("2026-03-02")).toBe(1);
    expect(await got("2026-03-20")).toBe(0);
    expect(await got("2025-03-20")).toBe(1);
  });

  it("cuts points at the per-member cap of the period and names what was cut", async () => {
    const s = await ledgerScenario(hub);
    const r = await operatorRule(s.partner.id, { name: "Capped bonus", type: "fixed_bonus", params: { points: 10 }, caps: { period: "month", member_points: 25 } });
    const pts = [];
    for (const d of ["2026-05-01", "2026-05-02", "2026-05-03", "2026-05-04", "2026-06-01"]) {
      const item = (await earn(s, 1_000, { occurred_at: `${d}T10:00:00Z` })).computation.items.find((i: { rule_id?: string }) => i.rule_id === r.id);
      pts.push(item ? [item.points, item.capped_from ?? null] : null);
    }
    // Cut to nothing is still named, with what it would have given.
    expect(pts).toEqual([[10, null], [10, null], [5, 10], [0, 10], [10, null]]);
  });

  it("stops at the rule's total budget across members", async () => {
    const s = await ledgerScenario(hub);
    const m2 = await createMember(hub.db, s.partner.id);
    await operatorRule(s.partner.id, { name: "First 30 points", type: "fixed_bonus", params: { points: 20 }, caps: { period: "rule", total_points: 30 } });
    expect((await earn(s, 1_000)).points_earned).toBe(21);
    expect((await earn(s, 1_000, {}, m2.id)).points_earned).toBe(11);
    expect((await earn(s, 1_000, {}, m2.id)).points_earned).toBe(1);
  });

  it("applies a segment rule only to the segment's members, and a tier rule only to that tier", async () => {
    const s = await ledgerScenario(hub);
    const other = await createMember(hub.db, s.partner.id);
    const seg = `students-${Math.random().toString(36).slice(2, 7)}`;
    expect((await send("PUT", `/admin/v1/segments/${seg}`, admin, { member_ids: [s.member.id] })).status).toBe(200);
    const r = await operatorRule(s.partner.id, { name: "Students", type: "fixed_bonus", target: { kind: "segment", segments: [seg] }, params: { points: 7 } });
    await operatorRule(s.partner.id, { name: "Gold only", type: "fixed_bonus", target: { kind: "tier", tiers: ["gold-none"] }, params: { points: 1000 } });
    expect(itemsOf(await earn(s, 1_000))).toEqual([["base_rate", null, 1], ["fixed_bonus", r.id, 7]]);
    expect(itemsOf(await earn(s, 1_000, {}, other.id))).toEqual([["base_rate", null, 1]]);
  });

  it("ignores drafts, paused rules and purchases outside the validity window", async () => {
    const s = await ledgerScenario(hub);
    const draft = await json(await send("POST", "/admin/v1/rules", admin, { name: "Draft", type: "fixed_bonus", valid_from: "2020-01-01T00:00:00Z", partner_ids: [s.partner.id], params: { points: 9 } }));
    const windowed = await operatorRule(s.partner.id, { name: "March only", type: "fixed_bonus", valid_from: "2026-03-01T00:00:00Z", valid_until: "2026-04-01T00:00:00Z", params: { points: 3 } });
    const paused = await operatorRule(s.partner.id, { name: "Paused", type: "fixed_bonus", params: { points: 4 } });
    expect((await send("POST", `/admin/v1/rules/${paused.id}/status`, admin, { status: "paused" })).status).toBe(200);
    expect(itemsOf(await earn(s, 1_000, { occurred_at: "2026-04-01T00:00:00Z" }))).toEqual([["base_rate", null, 1]]);
    expect(itemsOf(await earn(s, 1_000, { occurred_at: "2026-03-31T23:59:59Z" }))).toEqual([["base_rate", null, 1], ["fixed_bonus", windowed.id, 3]]);
    expect(draft.status).toBe("draft");
    const archived = await send("POST", `/admin/v1/rules/${draft.id}/status`, admin, { status: "archived" });
    expect((await send("POST", `/admin/v1/rules/${draft.id}/status`, admin, { status: "active" })).status).toBe(409);
    expect(archived.status).toBe(200);
  });

  it("answers a dry run with the rules' items without using up their caps", async () => {
    const s = await ledgerScenario(hub);
    const r = await operatorRule(s.partner.id, { name: "Once", type: "fixed_bonus", params: { points: 10 }, caps: { member_times: 1 } });
    for (let i = 0; i < 2; i++) {
      const res = await s.post("/v1/earn?dry_run=true", { member_id: s.member.id, partner_transaction_id: `dry-${i}`, amount_minor: 1_000, currency: "EUR" });
      expect(itemsOf(await json(res))).toEqual([["base_rate", null, 1], ["fixed_bonus", r.id, 10]]);
    }
    expect((await earn(s, 1_000)).points_earned).toBe(11);
    expect((await earn(s, 1_000)).points_earned).toBe(1);
  });

  it("keeps a once-per-member bonus once under concurrent purchases", async () => {
    const s = await ledgerScenario(hub);
    const r = await operatorRule(s.partner.id, { name: "Once only", type: "fixed_bonus", params: { points: 10 }, caps: { member_times: 1 } });
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) => s.post("/v1/earn", { member_id: s.member.id, partner_transaction_id: `conc-${i}`, amount_minor: 1_000, currency: "EUR" })),
    );
    const bodies = await Promise.all(answers.map((a) => json(a)));
    expect(answers.map((a) => a.status)).toEqual(Array(6).fill(201));
    const given = bodies.flatMap((b) => b.computation.items.filter((i: { rule_id?: string; points: number }) => i.rule_id === r.id && i.points > 0));
    expect(given).toHaveLength(1);
    expect((await json(await s.get(`/v1/members/${s.member.id}/balance`))).available).toBe(16);
  });

  it("refuses a rule without the parameters of its type", async () => {
    const res = await send("POST", "/admin/v1/rules", admin, { name: "Bad", type: "nth_purchase", valid_from: "2020-01-01T00:00:00Z", params: { every: 3 } });
    expect(res.status).toBe(422);
    expect(await json(res)).toMatchObject({ code: "invalid-rule", missing_params: ["percent_bp", "point_value_minor"] });
    const res2 = await send("POST", "/admin/v1/rules", admin, { name: "Bad", type: "fixed_bonus", valid_from: "2020-01-01T00:00:00Z", params: { points: -1 } });
    expect(res2.status).toBe(422);
  });
});

describe("partners' own promotions", () => {
  it("apply at the owner's purchases only, funded by it, and stay invisible to other partners", async () => {
    const s = await ledgerScenario(hub);
    const s2 = await ledgerScenario(hub);
    const created = await json(await send("POST", "/v1/rules", s.token, { name: "Our double points", type: "multiplier", valid_from: "2020-01-01T00:00:00Z", params: { multiplier_bp: 20_000 } }));
    expect(created).toMatchObject({ owner: { kind: "partner", partner_id: s.partner.id }, funded_by: `partner:${s.partner.id}`, status: "draft" });
    expect((await send("POST", `/v1/rules/${created.id}/status`, s2.token, { status: "active" })).status).toBe(404);
    expect((await send("GET", `/v1/rules/${created.id}`, s2.token)).status).toBe(404);
    expect((await send("POST", `/v1/rules/${created.id}/status`, s.token, { status: "active" })).status).toBe(200);
    const body = await earn(s, 5_000);
    expect(itemsOf(body)).toEqual([["base_rate", null, 5], ["multiplier", created.id, 5]]);
    expect(body.computation.items[1].funded_by).toBe(`partner:${s.partner.id}`);
    expect(itemsOf(await earn(s2, 5_000))).toEqual([["base_rate", null, 5]]);
    expect((await json(await send("GET", "/v1/rules", s2.token))).items).toEqual([]);
    expect((await json(await send("GET", "/v1/rules", s.token))).items.map((r: { id: string }) => r.id)).toEqual([created.id]);
  });

  it("refuse a partner rule aimed at another partner's purchases", async () => {
    const s = await ledgerScenario(hub);
    const res = await send("POST", "/v1/rules", s.token, { name: "X", type: "fixed_bonus", valid_from: "2020-01-01T00:00:00Z", partner_ids: ["ptn_other"], params: { points: 1 } });
    expect(res.status).toBe(422);
  });
});

describe("custom events: POST /v1/rule-events", () => {
  it("rewards a review once per event id, replays a retry, and refuses an event no rule rewards", async () => {
    const s = await ledgerScenario(hub);
    const rule = await json(await send("POST", "/v1/rules", s.token, { name: "Review bonus", type: "custom_event", valid_from: "2020-01-01T00:00:00Z", params: { event: "review", points: 30 }, caps: { period: "month", member_times: 2 } }));
    await send("POST", `/v1/rules/${rule.id}/status`, s.token, { status: "active" });
    const body = { member_id: s.member.id, event: "review", event_id: "rev-1" };
    const first = await s.post("/v1/rule-events", body, "ev-key-1");
    expect(first.status).toBe(201);
    expect(await json(first)).toMatchObject({ points_earned: 30, awards: [{ rule_id: rule.id, points: 30, funded_by: `partner:${s.partner.id}` }], balance_available: 30 });
    const replay = await s.post("/v1/rule-events", body, "ev-key-1");
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    // The same event id under a new key gives nothing more.
    expect(await json(await s.post("/v1/rule-events", body, "ev-key-2"))).toMatchObject({ points_earned: 0, awards: [] });
    expect((await json(await s.post("/v1/rule-events", { ...body, event_id: "rev-2" }))).points_earned).toBe(30);
    // The cap: twice a month.
    expect((await json(await s.post("/v1/rule-events", { ...body, event_id: "rev-3" }))).points_earned).toBe(0);
    const none = await s.post("/v1/rule-events", { ...body, event: "share", event_id: "sh-1" });
    expect(none.status).toBe(422);
    expect((await json(none)).code).toBe("no-matching-rule");
    expect((await json(await s.get(`/v1/members/${s.member.id}/balance`))).available).toBe(60);
  });
});

describe("referrals", () => {
  it("credit both sides once the referred member's first purchase has cleared, once", async () => {
    const s = await ledgerScenario(hub);
    const referrer = await createMember(hub.db, s.partner.id);
    await hub.db("members").where({ id: s.member.id }).update({ referred_by_member_id: referrer.id });
    await operatorRule(s.partner.id, { name: "Bring a friend", type: "referral", params: { referrer_points: 100, referred_points: 50, clear_after_days: 14 } });
    const purchaseAt = new Date(Date.now() - 2 * 86_400_000);
    await earn(s, 1_000, { occurred_at: purchaseAt.toISOString() });
    const clock = fixedClock(new Date(purchaseAt.getTime() + 13 * 86_400_000));
    const ledger = createLedger({ db: hub.db });
    const tiers = createTiersService({ db: hub.db, clock });
    const rules = createRulesService({ db: hub.db, clock, ledger, members: createMemberAccess(), tiers });
    expect((await rules.runReferrals()).awarded).toBe(0);
    clock.advance(2 * 86_400_000);
    expect((await rules.runReferrals()).awarded).toBe(2);
    expect((await rules.runReferrals()).awarded).toBe(0);
    expect((await ledger.balances(hub.db, referrer.id)).points).toBe(100n);
    expect((await ledger.balances(hub.db, s.member.id)).points).toBe(51n);
  });

  it("give nothing when the first purchase was wholly refunded", async () => {
    const s = await ledgerScenario(hub);
    const referrer = await createMember(hub.db, s.partner.id);
    await hub.db("members").where({ id: s.member.id }).update({ referred_by_member_id: referrer.id });
    await operatorRule(s.partner.id, { name: "Bring a friend (refund)", type: "referral", params: { referrer_points: 100, referred_points: 50, clear_after_days: 1 } });
    const purchase = await earn(s, 1_000, { occurred_at: new Date(Date.now() - 5 * 86_400_000).toISOString() });
    const refund = await s.post(`/v1/transactions/${purchase.transaction_id}/refund`, { refund_id: "r-1" });
    expect(refund.status, await refund.clone().text()).toBe(201);
    const clock = fixedClock(new Date());
    const rules = createRulesService({ db: hub.db, clock, ledger: createLedger({ db: hub.db }), members: createMemberAccess(), tiers: createTiersService({ db: hub.db, clock }) });
    expect((await rules.runReferrals()).awarded).toBe(0);
  });
});

describe("rules routes security", () => {
  it("fails closed on every rules route", async () => {
    const s = await ledgerScenario(hub);
    const rule = { name: "x", type: "fixed_bonus", valid_from: "2020-01-01T00:00:00Z", params: { points: 1 } };
    const adminRoutes: Array<[string, string, unknown?]> = [
      ["POST", "/admin/v1/rules", rule],
      ["GET", "/admin/v1/rules"],
      ["GET", "/admin/v1/rules/rul_x"],
      ["POST", "/admin/v1/rules/rul_x/status", { status: "active" }],
      ["POST", "/admin/v1/rules/rul_x/simulation", { days: 30 }],
      ["PUT", "/admin/v1/segments/s1", { member_ids: [] }],
    ];
    for (const [method, path, body] of adminRoutes) await expectRouteSecurity(hub, { method, path, body, scopes: ["admin"], audience: "admin" });
    const partnerRoutes: Array<[string, string, unknown?]> = [
      ["POST", "/v1/rules", rule],
      ["GET", "/v1/rules"],
      ["POST", "/v1/rule-events", { member_id: s.member.id, event: "review", event_id: "e" }],
    ];
    for (const [method, path, body] of partnerRoutes) await expectRouteSecurity(hub, { method, path, body, scopes: ["earn:write"], audience: "partner", partnerId: s.partner.id });
  });

  it("lets only the operator see every partner's rules", async () => {
    const s = await ledgerScenario(hub);
    const created = await json(await send("POST", "/v1/rules", s.token, { name: "Seen by staff", type: "fixed_bonus", valid_from: "2020-01-01T00:00:00Z", params: { points: 1 } }));
    expect((await send("GET", `/admin/v1/rules/${created.id}`, admin)).status).toBe(200);
    const tok = await partnerToken(hub, s.partner.id, ["members:read"]);
    expect((await send("GET", "/v1/rules", tok)).status).toBe(403);
  });
});
