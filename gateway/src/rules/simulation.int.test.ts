import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { json } from "../../../test/http.ts";
import { adminToken, bearer } from "../../../test/factories/auth.ts";
import { createMember } from "../../../test/factories/network.ts";
import { ledgerScenario } from "../../../test/factories/ledger.ts";

// A database of its own: the simulation reads every purchase of the window.
let hub: TestHub;
let admin: string;
beforeAll(async () => {
  hub = await startTestHub();
  admin = await adminToken(hub);
});
afterAll(async () => {
  await hub.close();
});

const DAY = 86_400_000;
const ago = (days: number) => new Date(Date.now() - days * DAY).toISOString();
const send = (method: string, path: string, token: string, body?: unknown) =>
  hub.fetch(path, { method, headers: { ...bearer(token), "content-type": "application/json" }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });

describe("simulation before launch", () => {
  it("reports the points, cost and members of a draft rule over the last N days, matching a hand-computed case", async () => {
    // A: issued at 0.010 per point; B: at 0.012; C is outside the rule. All 1 point per 10.00.
    const a = await ledgerScenario(hub);
    const b = await ledgerScenario(hub, { issuance_price_micros: 12_000n });
    const c = await ledgerScenario(hub);
    const m1 = a.member;
    const m2 = b.member;
    const m3 = await createMember(hub.db, a.partner.id);
    const buy = async (s: typeof a, memberId: string, id: string, amount: number, lines: unknown[], at: string) => {
      const res = await s.post("/v1/earn", { member_id: memberId, partner_transaction_id: id, amount_minor: amount, currency: "EUR", lines, occurred_at: at });
      expect(res.status).toBe(201);
    };
    await buy(a, m1.id, "t1", 12_000, [{ category: "premium", amount_minor: 8_000 }, { category: "food", amount_minor: 4_000 }], ago(20));
    await buy(a, m1.id, "t2", 25_000, [{ category: "premium", amount_minor: 25_000 }], ago(10));
    await buy(b, m2.id, "t3", 9_999, [{ category: "premium", amount_minor: 5_555 }, { category: "food", amount_minor: 4_444 }], ago(5));
    await buy(a, m3.id, "t4", 5_000, [{ category: "food", amount_minor: 5_000 }], ago(3));
    await buy(a, m3.id, "t5", 10_000, [{ category: "premium", amount_minor: 10_000 }], ago(40));
    await buy(c, c.member.id, "t6", 10_000, [{ category: "premium", amount_minor: 10_000 }], ago(2));
    const before = await hub.db("ledger_entries").count<{ count: string }[]>("* as count");

    const draft = await json(
      await send("POST", "/admin/v1/rules", admin, {
        name: "Double points on Premium",
        type: "multiplier",
        valid_from: "2020-01-01T00:00:00Z",
        partner_ids: [a.partner.id, b.partner.id],
        params: { multiplier_bp: 20_000, categories: ["premium"] },
        caps: { period: "rule", member_points: 30 },
      }),
    );
    const res = await send("POST", `/admin/v1/rules/${draft.id}/simulation`, admin, { days: 30 });
    expect(res.status).toBe(200);
    // By hand, purchases of A and B in the last 30 days (t1–t4; t5 is too old, t6 at C):
    //   t1 m1: premium 80.00 → floor(8000/1000) = 8 extra points
    //   t2 m1: premium 250.00 → 25, but the member cap of 30 leaves 30 − 8 = 22
    //   t3 m2 at B: premium 55.55 → floor(5555/1000) = 5
    //   t4 m3: no premium → nothing
    // points 8 + 22 + 5 = 35; members m1, m2 = 2;
    // cost (8 + 22) × 10 000 + 5 × 12 000 = 360 000 micros = 0.36 EUR = 36 cents.
    expect(await json(res)).toMatchObject({
      rule_id: draft.id,
      days: 30,
      transactions_examined: 4,
      transactions_rewarded: 3,
      points: 35,
      members_touched: 2,
      cost: [{ currency: "EUR", cost_micros: 360_000, cost_minor: 36 }],
    });
    // Nothing written, and the rule is still a draft.
    expect(await hub.db("ledger_entries").count<{ count: string }[]>("* as count")).toEqual(before);
    expect((await json(await send("GET", `/admin/v1/rules/${draft.id}`, admin))).status).toBe("draft");

    // A partner simulates its own promotion over its own purchases only: t1, t2, t4 of A.
    const own = await json(await send("POST", "/v1/rules", a.token, { name: "Ten on everything", type: "fixed_bonus", valid_from: "2020-01-01T00:00:00Z", params: { points: 10 } }));
    expect(await json(await send("POST", `/v1/rules/${own.id}/simulation`, a.token, { days: 30 }))).toMatchObject({
      transactions_examined: 3,
      points: 30,
      members_touched: 2,
      cost: [{ currency: "EUR", cost_micros: 300_000, cost_minor: 30 }],
    });
    // …and cannot simulate the operator's.
    expect((await send("POST", `/v1/rules/${draft.id}/simulation`, a.token, { days: 30 })).status).toBe(404);
  });

  it("counts the n-th purchase from the real history before the window", async () => {
    const s = await ledgerScenario(hub);
    for (const [i, d] of [35, 20, 10].entries()) {
      const res = await s.post("/v1/earn", { member_id: s.member.id, partner_transaction_id: `n${i}`, amount_minor: 2_000, currency: "EUR", occurred_at: ago(d) });
      expect(res.status).toBe(201);
    }
    const rule = await json(
      await send("POST", "/admin/v1/rules", admin, { name: "Every third", type: "nth_purchase", valid_from: "2020-01-01T00:00:00Z", partner_ids: [s.partner.id], params: { every: 3, period: "year", percent_bp: 1_500, point_value_minor: 100 } }),
    );
    // The third purchase of the year (10 days ago) earns floor(2000 × 1500 / 1 000 000) = 3, counting the one 35 days ago
    // — unless the year turned in between; then none of the window's purchases is a third.
    const sameYear = new Date(ago(35)).getUTCFullYear() === new Date(ago(10)).getUTCFullYear() && new Date(ago(20)).getUTCFullYear() === new Date(ago(10)).getUTCFullYear();
    expect(await json(await send("POST", `/admin/v1/rules/${rule.id}/simulation`, admin, { days: 30 }))).toMatchObject({ transactions_examined: 2, points: sameYear ? 3 : 0 });
  });
});
