import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixedClock, startTestHub, type TestHub } from "../../../test/harness.ts";
import { json } from "../../../test/http.ts";
import { adminToken, bearer, partnerToken } from "../../../test/factories/auth.ts";
import { bankScenario, cardEvent } from "../../../test/factories/banking.ts";
import { createPartner } from "../../../test/factories/network.ts";
import { createLedger } from "../ledger/ledger.service.ts";
import { moneyAccounts } from "./money-ledger.ts";
import { isRetryableDbError } from "../infra/db.ts";

const clock = fixedClock("2026-11-02T12:00:00.000Z");
let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub({ clock, config: { CASHBACK_PAYOUT_THRESHOLD_MINOR: "400" } });
});
afterAll(async () => {
  expect(await createLedger({ db: hub.db }).checkInvariants()).toEqual([]);
  await hub.close();
});

const DAY = 86_400_000;
const balanceOf = async (id: string) => BigInt(((await hub.db("ledger_accounts").where({ id }).first("balance")) as { balance: bigint } | undefined)?.balance ?? 0);

async function linked(opts: Parameters<typeof bankScenario>[1] = {}) {
  const s = await bankScenario(hub, opts);
  const res = await s.post("/v1/bank/payment-cards", { member_id: s.member.id, card_token: s.cardToken, bin: "411111", last_four: "1111", expiry_month: "2029-04" });
  expect(res.status).toBe(201);
  return s;
}

describe("payment cards", () => {
  it("links a card by token, lists it masked, unlinks it", async () => {
    const s = await linked();
    const list = await json(await s.get(`/v1/bank/members/${s.member.id}/payment-cards`));
    expect(list.items).toHaveLength(1);
    expect(list.items[0]).toMatchObject({ masked: "411111••••••1111", bin: "411111", last_four: "1111", expiry_month: "2029-04", status: "active" });
    expect(JSON.stringify(list)).not.toContain(s.cardToken);
    const again = await s.post("/v1/bank/payment-cards", { member_id: s.member.id, card_token: s.cardToken, bin: "411111", last_four: "1111", expiry_month: "2029-04" });
    expect(again.status).toBe(409);
    const del = await s.del(`/v1/bank/payment-cards/${list.items[0].id}`);
    expect(del.status).toBe(200);
    expect((await json(del)).status).toBe("unlinked");
    expect(Number((await hub.db("events").where({ type: "payment_card.linked", partner_id: s.bank.id }).count("* as n").first())?.n)).toBe(1);
  });

  it("refuses a full card number in any field, any depth, spaced or dashed, and stores and echoes nothing", async () => {
    const s = await bankScenario(hub);
    const pans = ["4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", "5555555555554444", "378282246310005"];
    for (const pan of pans) {
      const res = await s.post("/v1/bank/payment-cards", { member_id: s.member.id, card_token: `card ${pan}`, bin: "411111", last_four: "1111", expiry_month: "2029-04" });
      expect(res.status, pan).toBe(422);
      const text = await res.text();
      expect(text).toContain("pan-refused");
      expect(text).not.toContain(pan);
      expect(text).not.toContain(pan.replace(/[ -]/g, ""));
    }
    // As a JSON number, nested in an array, and inside an NDJSON body.
    const num = await s.post("/v1/bank/card-events", [{ ...cardEvent(s, { id: "e1", type: "auth", purchase: "p1", amount: 100 }), merchant_name: "x", mid: null, extra: { deep: [4111111111111111] } }]);
    expect(num.status).toBe(422);
    expect((await json(num)).code).toBe("pan-refused");
    const nd = await s.post("/v1/bank/card-events", `${JSON.stringify(cardEvent(s, { id: "e2", type: "auth", purchase: "p2", amount: 100, name: "SHOP 4111111111111111" }))}\n`, undefined, "application/x-ndjson");
    expect(nd.status).toBe(422);
    expect(Number((await hub.db("payment_cards").where({ bank_partner_id: s.bank.id }).count("* as n").first())?.n)).toBe(0);
    expect(Number((await hub.db("card_events").where({ bank_partner_id: s.bank.id }).count("* as n").first())?.n)).toBe(0);
    // Not a PAN: long ids that fail Luhn, dates, amounts.
    const ok = await s.post("/v1/bank/payment-cards", { member_id: s.member.id, card_token: "tok_4111111111111112", bin: "411111", last_four: "1111", expiry_month: "2029-04" });
    expect(ok.status).toBe(201);
  });

  it("is for banks only: a merchant's token with the scope gets 403 not-a-bank", async () => {
    const s = await bankScenario(hub);
    const tok = await partnerToken(hub, s.merchant.id, ["card-transactions:write"]);
    const res = await s.post("/v1/bank/payment-cards", { member_id: s.member.id, card_token: s.cardToken, bin: "411111", last_four: "1111", expiry_month: "2029-04" }, tok);
    expect(res.status).toBe(403);
    expect((await json(res)).code).toBe("not-a-bank");
  });

  it("does not link a member the bank does not know (404)", async () => {
    const s = await bankScenario(hub);
    const other = await bankScenario(hub);
    const res = await s.post("/v1/bank/payment-cards", { member_id: other.member.id, card_token: s.cardToken, bin: "411111", last_four: "1111", expiry_month: "2029-04" });
    expect(res.status).toBe(404);
    expect((await s.get(`/v1/bank/members/${other.member.id}/payment-cards`)).status).toBe(404);
  });
});

describe("link → auth → clearing → cashback pending → available → payout", () => {
  it("walks the whole path, exact to the cent", async () => {
    clock.set("2026-11-02T12:00:00.000Z");
    const s = await linked({ cashbackFundingBps: 8000 });
    const offer = await s.post("/v1/card-offers", { name: "5% at the pump", reward_type: "cashback", cashback_bps: 500, currency: "EUR", starts_at: "2026-11-01T00:00:00Z", return_period_days: 30 }, s.merchantToken);
    expect(offer.status).toBe(201);
    const offerId = (await json(offer)).id;

    // Auth of 100.00: 5.00 pending, not booked.
    let r = await s.post("/v1/bank/card-events", cardEvent(s, { id: "a1", type: "auth", purchase: "P1", amount: 10_000 }));
    expect(await json(r)).toMatchObject({ received: 1, accepted: 1, duplicates: 0, rejected: [] });
    let p = await json(await s.get("/v1/bank/card-purchases/P1"));
    expect(p).toMatchObject({ status: "authorized", authorized_minor: 10_000, offer_id: offerId, match: { partner_id: s.merchant.id, method: "mid" }, reward: { type: "cashback", pending_cashback_minor: 500, cashback_minor: 0 } });
    expect(await balanceOf(moneyAccounts.cashback(s.member.id, "EUR"))).toBe(0n);
    expect(Number((await hub.db("events").where({ type: "card_transaction.qualified", partner_id: s.bank.id }).count("* as n").first())?.n)).toBe(1);

    // Clearing of 98.45 (the amount drifted): floor(9845 × 500 / 10000) = 492, booked.
    r = await s.post("/v1/bank/card-events", cardEvent(s, { id: "c1", type: "clearing", purchase: "P1", amount: 9_845 }));
    expect((await json(r)).accepted).toBe(1);
    p = await json(await s.get("/v1/bank/card-purchases/P1"));
    expect(p).toMatchObject({ status: "cleared", cleared_minor: 9_845, reward: { pending_cashback_minor: 0, cashback_minor: 492, cashback_available_at: "2026-12-02T10:00:00.000Z" } });
    expect(await balanceOf(moneyAccounts.cashback(s.member.id, "EUR"))).toBe(492n);
    let acc = await json(await s.get(`/v1/bank/members/${s.member.id}/money-accounts?currency=EUR`));
    expect(acc.cashback).toMatchObject({ balance_minor: 492, pending_minor: 492, available_minor: 0, paid_out_minor: 0 });
    // The merchant funds 80% (floor), the operator the rest.
    const entry = await hub.db("ledger_entries").where({ ref_type: "card_purchase", member_id: s.member.id }).first("id");
    const postings = await hub.db("ledger_postings").where({ entry_id: entry.id }).orderBy("amount").select("account_id", "amount");
    expect(postings.map((x: { amount: bigint }) => Number(x.amount))).toEqual([-393, -99, 492]);

    // Within the return period nothing is paid.
    clock.set("2026-12-01T12:00:00.000Z");
    expect(await s.banking.cashback.releaseAndPay("2026-12-01")).toEqual({ released: 0, payouts: 0 });

    // Past it: available, and above the threshold (4.00 here) a payout is instructed, once.
    clock.set("2026-12-03T03:00:00.000Z");
    expect(await s.banking.cashback.releaseAndPay("2026-12-03")).toEqual({ released: 1, payouts: 1 });
    expect(await s.banking.cashback.releaseAndPay("2026-12-03")).toEqual({ released: 0, payouts: 0 });
    expect(await balanceOf(moneyAccounts.cashback(s.member.id, "EUR"))).toBe(0n);
    expect(await balanceOf(moneyAccounts.payable(s.bank.id, "EUR"))).toBe(0n); // unmaintained: read postings
    const payable = await hub.db("ledger_postings").where({ account_id: moneyAccounts.payable(s.bank.id, "EUR") }).sum("amount as s").first();
    expect(Number(payable?.s)).toBe(492);
    acc = await json(await s.get(`/v1/bank/members/${s.member.id}/money-accounts?currency=EUR`));
    expect(acc.cashback).toMatchObject({ balance_minor: 0, pending_minor: 0, available_minor: 0, paid_out_minor: 492 });

    const file = await s.get("/v1/bank/payout-instructions?day=2026-12-03&format=csv");
    expect(file.headers.get("content-type")).toContain("text/csv");
    const lines = (await file.text()).trim().split("\n");
    expect(lines[0]).toBe("payout_id,member_id,currency,amount_minor,business_day");
    expect(lines[1]).toMatch(new RegExp(`^pay_\\w+,${s.member.id},EUR,492,2026-12-03$`));
    const listed = await json(await s.get("/v1/bank/payout-instructions?day=2026-12-03"));
    expect(listed.items).toHaveLength(1);
    const evts = await hub.db("events").where({ partner_id: s.bank.id }).whereIn("type", ["cashback.available", "payout.instructed"]).orderBy("id").select("type", "data");
    expect(evts.map((e: { type: string }) => e.type)).toEqual(["cashback.available", "payout.instructed"]);
    expect(JSON.stringify(evts)).not.toContain(s.cardToken);

    // A refund after the payout claws back in proportion: the member's cashback goes below zero
    // and the next payout nets it.
    clock.set("2026-12-04T12:00:00.000Z");
    await s.post("/v1/bank/card-events", cardEvent(s, { id: "f1", type: "refund", purchase: "P1", amount: 4_000 }));
    p = await json(await s.get("/v1/bank/card-purchases/P1"));
    // floor(492 × 5845 / 9845) = 292
    expect(p.reward.cashback_minor).toBe(292);
    expect(await balanceOf(moneyAccounts.cashback(s.member.id, "EUR"))).toBe(-200n);
  });

  it("reversal cancels the pending reward; an auth that never clears expires", async () => {
    clock.set("2026-11-02T12:00:00.000Z");
    const s = await linked();
    await s.post("/v1/bank/card-events", [cardEvent(s, { id: "a1", type: "auth", purchase: "R1", amount: 5_000 }), cardEvent(s, { id: "a2", type: "auth", purchase: "X1", amount: 7_000 })]);
    expect((await json(await s.get("/v1/bank/card-purchases/R1"))).reward.pending_points).toBe(5);
    await s.post("/v1/bank/card-events", cardEvent(s, { id: "v1", type: "reversal", purchase: "R1", amount: 5_000 }));
    expect(await json(await s.get("/v1/bank/card-purchases/R1"))).toMatchObject({ status: "reversed", reward: { pending_points: 0, points: 0 } });
    clock.set(new Date(new Date("2026-11-02T10:00:00.000Z").getTime() + 7 * DAY + 1000));
    expect(await s.banking.transactions.expireAuths()).toBeGreaterThanOrEqual(1);
    expect(await json(await s.get("/v1/bank/card-purchases/X1"))).toMatchObject({ status: "expired", authorized_minor: 0, reward: { pending_points: 0, points: 0 } });
    // A late clearing still clears it: the purchase happened.
    await s.post("/v1/bank/card-events", cardEvent(s, { id: "c9", type: "clearing", purchase: "X1", amount: 7_000 }));
    expect(await json(await s.get("/v1/bank/card-purchases/X1"))).toMatchObject({ status: "cleared", reward: { points: 7 } });
  });

  it("earns the contract's points without an offer, and a full refund takes them back", async () => {
    clock.set("2026-11-02T12:00:00.000Z");
    const s = await linked();
    await s.post("/v1/bank/card-events", cardEvent(s, { id: "c1", type: "clearing", purchase: "Q1", amount: 55_990 }));
    expect((await json(await s.get("/v1/bank/card-purchases/Q1"))).reward).toMatchObject({ type: "points", points: 55 });
    expect((await createLedger({ db: hub.db }).balances(hub.db, s.member.id)).points).toBe(55n);
    await s.post("/v1/bank/card-events", cardEvent(s, { id: "f1", type: "refund", purchase: "Q1", amount: 55_990 }));
    expect(await json(await s.get("/v1/bank/card-purchases/Q1"))).toMatchObject({ status: "refunded", reward: { points: 0 } });
    expect((await createLedger({ db: hub.db }).balances(hub.db, s.member.id)).points).toBe(0n);
  });

  it("takes a retried batch once: duplicates by event id change nothing", async () => {
    clock.set("2026-11-02T12:00:00.000Z");
    const s = await linked();
    const batch = [cardEvent(s, { id: "a1", type: "auth", purchase: "D1", amount: 20_000 }), cardEvent(s, { id: "c1", type: "clearing", purchase: "D1", amount: 20_000 })];
    expect(await json(await s.post("/v1/bank/card-events", batch))).toMatchObject({ accepted: 2, duplicates: 0 });
    expect(await json(await s.post("/v1/bank/card-events", [...batch, ...batch]))).toMatchObject({ accepted: 0, duplicates: 4 });
    expect((await json(await s.get("/v1/bank/card-purchases/D1"))).reward.points).toBe(20);
    expect((await createLedger({ db: hub.db }).balances(hub.db, s.member.id)).points).toBe(20n);
  });
});

describe("bulk formats", () => {
  it("takes NDJSON and the CSV clearing file, reports bad lines by number, and a resent file is all duplicates", async () => {
    clock.set("2026-11-02T12:00:00.000Z");
    const s = await linked();
    const nd = [
      JSON.stringify(cardEvent(s, { id: "n1", type: "auth", purchase: "N1", amount: 1_000 })),
      "{not json",
      JSON.stringify({ ...cardEvent(s, { id: "n2", type: "auth", purchase: "N2", amount: 1_000 }), currency: "eur" }),
      JSON.stringify(cardEvent(s, { id: "n3", type: "auth", purchase: "N3", amount: 2_000 })),
    ].join("\n");
    const r1 = await json(await s.post("/v1/bank/card-events", nd, undefined, "application/x-ndjson"));
    expect(r1).toMatchObject({ received: 4, accepted: 2, duplicates: 0 });
    expect(r1.rejected.map((x: { line: number }) => x.line)).toEqual([2, 3]);

    const csv = [
      "event_id,purchase_id,card_token,amount_minor,currency,mid,mcc,merchant_name,transaction_at",
      `k1,N1,${s.cardToken},1000,EUR,${s.mid},5541,"ACME FUEL, RIGA",2026-11-02T10:00:00Z`,
      `k3,N3,${s.cardToken},2500,EUR,${s.mid},5541,ACME,2026-11-02T10:00:00Z`,
      `k4,N4,${s.cardToken},abc,EUR,${s.mid},5541,ACME,2026-11-02T10:00:00Z`,
    ].join("\n");
    const r2 = await json(await s.post("/v1/bank/clearing-files", csv, undefined, "text/csv"));
    expect(r2).toMatchObject({ received: 3, accepted: 2, duplicates: 0, rejected: [{ line: 4 }] });
    expect(await json(await s.get("/v1/bank/card-purchases/N3"))).toMatchObject({ status: "cleared", cleared_minor: 2_500, reward: { points: 2 } });
    const r3 = await json(await s.post("/v1/bank/clearing-files", csv, undefined, "text/csv"));
    expect(r3).toMatchObject({ accepted: 0, duplicates: 2 });
    const bad = await s.post("/v1/bank/clearing-files", "id,amount\n1,2\n", undefined, "text/csv");
    expect(bad.status).toBe(422);
    expect((await json(bad)).code).toBe("file-invalid");
  });
});

describe("matching", () => {
  it("matches by MCC and normalised name when the MID is unknown, keeps the rest for review, and re-matches", async () => {
    clock.set("2026-11-02T12:00:00.000Z");
    const s = await linked({ merchantName: "Zelta Degviela SIA" });
    await s.post("/v1/bank/card-events", [
      cardEvent(s, { id: "m1", type: "clearing", purchase: "M1", amount: 10_000, mid: "UNKNOWN-1", mcc: "5541", name: "ZELTA DEGVIELA 042" }),
      cardEvent(s, { id: "m2", type: "clearing", purchase: "M2", amount: 10_000, mid: "UNKNOWN-2", mcc: "5812", name: "Some Cafe" }),
    ]);
    expect((await json(await s.get("/v1/bank/card-purchases/M1"))).match).toMatchObject({ partner_id: s.merchant.id, method: "mcc_name" });
    const m2 = await json(await s.get("/v1/bank/card-purchases/M2"));
    expect(m2.match).toBeNull();
    const admin = await adminToken(hub);
    const review = await json(await hub.fetch("/admin/v1/card-purchases/unmatched?limit=100", { headers: bearer(admin) }));
    expect(review.items.map((x: { id: string }) => x.id)).toContain(m2.id);
    // The operator adds the café's MID to the merchant's locations, then re-matches.
    await hub.db("partner_locations").insert({ id: `loc_${Date.now()}`, partner_id: s.merchant.id, name: "Cafe", mid: "UNKNOWN-2", mcc: "5812" });
    const rm = await hub.fetch(`/admin/v1/card-purchases/${m2.id}/rematch`, { method: "POST", headers: { ...bearer(admin), "content-type": "application/json" }, body: "{}" });
    expect(rm.status).toBe(200);
    expect(await json(rm)).toMatchObject({ match: { partner_id: s.merchant.id, method: "mid" }, reward: { points: 10 } });
  });
});

describe("offers", () => {
  it("applies minimum spend, per-purchase cap, weekdays and activation", async () => {
    clock.set("2026-11-02T12:00:00.000Z");
    const s = await linked();
    const mk = async (body: Record<string, unknown>) => json(await s.post("/v1/card-offers", { currency: "EUR", starts_at: "2026-11-01T00:00:00Z", ...body }, s.merchantToken));
    await mk({ name: "10% over 50, at most 3.00", reward_type: "cashback", cashback_bps: 1000, min_spend_minor: 5_000, max_reward_per_purchase: 300 });
    const tue = await mk({ name: "20% on Tuesdays, opt-in", reward_type: "cashback", cashback_bps: 2000, days_of_week: [2], requires_activation: true });
    // Monday: under the minimum → base points; over it → capped cashback.
    await s.post("/v1/bank/card-events", [
      cardEvent(s, { id: "o1", type: "clearing", purchase: "O1", amount: 4_999, at: "2026-11-02T10:00:00Z" }),
      cardEvent(s, { id: "o2", type: "clearing", purchase: "O2", amount: 8_000, at: "2026-11-02T10:00:00Z" }),
    ]);
    expect((await json(await s.get("/v1/bank/card-purchases/O1"))).reward).toMatchObject({ type: "points", points: 4 });
    expect((await json(await s.get("/v1/bank/card-purchases/O2"))).reward).toMatchObject({ type: "cashback", cashback_minor: 300 });
    // Tuesday without activation: the 10% offer; after activation: 20%.
    await s.post("/v1/bank/card-events", cardEvent(s, { id: "o3", type: "clearing", purchase: "O3", amount: 2_000, at: "2026-11-03T10:00:00Z" }));
    expect((await json(await s.get("/v1/bank/card-purchases/O3"))).reward).toMatchObject({ type: "points", points: 2 });
    const act = await s.post(`/v1/bank/offers/${tue.id}/activations`, { member_id: s.member.id });
    expect(act.status).toBe(201);
    clock.set("2026-11-03T12:00:00.000Z");
    await s.post("/v1/bank/card-events", cardEvent(s, { id: "o4", type: "clearing", purchase: "O4", amount: 2_000, at: "2026-11-03T13:00:00Z" }));
    expect((await json(await s.get("/v1/bank/card-purchases/O4"))).reward).toMatchObject({ type: "cashback", cashback_minor: 400 });
    const listed = await json(await s.get("/v1/bank/offers"));
    expect(listed.items.map((o: { id: string }) => o.id)).toContain(tue.id);
  });
});

describe("round-up", () => {
  it("rounds cleared purchases up with the multiplier, fills the weekly cap in purchase order, adds the partner's match, sweeps daily and books what the bank confirms", async () => {
    clock.set("2026-11-02T12:00:00.000Z");
    const s = await linked({ roundupMatchBps: 5000 });
    const put = await s.put(`/v1/bank/members/${s.member.id}/roundup-settings`, { enabled: true, round_to_units: 1, multiplier: 2, weekly_cap_minor: 150 });
    expect(await json(put)).toEqual({ enabled: true, round_to_units: 1, multiplier: 2, weekly_cap_minor: 150 });
    // Sent out of order: the Wednesday purchase first, then the Monday one.
    await s.post("/v1/bank/card-events", cardEvent(s, { id: "w", type: "clearing", purchase: "W", amount: 550, at: "2026-11-04T09:00:00Z" }));
    await s.post("/v1/bank/card-events", cardEvent(s, { id: "m", type: "clearing", purchase: "M", amount: 1_230, at: "2026-11-02T09:00:00Z" }));
    // Monday: 12.30 → (100 − 30) × 2 = 140 (cap room 150); Wednesday: 5.50 → 100, 10 left of the cap.
    const items = await hub.db("roundup_items").where({ member_id: s.member.id }).orderBy("transaction_at").select("raw_minor", "allocated_minor", "match_minor");
    expect(items.map((i: Record<string, bigint>) => [i.raw_minor, i.allocated_minor, i.match_minor].map(Number))).toEqual([
      [140, 140, 70],
      [100, 10, 5],
    ]);
    // A purchase without a round-up (a whole amount) and one in the next week.
    await s.post("/v1/bank/card-events", cardEvent(s, { id: "n", type: "clearing", purchase: "NW", amount: 1_001, at: "2026-11-09T09:00:00Z" }));

    clock.set("2026-11-10T03:00:00.000Z");
    expect(await s.banking.roundup.instructSweeps("2026-11-10")).toBe(1);
    expect(await s.banking.roundup.instructSweeps("2026-11-10")).toBe(0);
    const sweeps = await json(await s.get("/v1/bank/roundup-sweeps?day=2026-11-10"));
    // 140 + 10 + min((100 − 1) × 2, 150) = 300 round-up (next week's cap is its own); matches 70 + 5 + 75 = 150.
    expect(sweeps.items).toEqual([expect.objectContaining({ roundup_minor: 300, match_minor: 150, status: "instructed" })]);
    const csv = await (await s.get("/v1/bank/roundup-sweeps?day=2026-11-10&format=csv")).text();
    expect(csv.split("\n")[1]).toContain(",300,150,2026-11-10,instructed");
    expect((await json(await s.get(`/v1/bank/members/${s.member.id}/money-accounts?currency=EUR`))).roundup).toMatchObject({ enabled: true, saved_minor: 0, instructed_minor: 450 });

    // The bank could move 240 of 300: matches follow in proportion, floor(150 × 240 / 300) = 120.
    const sweepId = sweeps.items[0].id;
    const too = await s.post(`/v1/bank/roundup-sweeps/${sweepId}/confirmation`, { roundup_minor: 301 });
    expect(too.status).toBe(422);
    const conf = await s.post(`/v1/bank/roundup-sweeps/${sweepId}/confirmation`, { roundup_minor: 240 });
    expect(await json(conf)).toMatchObject({ status: "confirmed", confirmed_roundup_minor: 240, confirmed_match_minor: 120 });
    expect((await s.post(`/v1/bank/roundup-sweeps/${sweepId}/confirmation`, { roundup_minor: 240 })).status).toBe(409);
    expect(await balanceOf(moneyAccounts.roundup(s.member.id, "EUR"))).toBe(360n);
    // The match is owed to the bank by the hub and to the hub by the merchant.
    const sumOf = async (id: string) => Number((await hub.db("ledger_postings").where({ account_id: id }).sum("amount as s").first())?.s);
    expect(await sumOf(moneyAccounts.receivable(s.merchant.id, "EUR"))).toBe(-120);
    expect(await sumOf(moneyAccounts.payable(s.bank.id, "EUR"))).toBe(120);
    expect(await sumOf(moneyAccounts.heldAtBank(s.bank.id, "EUR"))).toBe(-360);
    const acc = await json(await s.get(`/v1/bank/members/${s.member.id}/money-accounts?currency=EUR`));
    expect(acc.roundup).toMatchObject({ saved_minor: 360, to_sweep_minor: 0, instructed_minor: 0 });
    expect(Number((await hub.db("events").where({ type: "roundup.sweep_instructed", partner_id: s.bank.id }).count("* as n").first())?.n)).toBe(1);
  });
});

// After the round-up test: its daily sweep would take this test's round-ups too.
describe("the batch path", () => {
  it("ends where the one-by-one path ends: purchases, points, cashback, round-ups and events alike", async () => {
    clock.set("2026-11-06T12:00:00.000Z");
    const setup = async () => {
      const s = await linked({ roundupMatchBps: 5000, cashbackFundingBps: 8000 });
      const offer = await s.post(
        "/v1/card-offers",
        { name: "5% from 50.00", reward_type: "cashback", cashback_bps: 500, currency: "EUR", min_spend_minor: 5_000, max_reward_per_purchase: 600, starts_at: "2026-11-01T00:00:00Z", return_period_days: 30 },
        s.merchantToken,
      );
      expect(offer.status).toBe(201);
      await s.put(`/v1/bank/members/${s.member.id}/roundup-settings`, { enabled: true, round_to_units: 1, multiplier: 1, weekly_cap_minor: 150 });
      return s;
    };
    const one = await setup();
    const batch = await setup();
    type E = Parameters<typeof cardEvent>[1];
    const first: E[] = [
      { id: "a1", type: "auth", purchase: "P1", amount: 10_000, at: "2026-11-02T09:00:00Z" },
      { id: "c1", type: "clearing", purchase: "P1", amount: 9_845, at: "2026-11-02T09:00:00Z" },
      { id: "a2", type: "auth", purchase: "P2", amount: 5_000 },
      { id: "r2", type: "reversal", purchase: "P2", amount: 5_000 },
      { id: "c4", type: "clearing", purchase: "P4", amount: 550, at: "2026-11-04T09:00:00Z" },
      { id: "c3", type: "clearing", purchase: "P3", amount: 1_230, at: "2026-11-03T09:00:00Z" },
      { id: "c3", type: "clearing", purchase: "P3", amount: 1_230, at: "2026-11-03T09:00:00Z" },
      { id: "c5", type: "clearing", purchase: "P5", amount: 200_000, at: "2026-11-05T09:00:00Z" },
      { id: "f5", type: "refund", purchase: "P5", amount: 50_000, at: "2026-11-05T09:00:00Z" },
      { id: "c7", type: "clearing", purchase: "P7", amount: 4_000, at: "2026-11-05T10:00:00Z" },
      { id: "x8", type: "clearing", purchase: "P8", amount: 700, currency: "USD" },
      { id: "y8", type: "refund", purchase: "P8", amount: 700, currency: "EUR" },
    ];
    const second: E[] = [
      { id: "f1", type: "refund", purchase: "P1", amount: 3_000, at: "2026-11-02T09:00:00Z" },
      { id: "f7", type: "refund", purchase: "P7", amount: 4_000, at: "2026-11-05T10:00:00Z" },
      { id: "a6", type: "auth", purchase: "P6", amount: 8_000 },
      { id: "c1", type: "clearing", purchase: "P1", amount: 9_845, at: "2026-11-02T09:00:00Z" },
    ];
    for (const e of [...first, ...second]) await one.post("/v1/bank/card-events", cardEvent(one, e));
    const r1 = await json(await batch.post("/v1/bank/card-events", first.map((e) => cardEvent(batch, e))));
    expect(r1).toMatchObject({ received: 12, accepted: 10, duplicates: 1, rejected: [{ index: 11, event_id: "y8" }] });
    const nd = `${second.map((e) => JSON.stringify(cardEvent(batch, e))).join("\n")}\n`;
    expect(await json(await batch.post("/v1/bank/card-events", nd, undefined, "application/x-ndjson"))).toMatchObject({ accepted: 3, duplicates: 1 });

    const state = async (s: Awaited<ReturnType<typeof setup>>) => ({
      purchases: (await hub.db("card_purchases").where({ bank_partner_id: s.bank.id }).orderBy("purchase_ref").select("*")).map((p: Record<string, unknown>) => ({
        ref: p.purchase_ref,
        status: p.status,
        amounts: [p.authorized_minor, p.cleared_minor, p.refunded_minor].map(Number),
        reward: [p.pending_cashback_minor, p.pending_points, p.booked_cashback_minor, p.booked_points].map(Number),
        matched: p.match_method,
      })),
      points: await createLedger({ db: hub.db }).balances(hub.db, s.member.id),
      cashback: await balanceOf(moneyAccounts.cashback(s.member.id, "EUR")),
      roundups: (await hub.db("roundup_items").where({ member_id: s.member.id }).orderBy("transaction_at").select("raw_minor", "allocated_minor", "match_minor")).map((i: Record<string, bigint>) =>
        [i.raw_minor, i.allocated_minor, i.match_minor].map(Number),
      ),
    });
    const a = await state(one);
    expect(await state(batch)).toEqual(a);
    // What differs is news of a state the batch never passed through: one by one, P2's auth was
    // announced (card_transaction.qualified) before its reversal came; in one batch it never qualified.
    const qualified = async (s: Awaited<ReturnType<typeof setup>>) =>
      (await hub.db("events").where({ type: "card_transaction.qualified", partner_id: s.bank.id }).select("data")).map((e: { data: { purchase_id: string } }) => e.data.purchase_id).sort();
    expect(await qualified(one)).toEqual(["P1", "P2", "P3", "P5", "P6", "P7"]);
    expect(await qualified(batch)).toEqual(["P1", "P3", "P5", "P6", "P7"]);
    // …and that place is the right one: P1 refunded 3,000 of 9,845 → floor(492 × 6,845 / 9,845) = 342;
    // P5 capped at 6.00, a quarter refunded → 450; P7's 4 points given and taken back.
    expect(a.cashback).toBe(342n + 450n);
    expect(a.points).toMatchObject({ points: 1n, debt: 0n });
    // Round-ups in purchase order under the weekly cap of 1.50: 0.55, P8's whole 7.00 USD, 0.70, then
    // 0.25 of P4's 0.50; the partner matches half (floor).
    expect(a.roundups).toEqual([
      [55, 55, 27],
      [0, 0, 0],
      [70, 70, 35],
      [50, 25, 12],
      [0, 0, 0],
      [0, 0, 0],
    ]);
  });
});

describe.runIf(process.env.DATABASE_URL)("the batch path under concurrent writers", () => {
  it("a chunk that loses the race to create a purchase fails as a serialization failure, and its retry converges", async () => {
    clock.set("2026-11-06T12:00:00.000Z");
    const s = await linked();
    const auth = cardEvent(s, { id: "race-a", type: "auth", purchase: "R1", amount: 2_000 });
    const clearing = cardEvent(s, { id: "race-c", type: "clearing", purchase: "R1", amount: 2_000 });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let written = false;
    // The first transaction creates R1 and holds its commit.
    const first = hub.db.transaction(async (trx) => {
      await s.banking.transactions.ingestBatch(trx, s.bank.id, [auth]);
      written = true;
      await held;
    });
    while (!written) await new Promise((r) => setTimeout(r, 5));
    // The second does not see R1, creates it too and waits on the first's unique key.
    const second = hub.db.transaction((trx) => s.banking.transactions.ingestBatch(trx, s.bank.id, [clearing])).then(
      () => null,
      (err: unknown) => err,
    );
    for (let i = 0; i < 400; i++) {
      const waiting = await hub.db.raw("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
      if (waiting.rows[0].n > 0) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    release();
    await first;
    expect(await second).toMatchObject({ code: "40001" });
    expect(isRetryableDbError(await second)).toBe(true);
    // Nothing of the losing chunk stayed; its retry finds R1 and converges.
    expect(await hub.db("card_events").where({ bank_partner_id: s.bank.id, event_id: "race-c" }).first()).toBeUndefined();
    expect(await hub.db.transaction((trx) => s.banking.transactions.ingestBatch(trx, s.bank.id, [clearing]))).toMatchObject({ accepted: 1, duplicates: 0 });
    expect(await hub.db("card_purchases").where({ bank_partner_id: s.bank.id, purchase_ref: "R1" }).first()).toMatchObject({ status: "cleared", cleared_minor: 2_000n, booked_points: 2n });
    expect((await createLedger({ db: hub.db }).balances(hub.db, s.member.id)).points).toBe(2n);
  });
});

describe("security", () => {
  it("every banking route refuses bad tokens and missing scopes", async () => {
    // The attacks forge tokens on the real clock.
    clock.set(new Date());
    const s = await bankScenario(hub);
    const routes = [
      { method: "POST", path: "/v1/bank/payment-cards", body: {} },
      { method: "GET", path: `/v1/bank/members/${s.member.id}/payment-cards` },
      { method: "POST", path: "/v1/bank/card-events", body: [] },
      { method: "GET", path: "/v1/bank/payout-instructions?day=2026-11-02" },
      { method: "POST", path: "/v1/bank/roundup-sweeps/swp_x/confirmation", body: { roundup_minor: 1 } },
    ];
    const { expectRouteSecurity } = await import("../../../test/security.ts");
    for (const r of routes) await expectRouteSecurity(hub, { ...r, scopes: ["card-transactions:write"], audience: "partner", partnerId: s.bank.id });
    await expectRouteSecurity(hub, { method: "POST", path: "/v1/card-offers", body: {}, scopes: ["earn:write"], audience: "partner", partnerId: s.merchant.id });
    await expectRouteSecurity(hub, { method: "GET", path: "/admin/v1/card-purchases/unmatched", scopes: ["admin"], audience: "admin" });
    // A bank reads only its own purchases and sweeps.
    const other = await bankScenario(hub);
    const p = await createPartner(hub.db, { kind: "bank" });
    expect(p.kind).toBe("bank");
    expect((await other.get("/v1/bank/card-purchases/P1")).status).toBe(404);
    expect((await other.post("/v1/bank/roundup-sweeps/swp_nope/confirmation", { roundup_minor: 1 })).status).toBe(404);
  });
});
