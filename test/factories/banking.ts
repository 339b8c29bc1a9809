import type { TestHub } from "../harness.ts";
import { newId } from "../../gateway/src/infra/ids.ts";
import { createMember, createPartner } from "./network.ts";
import { bearer, partnerToken } from "./auth.ts";
import { createLedger } from "../../gateway/src/ledger/ledger.service.ts";
import { createBanking } from "../../gateway/src/banking/banking.module.ts";

let seq = 0;

/**
 * A bank and a merchant (EUR contract: 1 point per 10.00; cashback funded `cashbackFundingBps` by
 * the merchant; round-ups matched `roundupMatchBps`), a merchant location with its MID, a member
 * the bank enrolled, tokens, and the banking services over the same database.
 */
export async function bankScenario(hub: TestHub, opts: { cashbackFundingBps?: number; roundupMatchBps?: number; mccs?: string[]; merchantName?: string } = {}) {
  const n = ++seq;
  const bank = await createPartner(hub.db, { kind: "bank", name: `Bank ${n}` });
  const merchant = await createPartner(hub.db, { kind: "merchant", name: opts.merchantName ?? `Acme Fuel ${n}x` });
  await hub.db("partners").where({ id: merchant.id }).update({ mccs: JSON.stringify(opts.mccs ?? ["5541"]) });
  const contract = {
    id: newId("ctr"),
    partner_id: merchant.id,
    version: 1,
    effective_from: new Date("2020-01-01T00:00:00Z"),
    currency: "EUR",
    issuance_price_micros: "10000",
    redemption_price_micros: "8000",
    earn_points: "1",
    earn_per_minor: "1000",
    refund_policy: "negative_balance",
    negative_floor: "-1000",
    cashback_funding_bps: opts.cashbackFundingBps ?? 10000,
    roundup_match_bps: opts.roundupMatchBps ?? 0,
  };
  await hub.db("contract_versions").insert(contract);
  const mid = `MID${n}${Math.random().toString(36).slice(2, 8)}`;
  await hub.db("partner_locations").insert({ id: newId("loc"), partner_id: merchant.id, name: "Riga 1", mid, mcc: "5541" });
  const member = await createMember(hub.db, bank.id);
  // Tokens live 10 minutes on the hub's clock: a test that moves the clock gets fresh ones.
  const issue = async () => ({ at: hub.clock.now().getTime(), bank: await partnerToken(hub, bank.id, ["card-transactions:write"]), merchant: await partnerToken(hub, merchant.id, ["earn:write"]) });
  let tokens = await issue();
  const fresh = async () => {
    if (Math.abs(hub.clock.now().getTime() - tokens.at) > 300_000) tokens = await issue();
    return tokens;
  };
  const BANK = "bank-token";
  const MERCHANT = "merchant-token";
  const bankToken = BANK;
  const merchantToken = MERCHANT;
  const real = async (tok: string) => (tok === BANK ? (await fresh()).bank : tok === MERCHANT ? (await fresh()).merchant : tok);
  const cardToken = `tok_${n}_${Math.random().toString(36).slice(2, 12)}`;
  let k = 0;
  const send = async (method: string, path: string, body?: unknown, tok = bankToken, contentType = "application/json") =>
    hub.fetch(path, {
      method,
      headers: { ...bearer(await real(tok)), "content-type": contentType, "idempotency-key": `k-${n}-${++k}-${Math.random()}` },
      ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
    });
  const banking = createBanking({ ...hub.deps, ledger: createLedger({ db: hub.db }) });
  return {
    bank,
    merchant,
    contract,
    mid,
    member,
    bankToken,
    merchantToken,
    cardToken,
    banking,
    post: (path: string, body?: unknown, tok?: string, contentType?: string) => send("POST", path, body, tok, contentType),
    put: (path: string, body: unknown, tok?: string) => send("PUT", path, body, tok),
    get: async (path: string, tok = bankToken) => hub.fetch(path, { headers: bearer(await real(tok)) }),
    del: (path: string, tok?: string) => send("DELETE", path, undefined, tok),
  };
}

/** A card event with defaults; `purchase` ties events of one purchase. */
export function cardEvent(s: { cardToken: string; mid: string }, e: { id: string; type: "auth" | "clearing" | "reversal" | "refund"; purchase: string; amount: number; at?: string; currency?: string; mid?: string | null; mcc?: string; name?: string }) {
  return {
    event_id: e.id,
    type: e.type,
    purchase_id: e.purchase,
    card_token: s.cardToken,
    amount_minor: e.amount,
    currency: e.currency ?? "EUR",
    mid: e.mid === undefined ? s.mid : e.mid,
    ...(e.mcc ? { mcc: e.mcc } : {}),
    ...(e.name ? { merchant_name: e.name } : {}),
    transaction_at: e.at ?? "2026-11-02T10:00:00.000Z",
  };
}
