import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "./harness.ts";
import { json } from "./http.ts";
import { adminToken, bearer, partnerToken } from "./factories/auth.ts";
import { ledgerScenario } from "./factories/ledger.ts";

/**
 * Where the network meets the ledger: a card that stops working stops earning at once, a suspended
 * partner cannot move points, and erasing a member's personal data leaves the ledger whole.
 */
let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub();
});
afterAll(() => hub.close());

describe("the network's rules hold on the earn and burn path", () => {
  it("refuses earn and burn on a blocked card, and for a suspended partner", async () => {
    const s = await ledgerScenario(hub);
    const cardsToken = await partnerToken(hub, s.partner.id, ["cards:write"]);
    const issued = await hub.fetch(`/v1/members/${s.member.id}/cards`, {
      method: "POST",
      headers: { ...bearer(cardsToken), "content-type": "application/json" },
      body: JSON.stringify({ form: "virtual" }),
    });
    expect(issued.status).toBe(201);
    const card = await json(issued);

    const byCard = await s.post("/v1/earn", { card_number: card.number, partner_transaction_id: "t-card-1", amount_minor: 5000, currency: "EUR" });
    expect(byCard.status).toBe(201);

    const blocked = await hub.fetch(`/v1/cards/${card.id}/status`, {
      method: "POST",
      headers: { ...bearer(cardsToken), "content-type": "application/json" },
      body: JSON.stringify({ status: "blocked", reason: "customer called" }),
    });
    expect(blocked.status).toBe(200);
    const refused = await s.post("/v1/earn", { card_number: card.number, partner_transaction_id: "t-card-2", amount_minor: 5000, currency: "EUR" });
    expect(refused.status).toBe(422);
    expect((await json(refused)).code).toBe("card-blocked");
    const burnRefused = await s.post("/v1/burn", { card_number: card.number, partner_transaction_id: "b-card-1", points: 1, amount_minor: 1, currency: "EUR" });
    expect(burnRefused.status).toBe(422);
    expect((await json(burnRefused)).code).toBe("card-blocked");

    const admin = await adminToken(hub);
    const suspend = await hub.fetch(`/admin/v1/partners/${s.partner.id}/status`, {
      method: "POST",
      headers: { ...bearer(admin), "content-type": "application/json" },
      body: JSON.stringify({ status: "suspended", reason: "unpaid statement" }),
    });
    expect(suspend.status).toBe(200);
    const suspended = await s.post("/v1/earn", { member_id: s.member.id, partner_transaction_id: "t-susp", amount_minor: 5000, currency: "EUR" });
    expect(suspended.status).toBe(403);
    expect((await json(suspended)).code).toBe("partner-not-active");
    const balance = await s.get(`/v1/members/${s.member.id}/balance`);
    expect(balance.status).toBe(200);
    expect((await json(balance)).available).toBe(5);
  });

  it("erases a member's personal data and leaves the ledger balancing, its history intact", async () => {
    const s = await ledgerScenario(hub);
    const writer = await partnerToken(hub, s.partner.id, ["members:write", "members:read"]);
    const enrolled = await hub.fetch("/v1/members", {
      method: "POST",
      headers: { ...bearer(writer), "content-type": "application/json" },
      body: JSON.stringify({ customer_ref: "crm-erase-1", given_name: "Erika", family_name: "Muster", email: "erika@example.com" }),
    });
    expect(enrolled.status, JSON.stringify(await enrolled.clone().json())).toBe(201);
    const memberId = (await json(enrolled)).member.id as string;
    for (let i = 0; i < 3; i++) {
      const r = await s.post("/v1/earn", { member_id: memberId, partner_transaction_id: `e-${i}`, amount_minor: 10_000, currency: "EUR" });
      expect(r.status, await r.text()).toBe(201);
    }
    expect((await s.post("/v1/burn", { member_id: memberId, partner_transaction_id: "e-burn", points: 7, amount_minor: 7, currency: "EUR" })).status).toBe(201);
    const entriesBefore = await hub.db("ledger_entries").where({ member_id: memberId }).count<{ count: bigint }[]>({ count: "*" });

    const admin = await adminToken(hub);
    const erased = await hub.fetch(`/admin/v1/members/${memberId}/erasure`, {
      method: "POST",
      headers: { ...bearer(admin), "content-type": "application/json" },
      body: JSON.stringify({ reason: "GDPR Art. 17 request" }),
    });
    expect(erased.status).toBe(200);

    const exported = await json(await hub.fetch(`/admin/v1/members/${memberId}/export`, { headers: bearer(admin) }));
    expect(JSON.stringify(exported)).not.toContain("Erika");
    expect(JSON.stringify(exported)).not.toContain("erika@example.com");

    // The ledger is untouched: same entries, balanced, balances equal postings, network sums to zero.
    const entriesAfter = await hub.db("ledger_entries").where({ member_id: memberId }).count<{ count: bigint }[]>({ count: "*" });
    expect(entriesAfter[0]!.count).toBe(entriesBefore[0]!.count);
    expect((await hub.db.raw("SELECT * FROM ledger_balance_mismatches()")).rows).toEqual([]);
    const sums = (await hub.db.raw("SELECT asset, sum(amount)::text AS total FROM ledger_postings GROUP BY asset")).rows as Array<{ total: string }>;
    for (const r of sums) expect(r.total).toBe("0");
    const account = await hub.db("ledger_accounts").where({ member_id: memberId, kind: "member_points" }).first("balance");
    // Both drivers answer int8 as bigint, whatever its size.
    expect(account.balance).toBe(23n);
    // No personal data ever reached the ledger.
    const ledgerText = JSON.stringify(await hub.db("ledger_entries").where({ member_id: memberId }).select("*"), (_k, v) => (typeof v === "bigint" ? String(v) : v));
    expect(ledgerText).not.toMatch(/Erika|Muster|erika@example\.com/);
  });
});
