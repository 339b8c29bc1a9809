import Stripe from "stripe";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { json } from "../../../test/http.ts";
import { adminToken, bearer, partnerToken } from "../../../test/factories/auth.ts";
import { ledgerScenario } from "../../../test/factories/ledger.ts";
import { startStripeStandIn, type StripeStandIn } from "../../../test/stripe-standin.ts";
import { expectRouteSecurity } from "../../../test/security.ts";
import { createLogger } from "../infra/logger.ts";
import { systemClock } from "../infra/clock.ts";
import { createMemberAccess } from "../members/member-access.ts";
import { createMembershipService } from "./membership.service.ts";

const SECRET = "whsec_test_standin_secret";
let hub: TestHub;
let standin: StripeStandIn;
let admin: string;
// The real SDK, only for what Stripe itself does in production: signing its webhooks.
const signer = new Stripe("sk_test_signer");

beforeAll(async () => {
  standin = await startStripeStandIn();
  hub = await startTestHub({ config: { STRIPE_SECRET_KEY: "sk_test_standin", STRIPE_WEBHOOK_SECRET: SECRET, STRIPE_API_URL: standin.url } });
  admin = await adminToken(hub);
  const ladder = {
    basis: "spend_minor",
    window_days: 365,
    grace_days: 30,
    tiers: [
      { code: "silver", name: "Silver", rank: 1, threshold: 100_000, multiplier_bp: 10_000, perks: [] },
      { code: "gold", name: "Gold", rank: 2, threshold: 500_000, multiplier_bp: 20_000, perks: ["lounge"] },
    ],
  };
  expect((await send("PUT", "/admin/v1/tiers", admin, ladder)).status).toBe(200);
});
afterAll(async () => {
  await hub.close();
  await standin.close();
});

const send = (method: string, path: string, token?: string, body?: unknown, headers: Record<string, string> = {}) =>
  hub.fetch(path, { method, headers: { ...(token ? bearer(token) : {}), "content-type": "application/json", ...headers }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });

let evt = 0;
function stripeEvent(type: string, object: Record<string, unknown>) {
  return JSON.stringify({ id: `evt_${++evt}_${Math.random().toString(36).slice(2, 8)}`, object: "event", type, api_version: "2025-01-01", created: Math.floor(Date.now() / 1000), data: { object } });
}
const deliver = (payload: string, header = signer.webhooks.generateTestHeaderString({ payload, secret: SECRET })) =>
  hub.fetch("/webhooks/stripe", { method: "POST", headers: { "content-type": "application/json", "stripe-signature": header }, body: payload });

describe("paid membership through Stripe", () => {
  it("sells a subscription that grants a paid tier, and Stripe's signed webhooks move it on", async () => {
    const planRes = await send("POST", "/admin/v1/membership-plans", admin, { code: "gold-club", name: "Gold Club", kind: "subscription", amount_minor: 999, currency: "EUR", interval: "month", grants_tier: "gold" });
    expect(planRes.status, await planRes.clone().text()).toBe(201);
    const plan = await json(planRes);
    const priceReq = standin.requests.find((r) => r.path === "/v1/prices")!;
    expect(priceReq.body).toMatchObject({ unit_amount: "999", currency: "eur", "recurring[interval]": "month" });
    expect(priceReq.authorization).toBe("Bearer sk_test_standin");
    expect(plan.stripe_price_id).toMatch(/^price_/);

    const s = await ledgerScenario(hub);
    const tok = await partnerToken(hub, s.partner.id, ["members:write", "members:read"]);
    const startRes = await send("POST", "/v1/memberships", tok, { member_id: s.member.id, plan_code: "gold-club", success_url: "https://shop.example/ok", cancel_url: "https://shop.example/no" });
    expect(startRes.status, await startRes.clone().text()).toBe(201);
    const started = await json(startRes);
    expect(started.membership).toMatchObject({ member_id: s.member.id, status: "pending", paid_until: null });
    expect(started.checkout_url).toMatch(/^https:\/\/checkout\.stripe\.test\//);
    const sessionReq = standin.requests.filter((r) => r.path === "/v1/checkout/sessions").at(-1)!;
    expect(sessionReq.body).toMatchObject({ mode: "subscription", "line_items[0][price]": plan.stripe_price_id, "line_items[0][quantity]": "1", client_reference_id: started.membership.id, "metadata[membership_id]": started.membership.id });
    const sessionId = (await hub.db("memberships").where({ id: started.membership.id }).first("stripe_checkout_session_id")).stripe_checkout_session_id;

    const periodEnd = Math.floor(Date.now() / 1000) + 30 * 86_400;
    const completed = stripeEvent("checkout.session.completed", { id: sessionId, object: "checkout.session", mode: "subscription", payment_status: "paid", customer: "cus_1", subscription: "sub_gold_1", client_reference_id: started.membership.id });
    // Stripe does not know the subscription yet: 502, nothing recorded, so Stripe's retry is handled afresh.
    const early = await deliver(completed);
    expect(early.status).toBe(502);
    expect((await json(early)).code).toBe("payment-provider-error");
    expect((await hub.db("memberships").where({ id: started.membership.id }).first()).status).toBe("pending");
    standin.subscriptionPeriodEnd.set("sub_gold_1", periodEnd);
    const res = await deliver(completed);
    expect(res.status, await res.clone().text()).toBe(200);
    expect(await json(res)).toEqual({ received: true, duplicate: false, membership_id: started.membership.id });
    expect(standin.requests.some((r) => r.method === "GET" && r.path === "/v1/subscriptions/sub_gold_1")).toBe(true);
    const active = await json(await send("GET", `/v1/memberships/${started.membership.id}`, tok));
    expect(active).toMatchObject({ status: "active", stripe_subscription_id: "sub_gold_1", paid_until: new Date(periodEnd * 1000).toISOString() });

    // The paid tier is in force: Gold's ×2 on the next purchase.
    expect(await json(await send("GET", `/admin/v1/members/${s.member.id}/tier`, admin))).toMatchObject({ tier: null, effective_tier: "gold" });
    const earned = await json(await s.post("/v1/earn", { member_id: s.member.id, partner_transaction_id: "after-join", amount_minor: 5_000, currency: "EUR" }));
    expect(earned.computation.items.map((i: { kind: string; points: number }) => [i.kind, i.points])).toEqual([["base_rate", 5], ["tier_multiplier", 5]]);

    // Stripe delivers at least once: a replay changes nothing.
    expect(await json(await deliver(completed))).toMatchObject({ duplicate: true });

    // A failed renewal: past due, and the paid tier lapses; a paid invoice restores it and extends the period.
    await deliver(stripeEvent("invoice.payment_failed", { id: "in_1", object: "invoice", parent: { subscription_details: { subscription: "sub_gold_1" } } }));
    expect((await json(await send("GET", `/v1/memberships/${started.membership.id}`, tok))).status).toBe("past_due");
    expect((await json(await send("GET", `/admin/v1/members/${s.member.id}/tier`, admin))).effective_tier).toBeNull();
    const nextEnd = periodEnd + 30 * 86_400;
    await deliver(stripeEvent("invoice.paid", { id: "in_2", object: "invoice", subscription: "sub_gold_1", lines: { object: "list", data: [{ period: { start: periodEnd, end: nextEnd } }] } }));
    expect(await json(await send("GET", `/v1/memberships/${started.membership.id}`, tok))).toMatchObject({ status: "active", paid_until: new Date(nextEnd * 1000).toISOString() });
    await deliver(stripeEvent("customer.subscription.deleted", { id: "sub_gold_1", object: "subscription", status: "canceled" }));
    expect((await json(await send("GET", `/v1/memberships/${started.membership.id}`, tok))).status).toBe("canceled");
  });

  it("charges a closed programme's entry fee once, by a one-off Checkout", async () => {
    await send("POST", "/admin/v1/membership-plans", admin, { code: "entry-fee", name: "Club entry fee", kind: "one_off", amount_minor: 2_500, currency: "EUR", duration_days: null });
    const s = await ledgerScenario(hub);
    const tok = await partnerToken(hub, s.partner.id, ["members:write"]);
    const started = await json(await send("POST", "/v1/memberships", tok, { member_id: s.member.id, plan_code: "entry-fee", success_url: "https://shop.example/ok", cancel_url: "https://shop.example/no" }));
    const sessionReq = standin.requests.filter((r) => r.path === "/v1/checkout/sessions").at(-1)!;
    expect(sessionReq.body.mode).toBe("payment");
    const row = await hub.db("memberships").where({ id: started.membership.id }).first();
    // An unpaid completion (e.g. a delayed bank debit) does not activate.
    await deliver(stripeEvent("checkout.session.completed", { id: row.stripe_checkout_session_id, object: "checkout.session", mode: "payment", payment_status: "unpaid" }));
    expect((await hub.db("memberships").where({ id: row.id }).first()).status).toBe("pending");
    await deliver(stripeEvent("checkout.session.completed", { id: row.stripe_checkout_session_id, object: "checkout.session", mode: "payment", payment_status: "paid", customer: "cus_2" }));
    expect(await hub.db("memberships").where({ id: row.id }).first()).toMatchObject({ status: "active", paid_until: null, stripe_customer_id: "cus_2" });
  });

  it("refuses webhooks that are unsigned, signed with another secret, tampered with or stale", async () => {
    const payload = stripeEvent("customer.subscription.deleted", { id: "sub_nobody", object: "subscription" });
    const forged = await deliver(payload, signer.webhooks.generateTestHeaderString({ payload, secret: "whsec_attacker" }));
    expect(forged.status).toBe(400);
    expect((await json(forged)).code).toBe("invalid-signature");
    const header = signer.webhooks.generateTestHeaderString({ payload, secret: SECRET });
    expect((await deliver(payload.replace("sub_nobody", "sub_somebody"), header)).status).toBe(400);
    const stale = signer.webhooks.generateTestHeaderString({ payload, secret: SECRET, timestamp: Math.floor(Date.now() / 1000) - 3_600 });
    expect((await deliver(payload, stale)).status).toBe(400);
    const none = await hub.fetch("/webhooks/stripe", { method: "POST", headers: { "content-type": "application/json" }, body: payload });
    expect(none.status).toBe(422);
    expect(await hub.db("stripe_events").whereRaw("id = ?", [JSON.parse(payload).id]).first()).toBeUndefined();
  });

  it("hides another partner's member and answers 503 on a hub without Stripe", async () => {
    const s = await ledgerScenario(hub);
    const other = await ledgerScenario(hub);
    const tok = await partnerToken(hub, other.partner.id, ["members:write"]);
    expect((await send("POST", "/v1/memberships", tok, { member_id: s.member.id, plan_code: "gold-club", success_url: "https://a.example/", cancel_url: "https://a.example/" })).status).toBe(404);
    const bare = createMembershipService({ db: hub.db, clock: systemClock, log: createLogger("silent"), members: createMemberAccess(), stripe: null, webhookSecret: null });
    await expect(bare.start(s.partner.id, { member_id: s.member.id, plan_code: "gold-club", success_url: "https://a.example/", cancel_url: "https://a.example/" })).rejects.toMatchObject({ status: 503 });
  });

  it("fails closed on the membership routes", async () => {
    const s = await ledgerScenario(hub);
    await expectRouteSecurity(hub, { method: "POST", path: "/admin/v1/membership-plans", body: { code: "x", name: "x", kind: "one_off", amount_minor: 1, currency: "EUR" }, scopes: ["admin"], audience: "admin" });
    await expectRouteSecurity(hub, { method: "POST", path: "/v1/memberships", body: { member_id: s.member.id, plan_code: "x", success_url: "https://a.example/", cancel_url: "https://a.example/" }, scopes: ["members:write"], audience: "partner", partnerId: s.partner.id });
    await expectRouteSecurity(hub, { method: "GET", path: "/v1/memberships/msh_x", scopes: ["members:read"], audience: "partner", partnerId: s.partner.id });
  });
});
