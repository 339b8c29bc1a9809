import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { json } from "../../../test/http.ts";
import { bearer, partnerToken } from "../../../test/factories/auth.ts";
import { createMember } from "../../../test/factories/network.ts";
import { createEarningPartner, ledgerScenario } from "../../../test/factories/ledger.ts";
import { expectRouteSecurity } from "../../../test/security.ts";
import { createLedger } from "../ledger/ledger.service.ts";
import { createCardsService } from "../cards/cards.service.ts";

let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub();
});
afterAll(async () => {
  expect(await createLedger({ db: hub.db }).checkInvariants()).toEqual([]);
  await hub.close();
});

const earnBody = (memberId: string, amount: number, txn = `pos-${Math.random()}`) => ({
  member_id: memberId,
  partner_transaction_id: txn,
  amount_minor: amount,
  currency: "EUR",
});

describe("POST /v1/earn", () => {
  it("credits points by the contract's base rate, rounded down, and itemises how", async () => {
    const s = await ledgerScenario(hub);
    const res = await s.post("/v1/earn", { ...earnBody(s.member.id, 123_456), lines: [{ sku: "A1", category: "food", amount_minor: 123_456 }] });
    expect(res.status).toBe(201);
    const body = await json(res);
    expect(body).toMatchObject({
      member_id: s.member.id,
      dry_run: false,
      points_earned: 123,
      points_burned: 0,
      computation: { contract_version: 1, items: [{ kind: "base_rate", amount_minor: 123_456, points: 123 }] },
      balance: { available: 123, held: 0, owed: 0 },
    });
    expect(body.transaction_id).toMatch(/^txn_/);
    expect(body.lot.expires_at).toBe(new Date(new Date(body.occurred_at).getTime() + 730 * 86_400_000).toISOString());
    const bal = await json(await s.get(`/v1/members/${s.member.id}/balance`));
    expect(bal).toMatchObject({ available: 123, held: 0, pending: 0, owed: 0, net: 123, expiring: [{ points: 123, expires_at: body.lot.expires_at }] });
  });

  it("finds the member by a co-branded card presented at another partner, which links them", async () => {
    const issuer = await ledgerScenario(hub);
    const card = await createCardsService(hub.deps).issue(issuer.partner.id, issuer.member.id, { form: "virtual" });
    const other = await ledgerScenario(hub);
    expect((await other.get(`/v1/members/${issuer.member.id}/balance`)).status).toBe(404);
    const res = await other.post("/v1/earn", { card_number: card.number, partner_transaction_id: "card-1", amount_minor: 20_000, currency: "EUR" });
    expect(res.status).toBe(201);
    expect(await json(res)).toMatchObject({ member_id: issuer.member.id, points_earned: 20 });
    expect((await json(await other.get(`/v1/members/${issuer.member.id}/balance`))).available).toBe(20);
    const unknown = await other.post("/v1/earn", { card_number: "0000000000000000", partner_transaction_id: "card-2", amount_minor: 20_000, currency: "EUR" });
    expect(unknown.status).toBe(404);
  });

  it("refuses a body naming no member, or a member_id that is not the card's member, as 422 naming body/member_id", async () => {
    const s = await ledgerScenario(hub);
    const card = await createCardsService(hub.deps).issue(s.partner.id, s.member.id, { form: "virtual" });
    const none = await s.post("/v1/earn", { partner_transaction_id: "who-1", amount_minor: 20_000, currency: "EUR" });
    expect(none.status).toBe(422);
    expect(await json(none)).toMatchObject({ code: "validation-error", errors: [{ field: "body/member_id" }] });
    const stranger = await createMember(hub.db, s.partner.id);
    const clash = await s.post("/v1/earn", { card_number: card.number, member_id: stranger.id, partner_transaction_id: "who-2", amount_minor: 20_000, currency: "EUR" });
    expect(clash.status).toBe(422);
    expect(await json(clash)).toMatchObject({ code: "validation-error", errors: [{ field: "body/member_id" }] });
    const agree = await s.post("/v1/earn", { card_number: card.number, member_id: s.member.id, partner_transaction_id: "who-3", amount_minor: 20_000, currency: "EUR" });
    expect(agree.status).toBe(201);
    expect((await json(await s.get(`/v1/members/${s.member.id}/balance`))).available).toBe(20);
  });

  it("answers a dry run with the same computation and writes nothing", async () => {
    const s = await ledgerScenario(hub);
    const res = await s.post("/v1/earn?dry_run=true", earnBody(s.member.id, 50_000));
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ transaction_id: null, dry_run: true, points_earned: 50, lot: null, balance: { available: 50 } });
    expect((await json(await s.get(`/v1/members/${s.member.id}/balance`))).available).toBe(0);
  });

  it("replays a retry with the same key and body, and refuses the key with another body", async () => {
    const s = await ledgerScenario(hub);
    const body = earnBody(s.member.id, 20_000);
    const first = await s.post("/v1/earn", body, "key-1");
    const again = await s.post("/v1/earn", body, "key-1");
    expect(again.status).toBe(201);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(await json(again)).toEqual(await json(first));
    const other = await s.post("/v1/earn", { ...body, amount_minor: 30_000 }, "key-1");
    expect(other.status).toBe(422);
    expect((await json(other)).code).toBe("idempotency-key-reused");
    expect((await json(await s.get(`/v1/members/${s.member.id}/balance`))).available).toBe(20);
  });

  it("keeps no answer for a request that failed validation: the corrected one goes through under the same key", async () => {
    const s = await ledgerScenario(hub);
    // The handler's own validation (no member named), twice: the same refusal, run afresh, not replayed.
    const noMember = { partner_transaction_id: "fix-1", amount_minor: 20_000, currency: "EUR" };
    for (let i = 0; i < 2; i++) {
      const res = await s.post("/v1/earn", noMember, "key-fix");
      expect(res.status).toBe(422);
      expect(res.headers.get("idempotent-replayed")).toBeNull();
      expect(await json(res)).toMatchObject({ code: "validation-error", errors: [{ field: "body/member_id" }] });
    }
    // The contract's schema (an amount as a string): nothing kept either.
    const asText = await s.post("/v1/earn", { ...earnBody(s.member.id, 0, "fix-1"), amount_minor: "20000" }, "key-fix");
    expect(asText.status).toBe(422);
    expect((await json(asText)).code).toBe("validation-error");
    // Corrected, under the same key: written once, then replayed.
    const fixed = await s.post("/v1/earn", earnBody(s.member.id, 20_000, "fix-1"), "key-fix");
    expect(fixed.status).toBe(201);
    const again = await s.post("/v1/earn", earnBody(s.member.id, 20_000, "fix-1"), "key-fix");
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(await json(again)).toEqual(await json(fixed));
    // A refusal of the request itself is still an answer: kept and replayed.
    const short = await s.post("/v1/burn", { member_id: s.member.id, partner_transaction_id: "fix-b", points: 500, amount_minor: 500, currency: "EUR" }, "key-fix-b");
    expect(short.status).toBe(422);
    const shortAgain = await s.post("/v1/burn", { member_id: s.member.id, partner_transaction_id: "fix-b", points: 500, amount_minor: 500, currency: "EUR" }, "key-fix-b");
    expect(shortAgain.headers.get("idempotent-replayed")).toBe("true");
    expect((await json(shortAgain)).code).toBe("insufficient-points");
    expect((await json(await s.get(`/v1/members/${s.member.id}/balance`))).available).toBe(20);
  });

  it("gives concurrent requests with one key one effect", async () => {
    const s = await ledgerScenario(hub);
    const body = earnBody(s.member.id, 10_000);
    const answers = await Promise.all(Array.from({ length: 8 }, () => s.post("/v1/earn", body, "same-key")));
    const bodies = await Promise.all(answers.map((a) => json(a)));
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(201));
    expect(new Set(bodies.map((b) => b.transaction_id)).size).toBe(1);
    expect((await json(await s.get(`/v1/members/${s.member.id}/balance`))).available).toBe(10);
  });

  it("refuses the partner's transaction id a second time under a new key", async () => {
    const s = await ledgerScenario(hub);
    const first = await json(await s.post("/v1/earn", earnBody(s.member.id, 10_000, "pos-dup")));
    const res = await s.post("/v1/earn", earnBody(s.member.id, 10_000, "pos-dup"));
    expect(res.status).toBe(409);
    expect(await json(res)).toMatchObject({ code: "duplicate-transaction", transaction_id: first.transaction_id });
  });

  it("refuses a partner that is not active, a wrong currency, an unknown member and another partner's member", async () => {
    const s = await ledgerScenario(hub);
    expect((await json(await s.post("/v1/earn", { ...earnBody(s.member.id, 100), currency: "USD" }))).code).toBe("currency-mismatch");
    const unknown = await s.post("/v1/earn", earnBody("mem_nobody", 100));
    expect(unknown.status).toBe(404);
    const { partner: other } = await createEarningPartner(hub.db);
    const stranger = await createMember(hub.db, other.id);
    const hidden = await s.post("/v1/earn", earnBody(stranger.id, 100));
    expect(hidden.status).toBe(404);
    expect((await json(hidden)).code).toBe("member-not-found");
    const { partner: suspended } = await createEarningPartner(hub.db, {}, { status: "suspended" });
    const m = await createMember(hub.db, suspended.id);
    const tok = await partnerToken(hub, suspended.id, ["earn:write"]);
    const res = await hub.fetch("/v1/earn", {
      method: "POST",
      headers: { ...bearer(tok), "content-type": "application/json", "idempotency-key": "susp-1" },
      body: JSON.stringify(earnBody(m.id, 100)),
    });
    expect(res.status).toBe(403);
    expect((await json(res)).code).toBe("partner-not-active");
  });

  it("burns and earns on one basket atomically; a short balance writes neither", async () => {
    const s = await ledgerScenario(hub);
    await s.post("/v1/earn", earnBody(s.member.id, 100_000));
    const res = await s.post("/v1/earn", { ...earnBody(s.member.id, 50_000), burn: { points: 80, amount_minor: 8_000 } });
    expect(res.status).toBe(201);
    expect(await json(res)).toMatchObject({ points_burned: 80, points_earned: 42, balance: { available: 100 - 80 + 42 } });
    const short = await s.post("/v1/earn", { ...earnBody(s.member.id, 50_000), burn: { points: 1_000, amount_minor: 10_000 } });
    expect(short.status).toBe(422);
    expect(await json(short)).toMatchObject({ code: "insufficient-points", available_points: 62, requested_points: 1_000 });
    expect((await json(await s.get(`/v1/members/${s.member.id}/balance`))).available).toBe(62);
    const onlyEarn = await partnerToken(hub, s.partner.id, ["earn:write"]);
    const noScope = await s.post("/v1/earn", { ...earnBody(s.member.id, 50_000), burn: { points: 1, amount_minor: 100 } }, "k-ns", onlyEarn);
    expect(noScope.status).toBe(403);
  });
});

describe("POST /v1/burn", () => {
  it("spends points, and refuses more than the balance with insufficient-points, replayed as such", async () => {
    const s = await ledgerScenario(hub);
    await s.post("/v1/earn", earnBody(s.member.id, 100_000));
    const ok = await s.post("/v1/burn", { member_id: s.member.id, partner_transaction_id: "b-1", points: 30, amount_minor: 300, currency: "EUR" });
    expect(ok.status).toBe(201);
    expect(await json(ok)).toMatchObject({ points_burned: 30, balance: { available: 70 } });
    const body = { member_id: s.member.id, partner_transaction_id: "b-2", points: 71, amount_minor: 710, currency: "EUR" };
    const refused = await s.post("/v1/burn", body, "burn-key");
    expect(refused.status).toBe(422);
    expect(refused.headers.get("content-type")).toMatch(/problem\+json/);
    const p = await json(refused);
    expect(p).toMatchObject({ type: "/problems/insufficient-points", code: "insufficient-points", available_points: 70, requested_points: 71 });
    const replay = await s.post("/v1/burn", body, "burn-key");
    expect(replay.status).toBe(422);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.headers.get("content-type")).toMatch(/problem\+json/);
    expect((await json(replay)).code).toBe("insufficient-points");
  });
});

describe("two-phase redemptions", () => {
  it("holds, captures part and releases the rest", async () => {
    const s = await ledgerScenario(hub);
    await s.post("/v1/earn", earnBody(s.member.id, 100_000));
    const held = await s.post("/v1/redemptions", { member_id: s.member.id, partner_transaction_id: "order-1", points: 60, amount_minor: 600, currency: "EUR" });
    expect(held.status).toBe(201);
    const r = await json(held);
    expect(r).toMatchObject({ status: "held", points: 60, captured_points: 0, transaction_id: null, balance: { available: 40, held: 60 } });
    const cap = await s.post(`/v1/redemptions/${r.id}/capture`, { points: 45 });
    expect(cap.status).toBe(200);
    const c = await json(cap);
    expect(c).toMatchObject({ status: "captured", captured_points: 45, balance: { available: 55, held: 0 } });
    expect(c.transaction_id).toMatch(/^txn_/);
    const twice = await s.post(`/v1/redemptions/${r.id}/void`, {});
    expect(twice.status).toBe(409);
    expect(await json(twice)).toMatchObject({ code: "redemption-not-held", status: 409, redemption_status: "captured" });
    expect((await json(await s.get(`/v1/redemptions/${r.id}`))).status).toBe("captured");
  });

  it("voids a hold, refuses to capture more than held, and hides another partner's redemption", async () => {
    const s = await ledgerScenario(hub);
    await s.post("/v1/earn", earnBody(s.member.id, 100_000));
    const r = await json(await s.post("/v1/redemptions", { member_id: s.member.id, partner_transaction_id: "order-2", points: 50, amount_minor: 500, currency: "EUR" }));
    expect((await s.post(`/v1/redemptions/${r.id}/capture`, { points: 51 })).status).toBe(422);
    const other = await ledgerScenario(hub);
    expect((await other.post(`/v1/redemptions/${r.id}/capture`, {})).status).toBe(404);
    expect((await other.get(`/v1/redemptions/${r.id}`)).status).toBe(404);
    const v = await s.post(`/v1/redemptions/${r.id}/void`, undefined);
    expect(v.status).toBe(200);
    expect(await json(v)).toMatchObject({ status: "voided", balance: { available: 100, held: 0 } });
  });
});

describe("POST /v1/transactions/{id}/refund", () => {
  it("claws back earned points in proportion; partial refunds add up to the full one", async () => {
    const s = await ledgerScenario(hub);
    const t = await json(await s.post("/v1/earn", earnBody(s.member.id, 99_999)));
    expect(t.points_earned).toBe(99);
    const a = await json(await s.post(`/v1/transactions/${t.transaction_id}/refund`, { refund_id: "r-1", amount_minor: 33_333 }));
    expect(a).toMatchObject({ points_clawed_back: 33, transaction: { refunded_minor: 33_333, refundable_minor: 66_666 }, balance: { available: 66 } });
    const b = await json(await s.post(`/v1/transactions/${t.transaction_id}/refund`, { refund_id: "r-2" }));
    expect(b).toMatchObject({ amount_minor: 66_666, points_clawed_back: 66, transaction: { refundable_minor: 0 }, balance: { available: 0 } });
    const ev = (await hub.db("events").where({ type: "refund.posted" }).whereRaw("data->>'refund_id' = ?", [b.id]).first("data")) as { data: Record<string, unknown> };
    expect(ev.data).toMatchObject({ refund_id: b.id, partner_refund_id: "r-2", transaction_id: t.transaction_id, amount_minor: 66_666, points_clawed_back: 66 });
    const over = await s.post(`/v1/transactions/${t.transaction_id}/refund`, { refund_id: "r-3", amount_minor: 1 });
    expect(over.status).toBe(422);
    expect((await json(over)).code).toBe("refund-exceeds-transaction");
  });

  it("when the points were spent: a bounded debt, then a recovery — never a failed refund", async () => {
    const s = await ledgerScenario(hub, { negative_floor: -30n });
    const t = await json(await s.post("/v1/earn", earnBody(s.member.id, 100_000)));
    await s.post("/v1/burn", { member_id: s.member.id, partner_transaction_id: "spend", points: 90, amount_minor: 900, currency: "EUR" });
    const res = await s.post(`/v1/transactions/${t.transaction_id}/refund`, { refund_id: "r-spent" });
    expect(res.status).toBe(201);
    expect(await json(res)).toMatchObject({ points_clawed_back: 100, clawback: { from_balance: 10, to_debt: 30, to_recovery: 60 }, balance: { available: 0, owed: 30 } });
    const bal = await json(await s.get(`/v1/members/${s.member.id}/balance`));
    expect(bal).toMatchObject({ available: 0, owed: 30, net: -30 });
    const next = await json(await s.post("/v1/earn", earnBody(s.member.id, 50_000)));
    expect(next.balance).toMatchObject({ available: 20, owed: 0 });
  });

  it("gives back points a refunded purchase was paid with", async () => {
    const s = await ledgerScenario(hub);
    await s.post("/v1/earn", earnBody(s.member.id, 100_000));
    const t = await json(await s.post("/v1/earn", { ...earnBody(s.member.id, 20_000), burn: { points: 50, amount_minor: 10_000 } }));
    expect(t.balance.available).toBe(60);
    const r = await json(await s.post(`/v1/transactions/${t.transaction_id}/refund`, { refund_id: "r-mixed" }));
    expect(r).toMatchObject({ points_restored: 50, points_clawed_back: 10, balance: { available: 100 } });
  });

  it("hides another partner's transaction", async () => {
    const s = await ledgerScenario(hub);
    const t = await json(await s.post("/v1/earn", earnBody(s.member.id, 10_000)));
    const other = await ledgerScenario(hub);
    const res = await other.post(`/v1/transactions/${t.transaction_id}/refund`, { refund_id: "x" });
    expect(res.status).toBe(404);
  });
});

describe("GET /v1/members/{id}/history", () => {
  it("pages through the member's movements newest first", async () => {
    const s = await ledgerScenario(hub);
    for (let i = 1; i <= 5; i++) await s.post("/v1/earn", earnBody(s.member.id, i * 10_000));
    await s.post("/v1/burn", { member_id: s.member.id, partner_transaction_id: "h-b", points: 7, amount_minor: 70, currency: "EUR" });
    const p1 = await json(await s.get(`/v1/members/${s.member.id}/history?limit=4`));
    expect(p1.items.map((i: { points: number }) => i.points)).toEqual([-7, 50, 40, 30]);
    expect(p1.items[0]).toMatchObject({ type: "burn", description: "Points spent", at_this_partner: true, partner_id: s.partner.id });
    const p2 = await json(await s.get(`/v1/members/${s.member.id}/history?limit=4&cursor=${p1.next_cursor}`));
    expect(p2.items.map((i: { points: number }) => i.points)).toEqual([20, 10]);
    expect(p2.next_cursor).toBeNull();
    // A cursor the API never handed out is the caller's mistake, named; "AAAA" decodes to NUL bytes.
    for (const bad of ["AAAA", "bm9wZQ", Buffer.from("ent_x' OR 1=1").toString("base64url")]) {
      const res = await s.get(`/v1/members/${s.member.id}/history?cursor=${bad}`);
      expect(res.status).toBe(422);
      expect((await json(res)).errors).toEqual([{ field: "query/cursor", reason: "is not a cursor this API handed out" }]);
    }
    const other = await ledgerScenario(hub);
    expect((await other.get(`/v1/members/${s.member.id}/history`)).status).toBe(404);
    expect((await other.get(`/v1/members/${s.member.id}/balance`)).status).toBe(404);
  });

  it("tells a two-phase redemption in words: reserved, then spent, with what a partial capture returned", async () => {
    const s = await ledgerScenario(hub);
    await s.post("/v1/earn", earnBody(s.member.id, 100_000));
    const full = await json(await s.post("/v1/redemptions", { member_id: s.member.id, partner_transaction_id: "h-full", points: 30, amount_minor: 300, currency: "EUR" }));
    await s.post(`/v1/redemptions/${full.id}/capture`, {});
    const part = await json(await s.post("/v1/redemptions", { member_id: s.member.id, partner_transaction_id: "h-part", points: 20, amount_minor: 200, currency: "EUR" }));
    await s.post(`/v1/redemptions/${part.id}/capture`, { points: 15 });
    const page = await json(await s.get(`/v1/members/${s.member.id}/history`));
    expect(page.items.map((i: { type: string; points: number; description: string }) => [i.type, i.points, i.description])).toEqual([
      ["capture", 5, "Reserved points spent; the rest returned"],
      ["hold", -20, "Points reserved for a purchase"],
      ["capture", 0, "Reserved points spent"],
      ["hold", -30, "Points reserved for a purchase"],
      ["earn", 100, "Points earned"],
    ]);
  });
});

describe("security of the earn and burn routes", () => {
  it("fails closed on every route", async () => {
    const { partner } = await createEarningPartner(hub.db);
    const m = await createMember(hub.db, partner.id);
    const routes = [
      { method: "POST", path: "/v1/earn", body: earnBody(m.id, 100), scopes: ["earn:write"] },
      { method: "POST", path: "/v1/burn", body: { member_id: m.id, partner_transaction_id: "s", points: 1, amount_minor: 1, currency: "EUR" }, scopes: ["burn:write"] },
      { method: "POST", path: "/v1/redemptions", body: { member_id: m.id, partner_transaction_id: "s", points: 1, amount_minor: 1, currency: "EUR" }, scopes: ["burn:write"] },
      { method: "GET", path: "/v1/redemptions/red_x", scopes: ["burn:write"] },
      { method: "POST", path: "/v1/redemptions/red_x/capture", body: {}, scopes: ["burn:write"] },
      { method: "POST", path: "/v1/redemptions/red_x/void", scopes: ["burn:write"] },
      { method: "POST", path: "/v1/transactions/txn_x/refund", body: { refund_id: "s" }, scopes: ["earn:write"] },
      { method: "GET", path: `/v1/members/${m.id}/balance`, scopes: ["members:read"] },
      { method: "GET", path: `/v1/members/${m.id}/history`, scopes: ["members:read"] },
    ];
    for (const r of routes) await expectRouteSecurity(hub, { ...r, audience: "partner", partnerId: partner.id });
  });
});
