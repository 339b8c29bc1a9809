import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixedClock, startTestHub, type TestHub } from "../../../test/harness.ts";
import { json } from "../../../test/http.ts";
import { bankScenario, cardEvent } from "../../../test/factories/banking.ts";
import { adminToken, bearer, partnerToken } from "../../../test/factories/auth.ts";

/**
 * What a bank's integrator runs into following docs/banks.md request by request: the documented
 * codes for a member the bank does not know, and bad input answered as a 4xx naming the field.
 */
const clock = fixedClock("2026-11-02T12:00:00.000Z");
let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub({ clock });
});
afterAll(async () => {
  await hub.close();
});

describe("a member the bank does not know", () => {
  it("is 404 member-not-found on every member route, as the errors table says", async () => {
    const s = await bankScenario(hub);
    const other = await bankScenario(hub);
    for (const path of [`/v1/bank/members/${other.member.id}/payment-cards`, `/v1/bank/members/${other.member.id}/money-accounts?currency=EUR`]) {
      const res = await s.get(path);
      expect(res.status, path).toBe(404);
      expect((await json(res)).code, path).toBe("member-not-found");
    }
    const put = await s.put(`/v1/bank/members/${other.member.id}/roundup-settings`, { enabled: true, round_to_units: 1, multiplier: 1, weekly_cap_minor: null });
    expect((await json(put)).code).toBe("member-not-found");
  });
});

describe("a card number in a path", () => {
  it("is refused and never echoed: not in the problem's instance, not in a 404's detail", async () => {
    const s = await bankScenario(hub);
    for (const pan of ["4111111111111111", "4111-1111-1111-1111"]) {
      for (const path of [`/v1/bank/card-purchases/${pan}`, `/v1/bank/members/${pan}/payment-cards`, `/v1/bank/no-such-route/${pan}`]) {
        const res = await s.get(path);
        expect(res.status, path).toBeGreaterThanOrEqual(400);
        expect(res.status, path).toBeLessThan(500);
        const text = await res.text();
        expect(text, path).not.toContain(pan);
        expect(text, path).not.toContain("4111111111111111");
      }
    }
    const refused = await json(await s.get("/v1/bank/card-purchases/4111111111111111"));
    expect(refused).toMatchObject({ code: "pan-refused", instance: "/v1/bank/card-purchases/[redacted]" });
  });
});

describe("a NUL character in a string", () => {
  it("is a 422 naming the field (JSON) or a rejected line (NDJSON), never a 500", async () => {
    const s = await bankScenario(hub);
    const one = await s.post("/v1/bank/card-events", cardEvent(s, { id: "nul\u00001", type: "auth", purchase: "NUL1", amount: 100 }));
    expect(one.status).toBe(422);
    expect(await json(one)).toMatchObject({ code: "validation-error", errors: [{ field: "body/event_id" }] });
    const many = await s.post("/v1/bank/card-events", [cardEvent(s, { id: "nul2", type: "auth", purchase: "NUL2", amount: 100, name: "SHOP\u0000" })]);
    expect(many.status).toBe(422);
    expect(await json(many)).toMatchObject({ code: "validation-error", errors: [{ field: "body/0/merchant_name" }] });
    const nd = [cardEvent(s, { id: "nul3", type: "auth", purchase: "NUL3", amount: 100 }), cardEvent(s, { id: "nul4", type: "auth", purchase: "NUL\u00004", amount: 100 })].map((e) => JSON.stringify(e)).join("\n");
    const ndRes = await s.post("/v1/bank/card-events", nd, undefined, "application/x-ndjson");
    expect(ndRes.status).toBe(200);
    expect(await json(ndRes)).toMatchObject({ received: 2, accepted: 1, rejected: [{ line: 2, reason: "purchase_id: must not contain the NUL character (U+0000)" }] });
    const link = await s.post("/v1/bank/payment-cards", { member_id: s.member.id, card_token: "tok_\u0000abcdefgh", bin: "411111", last_four: "1111", expiry_month: "2029-04" });
    expect(link.status).toBe(422);
    expect((await json(link)).errors).toEqual([{ field: "body/card_token", reason: "must not contain the NUL character (U+0000)" }]);
  });
});

describe("the operator's re-match to a named partner", () => {
  it("naming a partner that is no merchant is 404 partner-not-found naming body/partner_id, not purchase-not-found", async () => {
    const s = await bankScenario(hub);
    await s.post("/v1/bank/payment-cards", { member_id: s.member.id, card_token: s.cardToken, bin: "411111", last_four: "1111", expiry_month: "2029-04" });
    await s.post("/v1/bank/card-events", cardEvent(s, { id: "rm1", type: "clearing", purchase: "RM1", amount: 1000, mid: "NOWHERE-1", mcc: "5812", name: "Some Cafe" }));
    const p = await json(await s.get("/v1/bank/card-purchases/RM1"));
    expect(p.match).toBeNull();
    const admin = await adminToken(hub);
    for (const partnerId of [s.bank.id, "ptn_nope"]) {
      const res = await hub.fetch(`/admin/v1/card-purchases/${p.id}/rematch`, { method: "POST", headers: { ...bearer(admin), "content-type": "application/json" }, body: JSON.stringify({ partner_id: partnerId }) });
      expect(res.status, partnerId).toBe(404);
      expect(await json(res)).toMatchObject({ code: "partner-not-found", errors: [{ field: "body/partner_id" }] });
    }
    const ok = await hub.fetch(`/admin/v1/card-purchases/${p.id}/rematch`, { method: "POST", headers: { ...bearer(admin), "content-type": "application/json" }, body: JSON.stringify({ partner_id: s.merchant.id }) });
    expect(await json(ok)).toMatchObject({ match: { partner_id: s.merchant.id, method: "manual" }, reward: { points: 1 } });
  });
});

describe("a bad card event", () => {
  it("is a 422 naming the bad fields only, not the other shape's (one event or an array)", async () => {
    const s = await bankScenario(hub);
    const one = await json(await s.post("/v1/bank/card-events", { ...cardEvent(s, { id: "v1", type: "auth", purchase: "V1", amount: 100 }), currency: "eur" }));
    expect(one.errors).toEqual([{ field: "body/currency", reason: 'must match pattern "^[A-Z]{3}$"' }]);
    const many = await json(await s.post("/v1/bank/card-events", [cardEvent(s, { id: "v2", type: "auth", purchase: "V2", amount: 100 }), { ...cardEvent(s, { id: "v3", type: "auth", purchase: "V3", amount: 100 }), amount_minor: 1.5 }]));
    expect(many.errors).toEqual([{ field: "body/1/amount_minor", reason: "must be integer" }]);
    const empty = await json(await s.post("/v1/bank/card-events", []));
    expect(empty.errors).toEqual([{ field: "body", reason: "must NOT have fewer than 1 items" }]);
  });
});

describe("an offer that is not valid", () => {
  it("is 422 offer-invalid naming the field in errors", async () => {
    const s = await bankScenario(hub);
    const base = { name: "x", currency: "EUR", starts_at: "2026-11-01T00:00:00Z" };
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ...base, reward_type: "cashback" }, "body/cashback_bps"],
      [{ ...base, reward_type: "cashback", cashback_bps: 100, points: 5 }, "body/points"],
      [{ ...base, reward_type: "points" }, "body/points"],
      [{ ...base, reward_type: "points", points: 5, cashback_bps: 100 }, "body/cashback_bps"],
      [{ ...base, reward_type: "points", points: 5, ends_at: "2026-10-01T00:00:00Z" }, "body/ends_at"],
    ];
    for (const [body, field] of cases) {
      const res = await s.post("/v1/card-offers", body, s.merchantToken);
      expect(res.status, field).toBe(422);
      const p = await json(res);
      expect(p.code, field).toBe("offer-invalid");
      expect(p.errors?.map((e: { field: string }) => e.field), field).toEqual([field]);
    }
  });
});

describe("the clearing file's amounts", () => {
  it("a negative or fractional amount is rejected by line with a reason that says what is wanted", async () => {
    const s = await bankScenario(hub);
    const csv = ["event_id,purchase_id,card_token,amount_minor,currency,transaction_at", `a1,A1,${s.cardToken},-3,EUR,2026-11-02T10:00:00Z`, `a2,A2,${s.cardToken},1.5,EUR,2026-11-02T10:00:00Z`].join("\n");
    const res = await json(await s.post("/v1/bank/clearing-files", csv, undefined, "text/csv"));
    expect(res.rejected).toEqual([
      { line: 2, event_id: null, reason: "amount_minor: must be a whole number of minor units, 0 or more" },
      { line: 3, event_id: null, reason: "amount_minor: must be a whole number of minor units, 0 or more" },
    ]);
  });
});

describe("a member erased at their request", () => {
  it("has the bank's payment cards unlinked: purchases after the erasure earn nothing, what was earned stays", async () => {
    const s = await bankScenario(hub);
    await s.post("/v1/bank/payment-cards", { member_id: s.member.id, card_token: s.cardToken, bin: "411111", last_four: "1111", expiry_month: "2029-04" });
    await s.post("/v1/bank/card-events", cardEvent(s, { id: "er1", type: "clearing", purchase: "ER1", amount: 10_000 }));
    expect((await json(await s.get("/v1/bank/card-purchases/ER1"))).reward.points).toBe(10);
    const tok = await partnerToken(hub, s.bank.id, ["members:write"]);
    const erased = await hub.fetch(`/v1/members/${s.member.id}/erasure`, { method: "POST", headers: { ...bearer(tok), "content-type": "application/json" }, body: JSON.stringify({ reason: "ticket 1" }) });
    expect(erased.status).toBe(200);
    const cards = await json(await s.get(`/v1/bank/members/${s.member.id}/payment-cards`));
    expect(cards.items.map((c: { status: string }) => c.status)).toEqual(["unlinked"]);
    expect(await hub.db("events").where({ type: "payment_card.unlinked", partner_id: s.bank.id }).pluck("data")).toHaveLength(1);
    await s.post("/v1/bank/card-events", cardEvent(s, { id: "er2", type: "clearing", purchase: "ER2", amount: 10_000 }));
    const after = await json(await s.get("/v1/bank/card-purchases/ER2"));
    expect(after).toMatchObject({ member_id: null, reward: { points: 0, cashback_minor: 0 } });
    expect((await json(await s.get("/v1/bank/card-purchases/ER1"))).reward.points).toBe(10);
  });
});

describe("a body that says gzip and is not", () => {
  it("is a 400 problem, not a 500", async () => {
    const s = await bankScenario(hub);
    const res = await hub.fetch("/v1/bank/clearing-files", {
      method: "POST",
      headers: { ...bearer(await partnerToken(hub, s.bank.id, ["card-transactions:write"])), "content-type": "text/csv", "content-encoding": "gzip", "idempotency-key": "gz-1" },
      body: "event_id,purchase_id,card_token,amount_minor,currency,transaction_at\n",
    });
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    expect((await json(res)).code).toBe("malformed-body");
  });
});
