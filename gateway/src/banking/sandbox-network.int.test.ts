import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixedClock, startTestHub, type TestHub } from "../../../test/harness.ts";
import { bankScenario, cardEvent } from "../../../test/factories/banking.ts";
import { createMember, createPartner } from "../../../test/factories/network.ts";
import { newId } from "../infra/ids.ts";

/*
 * Card purchases stay in their bank's network: a sandbox bank's purchase (the portal's test bank
 * feed, or a developer whose sandbox partner is a bank) never matches a live merchant — not by MID,
 * not by MCC and name, not by the operator's manual assignment — and a live bank's never matches a
 * sandbox merchant. Otherwise test traffic would earn points funded by a live partner.
 */
const clock = fixedClock("2026-11-02T12:00:00.000Z");
let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub({ clock, workers: false });
});
afterAll(async () => hub?.close());

async function sandboxSide(live: Awaited<ReturnType<typeof bankScenario>>) {
  const bank = await createPartner(hub.db, { kind: "bank", name: "Test bank (sandbox)", sandbox: true });
  const merchant = await createPartner(hub.db, { kind: "merchant", name: "Test shop (sandbox)", sandbox: true });
  await hub.db("contract_versions").insert({ ...live.contract, id: newId("ctr"), partner_id: merchant.id });
  const mid = `SBXMID${Math.random().toString(36).slice(2, 8)}`;
  await hub.db("partner_locations").insert({ id: newId("loc"), partner_id: merchant.id, name: "Sandbox store", mid, mcc: "5541" });
  const member = await createMember(hub.db, bank.id, { sandbox: true });
  const cardToken = `tok_sbx_${Math.random().toString(36).slice(2, 10)}`;
  await hub.db.transaction((trx) => live.banking.cards.link(trx, bank.id, { member_id: member.id, card_token: cardToken, bin: "400000", last_four: "0002", expiry_month: "2030-12" }));
  return { bank, merchant, mid, member, cardToken };
}

describe("card purchases stay in their bank's network", () => {
  it("a sandbox bank's purchase at a live merchant's MID, or its MCC and name, matches nothing and earns nothing", async () => {
    const live = await bankScenario(hub, { mccs: ["5541"], merchantName: "Zelta Degviela" });
    const sbx = await sandboxSide(live);
    const send = (e: ReturnType<typeof cardEvent>) => hub.db.transaction((trx) => live.banking.transactions.ingest(trx, sbx.bank.id, [e]));
    const s = { cardToken: sbx.cardToken, mid: live.mid };
    expect((await send(cardEvent(s, { id: "e1", type: "clearing", purchase: "p-mid", amount: 50_000 }))).accepted).toBe(1);
    expect((await send(cardEvent(s, { id: "e2", type: "clearing", purchase: "p-name", amount: 50_000, mid: null, mcc: "5541", name: "ZELTA DEGVIELA 042" }))).accepted).toBe(1);
    for (const ref of ["p-mid", "p-name"]) {
      const p = await live.banking.transactions.getPurchase(sbx.bank.id, ref);
      expect(p, ref).toMatchObject({ status: "cleared", match: null, reward: { points: 0, pending_points: 0 } });
    }
    expect(await hub.db("ledger_entries").where({ partner_id: live.merchant.id }).first()).toBeUndefined();
    // The operator cannot assign it to the live merchant by hand either.
    const p = await hub.db("card_purchases").where({ bank_partner_id: sbx.bank.id, purchase_ref: "p-mid" }).first("id");
    await expect(live.banking.transactions.rematch(p.id, live.merchant.id)).rejects.toMatchObject({ status: 404 });

    // At its own network's merchant, the same bank's purchase earns.
    expect((await send(cardEvent({ cardToken: sbx.cardToken, mid: sbx.mid }, { id: "e3", type: "clearing", purchase: "p-sbx", amount: 50_000 }))).accepted).toBe(1);
    expect(await live.banking.transactions.getPurchase(sbx.bank.id, "p-sbx")).toMatchObject({ match: { partner_id: sbx.merchant.id, method: "mid" }, reward: { points: 50 } });
  });

  it("a live bank's purchase at a sandbox merchant's MID matches nothing", async () => {
    const live = await bankScenario(hub);
    const sbx = await sandboxSide(live);
    expect((await live.post("/v1/bank/payment-cards", { member_id: live.member.id, card_token: live.cardToken, bin: "411111", last_four: "1111", expiry_month: "2029-04" })).status).toBe(201);
    const res = await live.post("/v1/bank/card-events", cardEvent({ cardToken: live.cardToken, mid: sbx.mid }, { id: "l1", type: "clearing", purchase: "p-live", amount: 50_000 }));
    expect(res.status).toBe(200);
    expect(await live.banking.transactions.getPurchase(live.bank.id, "p-live")).toMatchObject({ status: "cleared", match: null, reward: { points: 0 } });
    expect(await hub.db("ledger_entries").where({ partner_id: sbx.merchant.id }).first()).toBeUndefined();
  });
});
