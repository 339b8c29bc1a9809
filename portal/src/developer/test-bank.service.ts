import { newId } from "../../../gateway/src/infra/ids.ts";
import { AppError } from "../../../gateway/src/http/problem.ts";
import { linkMember } from "../../../gateway/src/members/member-access.ts";
import type { CardEventType } from "../../../gateway/src/banking/card-transactions.rules.ts";
import type { PortalContext } from "../context.ts";
import { sandboxMembers, SANDBOX_TERMS } from "./sandbox.service.ts";

/**
 * The sandbox's ready-made test bank feed: card transactions (auth, clearing, reversal, refund) for
 * the sandbox's test members, sent through the banking feature's real ingest path — the same
 * service `POST /v1/bank/card-events` calls — so a developer sees the pending and then final points
 * (or cashback, under a card-linked offer) their integration will see.
 *
 * It runs between two sandbox partners: a bank and a merchant, one of them the developer's own
 * sandbox partner and the other made for it (a merchant developer gets a test bank, a bank
 * developer a test shop). The bank links a payment card to each test member; the merchant gets a
 * location whose MID the feed's events carry. Everything is in the sandbox network: the partners
 * are made `sandbox`, the members are the sandbox's, matching never crosses networks, and every send
 * checks both partners are sandbox partners before it touches anything.
 */

export interface TestBankFeed {
  sandboxPartnerId: string;
  bankPartnerId: string;
  merchantPartnerId: string;
  mid: string;
  merchantName: string;
  cards: Array<{ member_id: string; name: string; payment_card_id: string; card_token: string; masked: string }>;
}

export class FeedNotSandbox extends Error {
  constructor() {
    super("The test bank feed runs between sandbox partners only.");
  }
}

const MCC = "5411";
const EXPIRY_MONTH = "2030-12";

/** The feed of a sandbox partner: null when none was set up; `pending` while one is being set up. */
export async function testBankFeed(ctx: PortalContext, sandboxPartnerId: string): Promise<TestBankFeed | "pending" | null> {
  const row: { bank_partner_id: string | null; merchant_partner_id: string | null; mid: string | null; merchant_name: string | null } | undefined = await ctx
    .db("portal_sandbox_feeds")
    .where({ sandbox_partner_id: sandboxPartnerId })
    .first();
  if (!row) return null;
  if (!row.bank_partner_id || !row.merchant_partner_id || !row.mid) return "pending";
  const [cards, members] = await Promise.all([
    ctx.db("portal_sandbox_payment_cards").where({ sandbox_partner_id: sandboxPartnerId }).select("member_id", "payment_card_id", "card_token", "masked"),
    sandboxMembers(ctx, sandboxPartnerId),
  ]);
  const names = new Map(members.map((m) => [m.member_id, m.name]));
  return {
    sandboxPartnerId,
    bankPartnerId: row.bank_partner_id,
    merchantPartnerId: row.merchant_partner_id,
    mid: row.mid,
    merchantName: row.merchant_name ?? "",
    cards: (cards as Array<{ member_id: string; payment_card_id: string; card_token: string; masked: string }>)
      .map((c) => ({ ...c, name: names.get(c.member_id) ?? c.member_id }))
      .sort((a, b) => a.name.localeCompare(b.name)),
  };
}

/**
 * Sets the feed up for a sandbox partner (at sign-up; from the page for a sandbox made before the
 * feed existed). The row is claimed first, so two set-ups never both run; a set-up that fails gives
 * its claim back so it can be tried again. Returns false when another set-up holds the claim.
 */
export async function setUpTestBankFeed(ctx: PortalContext, userId: string, sandboxPartnerId: string): Promise<boolean> {
  const { partners, banking } = ctx.services;
  if (!(await partners.isSandbox(sandboxPartnerId))) throw new FeedNotSandbox();
  const claimed = await ctx.db("portal_sandbox_feeds").insert({ sandbox_partner_id: sandboxPartnerId, created_at: ctx.clock.now() }).onConflict("sandbox_partner_id").ignore().returning("sandbox_partner_id");
  if (claimed.length === 0) return false;
  try {
    const sandbox = await partners.getPartner(sandboxPartnerId);
    const actor = { type: "partner" as const, id: userId };
    const base = String(sandbox.name).replace(/ \(sandbox\)$/, "");
    const make = async (kind: "merchant" | "bank", name: string) => {
      const p = await partners.createPartner(actor, { name, kind, sector: sandbox.sector as string, sandbox: true });
      const id = p.id as string;
      if (kind === "merchant") {
        await partners.createContractVersion(actor, id, { ...SANDBOX_TERMS, effective_from: new Date(ctx.clock.now().getTime() + 1_000).toISOString() });
      }
      await partners.changeStatus(actor, id, { status: "approved", reason: "sandbox" });
      await partners.changeStatus(actor, id, { status: "active", reason: "sandbox" });
      return { id, name };
    };
    const mine = { id: sandboxPartnerId, name: String(sandbox.name) };
    const bank = sandbox.kind === "bank" ? mine : await make("bank", `${base} test bank (sandbox)`);
    const merchant = sandbox.kind === "bank" ? await make("merchant", `${base} test shop (sandbox)`) : mine;
    // A MID of the sandbox merchant alone (MIDs are unique across both networks); letters first,
    // so it is never mistaken for a card number.
    const mid = `SBX${merchant.id.replace(/^ptn_/, "").toUpperCase()}`;
    // Kept when an earlier set-up that failed half-way added it already.
    const locations = (await partners.getPartner(merchant.id)).locations as Array<{ mid: string }>;
    if (!locations.some((l) => l.mid === mid)) await partners.addLocation(actor, merchant.id, { name: "Sandbox store", mid, mcc: MCC, city: "Sandbox" });

    const members = await sandboxMembers(ctx, sandboxPartnerId);
    let n = 0;
    for (const m of members) {
      n++;
      const token = `sbxtok_${m.member_id}`;
      const card = await ctx.db.transaction(async (trx) => {
        // The test bank sees the test members as a bank sees its customers who use it.
        await linkMember(trx, m.member_id, bank.id, "used");
        return banking.cards.link(trx, bank.id, { member_id: m.member_id, card_token: token, bin: "400000", last_four: String(n).padStart(4, "0"), expiry_month: EXPIRY_MONTH });
      });
      await ctx.db("portal_sandbox_payment_cards").insert({ sandbox_partner_id: sandboxPartnerId, member_id: m.member_id, payment_card_id: card.id, card_token: token, masked: card.masked });
    }
    await ctx.db("portal_sandbox_feeds").where({ sandbox_partner_id: sandboxPartnerId }).update({ bank_partner_id: bank.id, merchant_partner_id: merchant.id, mid, merchant_name: merchant.name });
    return true;
  } catch (err) {
    await ctx.db("portal_sandbox_payment_cards").where({ sandbox_partner_id: sandboxPartnerId }).delete();
    await ctx.db("portal_sandbox_feeds").where({ sandbox_partner_id: sandboxPartnerId }).delete();
    throw err;
  }
}

export interface FeedEventInput {
  type: CardEventType;
  amountMinor: number;
  /** A purchase the feed sent before; a new purchase otherwise (then `memberId` names the test card). */
  purchaseRef?: string;
  memberId?: string;
}

export type FeedSendResult = { outcome: "accepted" | "duplicate"; purchaseRef: string } | { outcome: "rejected"; purchaseRef: string; reason: string } | { outcome: "not-found" };

/**
 * Sends one card event from the test bank, on the one-by-one ingest path in one transaction (as a
 * single JSON event to `POST /v1/bank/card-events` does). Both partners are checked to be sandbox
 * partners first; the card must be one of the feed's test cards, the purchase one the feed sent.
 */
export async function sendFeedEvent(ctx: PortalContext, feed: TestBankFeed, input: FeedEventInput): Promise<FeedSendResult> {
  const { partners, banking } = ctx.services;
  if (!(await partners.isSandbox(feed.bankPartnerId)) || !(await partners.isSandbox(feed.merchantPartnerId))) throw new FeedNotSandbox();
  const now = ctx.clock.now();
  let purchase: { purchase_ref: string; card_token: string; transaction_at: Date | string; member_id?: string };
  if (input.purchaseRef) {
    const found = await ctx.db("portal_sandbox_feed_purchases").where({ sandbox_partner_id: feed.sandboxPartnerId, purchase_ref: input.purchaseRef }).first("purchase_ref", "card_token", "transaction_at");
    if (!found) return { outcome: "not-found" };
    purchase = found;
  } else {
    const card = feed.cards.find((c) => c.member_id === input.memberId);
    if (!card) return { outcome: "not-found" };
    purchase = { purchase_ref: `sbx-${newId("pur", now.getTime()).replace(/^pur_/, "")}`, card_token: card.card_token, transaction_at: now, member_id: card.member_id };
  }
  const event = {
    event_id: `sbx-${newId("evt", now.getTime()).replace(/^evt_/, "")}`,
    type: input.type,
    purchase_id: purchase.purchase_ref,
    card_token: purchase.card_token,
    amount_minor: input.amountMinor,
    currency: SANDBOX_TERMS.currency,
    mid: feed.mid,
    mcc: MCC,
    merchant_name: feed.merchantName,
    // The purchase's time, the same on all its events (as a card network sends it).
    transaction_at: new Date(purchase.transaction_at).toISOString(),
  };
  // A new purchase is noted for the page in the same transaction as its first event.
  const r = await ctx.db.transaction(async (trx) => {
    if (purchase.member_id) {
      await trx("portal_sandbox_feed_purchases").insert({ sandbox_partner_id: feed.sandboxPartnerId, purchase_ref: purchase.purchase_ref, member_id: purchase.member_id, card_token: purchase.card_token, transaction_at: now });
    }
    return banking.transactions.ingest(trx, feed.bankPartnerId, [event]);
  });
  if (r.rejected.length) return { outcome: "rejected", purchaseRef: purchase.purchase_ref, reason: r.rejected[0]!.reason };
  return { outcome: r.duplicates ? "duplicate" : "accepted", purchaseRef: purchase.purchase_ref };
}

/** The feed's latest purchases, newest first, each as the banking feature shows it to the bank. */
export async function feedPurchases(ctx: PortalContext, feed: TestBankFeed, limit = 10) {
  const refs: Array<{ purchase_ref: string; member_id: string }> = await ctx.db("portal_sandbox_feed_purchases").where({ sandbox_partner_id: feed.sandboxPartnerId }).orderBy("id", "desc").limit(limit).select("purchase_ref", "member_id");
  const out = [];
  for (const r of refs) {
    // A purchase whose first event was refused was never stored by the bank's side: skip it.
    const p = await ctx.services.banking.transactions.getPurchase(feed.bankPartnerId, r.purchase_ref).catch((err: unknown) => {
      if (err instanceof AppError && err.status === 404) return null;
      throw err;
    });
    if (p) out.push(p);
  }
  return out;
}
