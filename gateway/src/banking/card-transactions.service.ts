import { isRetryableDbError, type Db, type Trx } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";
import type { Logger } from "../infra/logger.ts";
import { newId } from "../infra/ids.ts";
import { recordEvents, type NewEvent } from "../events/events.service.ts";
import type { Ledger } from "../ledger/ledger.service.ts";
import { bankingErrors } from "./banking.errors.ts";
import { partnerErrors } from "../partners/partners.errors.ts";
import type { MoneyLedger } from "./money-ledger.ts";
import { bestOffer, type OfferRow } from "./offers.ts";
import type { RoundupService } from "./roundup.service.ts";
import { derivePurchase, keptReward, normaliseMerchantName, type CardEventFact, type CardEventType, type PurchaseState } from "./card-transactions.rules.ts";

/** One event as a bank sends it (JSON, NDJSON line or CSV row, already typed). */
export interface CardEventInput {
  event_id: string;
  type: CardEventType;
  /** The bank's id of the purchase: every event of one purchase carries the same. */
  purchase_id: string;
  card_token: string;
  amount_minor: number;
  currency: string;
  mid?: string | null;
  mcc?: string | null;
  merchant_name?: string | null;
  transaction_at: string;
}

export type EventOutcome = { event_id: string; result: "accepted" | "duplicate" } | { event_id: string; result: "rejected"; reason: string };

export interface IngestResult {
  received: number;
  accepted: number;
  duplicates: number;
  rejected: Array<{ index: number; event_id: string | null; reason: string }>;
}

export interface PurchaseRow {
  id: string;
  bank_partner_id: string;
  purchase_ref: string;
  card_token: string;
  payment_card_id: string | null;
  member_id: string | null;
  currency: string;
  mid: string | null;
  mcc: string | null;
  merchant_name: string | null;
  transaction_at: Date | string;
  status: string;
  authorized_minor: bigint;
  cleared_minor: bigint;
  refunded_minor: bigint;
  partner_id: string | null;
  location_id: string | null;
  match_method: string | null;
  offer_id: string | null;
  reward_type: string | null;
  contract_version_id: string | null;
  pending_cashback_minor: bigint;
  pending_points: bigint;
  booked_cashback_minor: bigint;
  booked_points: bigint;
  earn_entry_id: string | null;
  cashback_available_at: Date | string | null;
  cashback_released_at: Date | string | null;
  qualified_at: Date | string | null;
  created_at: Date | string;
  updated_at: Date | string;
}

interface ContractTerms {
  id: string;
  currency: string;
  earn_points: bigint;
  earn_per_minor: bigint;
  points_validity_days: number;
  refund_policy: "negative_balance" | "recovery_entry";
  negative_floor: bigint;
  cashback_funding_bps: number;
  roundup_match_bps: number;
  effective_from: Date;
}

const DAY_MS = 86_400_000;
const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

export function purchaseView(p: PurchaseRow) {
  return {
    id: p.id,
    purchase_id: p.purchase_ref,
    member_id: p.member_id,
    payment_card_id: p.payment_card_id,
    status: p.status,
    currency: p.currency,
    authorized_minor: Number(p.authorized_minor),
    cleared_minor: Number(p.cleared_minor),
    refunded_minor: Number(p.refunded_minor),
    transaction_at: iso(p.transaction_at)!,
    merchant: { mid: p.mid, mcc: p.mcc, name: p.merchant_name },
    match: p.partner_id ? { partner_id: p.partner_id, location_id: p.location_id, method: p.match_method } : null,
    offer_id: p.offer_id,
    reward: {
      type: p.reward_type,
      pending_cashback_minor: Number(p.pending_cashback_minor),
      pending_points: Number(p.pending_points),
      cashback_minor: Number(p.booked_cashback_minor),
      points: Number(p.booked_points),
      cashback_available_at: iso(p.cashback_available_at),
    },
  };
}

export interface CardTransactionsDeps {
  db: Db;
  clock: Clock;
  log: Logger;
  ledger: Ledger;
  money: MoneyLedger;
  roundup: RoundupService;
  authExpiryDays: number;
}

/**
 * What one transaction may remember between the events it applies: reference data (cards, contract
 * versions, offers, MIDs, MCC candidates) read once per transaction instead of once per event. It
 * lives as long as the transaction, so it never outlives the snapshot it was read in.
 */
interface TxCache {
  contracts: Map<string, ContractTerms[]>;
  offers: Map<string, OfferRow[]>;
  mids: Map<string, { id: string; partner_id: string; sandbox: boolean } | undefined>;
  mccs: Map<string, Array<{ id: string; name: string; sandbox: boolean }>>;
  /** Banks' networks: true for a sandbox bank (the portal's sandbox network). */
  banks: Map<string, boolean>;
  cards: Map<string, { id: string; member_id: string } | undefined>;
}
const caches = new WeakMap<Trx, TxCache>();

/**
 * Where a chunk's time goes, for the bench: milliseconds per phase, summed over the chunks of the
 * transactions registered with `profile` (nothing is measured for the others).
 */
export type PhaseTimes = Record<string, number>;
const profiles = new WeakMap<Trx, PhaseTimes>();
async function phase<T>(trx: Trx, name: string, fn: () => Promise<T> | T): Promise<T> {
  const times = profiles.get(trx);
  if (!times) return fn();
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    times[name] = (times[name] ?? 0) + (performance.now() - t0);
  }
}
function cacheOf(trx: Trx): TxCache {
  let c = caches.get(trx);
  if (!c) caches.set(trx, (c = { contracts: new Map(), offers: new Map(), mids: new Map(), mccs: new Map(), cards: new Map(), banks: new Map() }));
  return c;
}

/**
 * A JSON array of objects as one bind: `jsonb_to_recordset(?::jsonb)` reads it back as rows. The
 * callers turn bigints into strings themselves: a replacer function would take JSON.stringify off
 * its fast path (it did: a third of the batch path's CPU).
 */
const rowsJson = (rows: unknown[]) => JSON.stringify(rows);
const text = (v: bigint | string | number) => String(v);
const isoOrNull = (d: Date | string | null | undefined) => (d === null || d === undefined ? null : new Date(d).toISOString());
const dedupe = <T>(xs: T[]) => [...new Set(xs)];

type Match = { partnerId: string; locationId: string | null; method: "mid" | "mcc_name" };

/** The events of a batch whose purchases the batch path works on at once (a chunk of a file). */
export const BATCH_CHUNK = 1000;

export function createCardTransactionsService(deps: CardTransactionsDeps) {
  const { db, clock, ledger, money, roundup } = deps;

  function toTerms(c: Record<string, unknown>): ContractTerms {
    return {
      id: String(c.id),
      currency: String(c.currency),
      earn_points: BigInt(c.earn_points as bigint),
      earn_per_minor: BigInt(c.earn_per_minor as bigint),
      points_validity_days: Number(c.points_validity_days),
      refund_policy: c.refund_policy as ContractTerms["refund_policy"],
      negative_floor: BigInt(c.negative_floor as bigint),
      cashback_funding_bps: Number(c.cashback_funding_bps),
      roundup_match_bps: Number(c.roundup_match_bps),
      effective_from: new Date(c.effective_from as string),
    };
  }

  /** Reads the contract versions of the partners not read yet in this transaction (one query). */
  async function loadContracts(trx: Trx, partnerIds: string[]): Promise<void> {
    const cache = cacheOf(trx).contracts;
    const missing = dedupe(partnerIds).filter((p) => !cache.has(p));
    if (missing.length === 0) return;
    const rows = (await trx("contract_versions").whereIn("partner_id", missing).orderBy("effective_from", "desc").select("*")) as Array<Record<string, unknown>>;
    for (const p of missing) cache.set(p, []);
    for (const r of rows) cache.get(String(r.partner_id))!.push(toTerms(r));
  }

  /** The contract version in force at `at` (its partner's versions loaded). */
  function contractAt(trx: Trx, partnerId: string, at: Date): ContractTerms | null {
    return cacheOf(trx).contracts.get(partnerId)?.find((v) => v.effective_from.getTime() <= at.getTime()) ?? null;
  }

  async function loadOffers(trx: Trx, keys: Array<{ partnerId: string; currency: string }>): Promise<void> {
    const cache = cacheOf(trx).offers;
    const missing = [...new Map(keys.map((k) => [`${k.partnerId}|${k.currency}`, k])).entries()].filter(([key]) => !cache.has(key)).map(([, k]) => k);
    if (missing.length === 0) return;
    const rows: OfferRow[] = await trx("card_offers").whereIn("partner_id", dedupe(missing.map((k) => k.partnerId))).andWhere({ status: "active" }).select("*");
    for (const k of missing) cache.set(`${k.partnerId}|${k.currency}`, rows.filter((o) => o.partner_id === k.partnerId && o.currency === k.currency));
  }

  /**
   * Matching: the MID names one partner location across the network; failing that, a partner
   * whose MCCs include the purchase's MCC and whose normalised name is the merchant's (or begins
   * it: "acme fuel riga 12" is Acme Fuel). Only active partners earn, and only partners of the
   * bank's network: a sandbox bank's purchases match sandbox merchants only, a live bank's live
   * ones only, so test traffic never reaches a live partner (nor live traffic a sandbox one). Three
   * queries for any number of purchases (fewer when this transaction read the banks, MIDs and MCCs
   * already).
   */
  async function matchMany(trx: Trx, ps: Array<Pick<PurchaseRow, "id" | "bank_partner_id" | "mid" | "mcc" | "merchant_name">>): Promise<Map<string, Match | null>> {
    const cache = cacheOf(trx);
    const banks = dedupe(ps.map((p) => p.bank_partner_id)).filter((b) => !cache.banks.has(b));
    if (banks.length > 0) {
      const rows: Array<{ id: string; sandbox: boolean }> = await trx("partners").whereIn("id", banks).select("id", "sandbox");
      for (const b of banks) cache.banks.set(b, false);
      for (const r of rows) cache.banks.set(r.id, Boolean(r.sandbox));
    }
    const networkOf = (p: Pick<PurchaseRow, "bank_partner_id">) => cache.banks.get(p.bank_partner_id) ?? false;
    const locationOf = (p: Pick<PurchaseRow, "bank_partner_id" | "mid">) => {
      const loc = p.mid ? cache.mids.get(p.mid) : undefined;
      return loc && loc.sandbox === networkOf(p) ? loc : undefined;
    };
    const mids = dedupe(ps.map((p) => p.mid).filter((m): m is string => Boolean(m))).filter((m) => !cache.mids.has(m));
    if (mids.length > 0) {
      const rows: Array<{ id: string; partner_id: string; mid: string }> = await trx("partner_locations as l")
        .join("partners as p", "p.id", "l.partner_id")
        .whereIn("l.mid", mids)
        .andWhere("p.status", "active")
        .select("l.id", "l.partner_id", "l.mid", "p.sandbox");
      for (const m of mids) cache.mids.set(m, undefined);
      for (const r of rows as Array<{ id: string; partner_id: string; mid: string; sandbox: boolean }>) cache.mids.set(r.mid, { id: r.id, partner_id: r.partner_id, sandbox: Boolean(r.sandbox) });
    }
    const byName = ps.filter((p) => !locationOf(p) && p.mcc && p.merchant_name);
    const mccs = dedupe(byName.map((p) => p.mcc!)).filter((m) => !cache.mccs.has(m));
    if (mccs.length > 0) {
      const rows: Array<{ id: string; name: string; mccs: string[]; sandbox: boolean }> = (
        await trx.raw(
          `SELECT id, name, mccs, sandbox FROM partners
            WHERE status = 'active' AND kind = 'merchant'
              AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(mccs) m WHERE m IN (SELECT jsonb_array_elements_text(?::jsonb)))
            ORDER BY id`,
          [JSON.stringify(mccs)],
        )
      ).rows;
      for (const m of mccs) cache.mccs.set(m, rows.filter((r) => r.mccs.includes(m)).map((r) => ({ id: r.id, name: r.name, sandbox: Boolean(r.sandbox) })));
    }
    const out = new Map<string, Match | null>();
    for (const p of ps) {
      const loc = locationOf(p);
      if (loc) {
        out.set(p.id, { partnerId: loc.partner_id, locationId: loc.id, method: "mid" });
        continue;
      }
      let found: Match | null = null;
      const name = p.mcc && p.merchant_name ? normaliseMerchantName(p.merchant_name) : "";
      if (name) {
        for (const c of cache.mccs.get(p.mcc!) ?? []) {
          if (c.sandbox !== networkOf(p)) continue;
          const n = normaliseMerchantName(c.name);
          if (n && (name === n || name.startsWith(`${n} `))) {
            found = { partnerId: c.id, locationId: null, method: "mcc_name" };
            break;
          }
        }
      }
      out.set(p.id, found);
    }
    return out;
  }

  /** The batch's cards (token → card and member) in one query, for the tokens not read yet. */
  async function loadCards(trx: Trx, bankId: string, tokens: string[]): Promise<void> {
    const cache = cacheOf(trx).cards;
    const missing = dedupe(tokens).filter((t) => !cache.has(`${bankId}|${t}`));
    if (missing.length === 0) return;
    const rows: Array<{ id: string; member_id: string; card_token: string }> = await trx("payment_cards")
      .where({ bank_partner_id: bankId, status: "active" })
      .whereIn("card_token", missing)
      .select("id", "member_id", "card_token");
    const found = new Map(rows.map((r) => [r.card_token, { id: r.id, member_id: r.member_id }]));
    for (const t of missing) cache.set(`${bankId}|${t}`, found.get(t));
    if (rows.length > 0) await roundup.preload(trx, dedupe(rows.map((r) => r.member_id)));
  }

  /** The events of purchases, read back (one query for all of them). */
  async function eventsOfMany(trx: Trx, purchaseIds: string[]): Promise<Map<string, CardEventFact[]>> {
    const out = new Map<string, CardEventFact[]>(purchaseIds.map((id) => [id, []]));
    if (purchaseIds.length === 0) return out;
    const rows: Array<{ purchase_id: string; type: CardEventType; amount_minor: bigint; transaction_at: Date | string }> = await trx("card_events")
      .whereIn("purchase_id", purchaseIds)
      .select("purchase_id", "type", "amount_minor", "transaction_at");
    for (const r of rows) out.get(r.purchase_id)!.push({ type: r.type, amountMinor: BigInt(r.amount_minor), transactionAt: new Date(r.transaction_at) });
    return out;
  }

  /** A purchase row as a JSON object for jsonb_to_recordset (bigints and times as text). */
  const purchaseJson = (r: PurchaseRow) => ({
    id: r.id,
    bank_partner_id: r.bank_partner_id,
    purchase_ref: r.purchase_ref,
    card_token: r.card_token,
    payment_card_id: r.payment_card_id,
    member_id: r.member_id,
    currency: r.currency,
    mid: r.mid,
    mcc: r.mcc,
    merchant_name: r.merchant_name,
    status: r.status,
    authorized_minor: text(r.authorized_minor),
    cleared_minor: text(r.cleared_minor),
    refunded_minor: text(r.refunded_minor),
    transaction_at: isoOrNull(r.transaction_at),
    created_at: isoOrNull(r.created_at),
    updated_at: isoOrNull(r.updated_at),
    partner_id: r.partner_id,
    location_id: r.location_id,
    match_method: r.match_method,
    offer_id: r.offer_id,
    reward_type: r.reward_type,
    contract_version_id: r.contract_version_id,
    pending_cashback_minor: text(r.pending_cashback_minor),
    pending_points: text(r.pending_points),
    booked_cashback_minor: text(r.booked_cashback_minor),
    booked_points: text(r.booked_points),
    earn_entry_id: r.earn_entry_id,
    cashback_available_at: isoOrNull(r.cashback_available_at),
    cashback_released_at: isoOrNull(r.cashback_released_at),
    qualified_at: isoOrNull(r.qualified_at),
  });
  const PURCHASE_RECORD = `x(id text, bank_partner_id text, purchase_ref text, card_token text, payment_card_id text, member_id text, currency text,
       mid text, mcc text, merchant_name text, status text, authorized_minor bigint, cleared_minor bigint, refunded_minor bigint,
       transaction_at timestamptz, created_at timestamptz, updated_at timestamptz, partner_id text, location_id text, match_method text,
       offer_id text, reward_type text, contract_version_id text, pending_cashback_minor bigint, pending_points bigint,
       booked_cashback_minor bigint, booked_points bigint, earn_entry_id text, cashback_available_at timestamptz,
       cashback_released_at timestamptz, qualified_at timestamptz)`;

  /**
   * Writes purchases back: the new ones (created by this chunk, not in the table yet) in one INSERT in
   * their final state — each row written and its foreign keys checked once — and the others in one
   * UPDATE. A purchase another transaction created meanwhile under the same reference is a lost
   * race: the transaction fails as a serialization failure (40001), and a retry finds the purchase.
   */
  async function writePurchases(trx: Trx, inserts: PurchaseRow[], updates: PurchaseRow[]): Promise<void> {
    if (inserts.length > 0) {
      const made = await phase(trx, "purchases insert", async () =>
        (
          await trx.raw(
            `INSERT INTO card_purchases (id, bank_partner_id, purchase_ref, card_token, payment_card_id, member_id, currency, mid, mcc, merchant_name,
               status, authorized_minor, cleared_minor, refunded_minor, transaction_at, created_at, updated_at, partner_id, location_id, match_method,
               offer_id, reward_type, contract_version_id, pending_cashback_minor, pending_points, booked_cashback_minor, booked_points, earn_entry_id,
               cashback_available_at, cashback_released_at, qualified_at)
             SELECT x.* FROM jsonb_to_recordset(?::jsonb) AS ${PURCHASE_RECORD}
              ORDER BY x.purchase_ref
             ON CONFLICT (bank_partner_id, purchase_ref) DO NOTHING
             RETURNING id`,
            [rowsJson(inserts.map(purchaseJson))],
          )
        ).rows as unknown[],
      );
      if (made.length !== inserts.length) {
        throw Object.assign(new Error("a purchase of this batch was created by another transaction at the same moment; retry the batch"), { code: "40001" });
      }
    }
    if (updates.length === 0) return;
    await phase(trx, "purchases update", () =>
      trx.raw(
        `UPDATE card_purchases c SET
           mid = x.mid, mcc = x.mcc, merchant_name = x.merchant_name,
           status = x.status, authorized_minor = x.authorized_minor, cleared_minor = x.cleared_minor, refunded_minor = x.refunded_minor,
           transaction_at = x.transaction_at, updated_at = x.updated_at, partner_id = x.partner_id, location_id = x.location_id,
           match_method = x.match_method, offer_id = x.offer_id, reward_type = x.reward_type, contract_version_id = x.contract_version_id,
           pending_cashback_minor = x.pending_cashback_minor, pending_points = x.pending_points,
           booked_cashback_minor = x.booked_cashback_minor, booked_points = x.booked_points, earn_entry_id = x.earn_entry_id,
           cashback_available_at = x.cashback_available_at, qualified_at = x.qualified_at
          FROM jsonb_to_recordset(?::jsonb) AS ${PURCHASE_RECORD}
         WHERE c.id = x.id`,
        [rowsJson(updates.map(purchaseJson))],
      ),
    );
  }

  /**
   * Brings purchases (locked by the caller, each once) to the state their events say, and the ledger
   * with them: the reward each should hold now is computed afresh and only the difference is posted.
   * One implementation for one purchase and for a chunk of a clearing file: reference data is read
   * for all of them at once, the rewards are computed in one pass in purchase order (so a member's
   * per-offer cap is filled in that order), then the ledger moves in a few set-based calls (points
   * earns, cashback), the events are recorded, round-ups placed and the purchases written back.
   * Points taken back by refunds go one purchase at a time (the member's lots are picked for each).
   */
  async function reconcileMany(trx: Trx, items: Array<{ p: PurchaseRow; state: PurchaseState }>, now: Date, fresh?: Set<string>): Promise<PurchaseRow[]> {
    if (items.length === 0) return [];
    const matches = await phase(trx, "match", () =>
      matchMany(
        trx,
        items.filter((i) => !i.p.partner_id && i.p.member_id).map((i) => i.p),
      ),
    );
    const tRef = performance.now();
    const partnerOf = (p: PurchaseRow) => p.partner_id ?? matches.get(p.id)?.partnerId ?? null;
    const isLive = (s: PurchaseState) => s.status === "authorized" || s.status === "cleared" || s.status === "refunded";
    await loadContracts(trx, items.map((i) => partnerOf(i.p)).filter((x): x is string => x !== null));
    const rewarding = items.filter((i) => i.p.member_id && partnerOf(i.p) && isLive(i.state));
    await loadOffers(trx, rewarding.map((i) => ({ partnerId: partnerOf(i.p)!, currency: i.p.currency })));

    // Activations of the offers that need one, for the members of the batch (one query).
    const needing = dedupe(rewarding.flatMap((i) => (cacheOf(trx).offers.get(`${partnerOf(i.p)}|${i.p.currency}`) ?? []).filter((o) => o.requires_activation).map((o) => o.id)));
    const activatedAt = new Map<string, Date>();
    if (needing.length > 0) {
      const rows: Array<{ offer_id: string; member_id: string; activated_at: Date | string }> = await trx("card_offer_activations")
        .whereIn("offer_id", needing)
        .whereIn("member_id", dedupe(rewarding.map((i) => i.p.member_id!)))
        .select("offer_id", "member_id", "activated_at");
      for (const r of rows) activatedAt.set(`${r.offer_id}|${r.member_id}`, new Date(r.activated_at));
    }

    const profiled = profiles.get(trx);
    if (profiled) profiled.reference = (profiled.reference ?? 0) + (performance.now() - tRef);
    const tCompute = performance.now();
    // First pass: each purchase's contract, offer and full reward.
    type Pick = { contract: ContractTerms | null; offer: OfferRow | null; full: bigint; type: "cashback" | "points" | null };
    const picks = items.map(({ p, state }): Pick => {
      const partnerId = partnerOf(p);
      if (!p.member_id || !partnerId || !isLive(state)) return { contract: null, offer: null, full: 0n, type: null };
      const at = state.transactionAt ?? new Date(p.transaction_at);
      const contract = contractAt(trx, partnerId, at);
      if (!contract) return { contract: null, offer: null, full: 0n, type: null };
      const basis = state.status === "authorized" ? state.authorizedMinor : state.clearedMinor;
      const offers = cacheOf(trx).offers.get(`${partnerId}|${p.currency}`) ?? [];
      const activated = new Set(offers.filter((o) => o.requires_activation && (activatedAt.get(`${o.id}|${p.member_id}`)?.getTime() ?? Infinity) <= at.getTime()).map((o) => o.id));
      const best = bestOffer(offers, at, p.currency, basis, activated);
      if (best) return { contract, offer: best.offer, full: best.reward, type: best.offer.reward_type };
      // The contract's base earn on card purchases: floor(amount × earn_points ÷ earn_per_minor).
      if (contract.currency === p.currency) return { contract, offer: null, full: (basis * contract.earn_points) / contract.earn_per_minor, type: "points" };
      return { contract, offer: null, full: 0n, type: null };
    });

    // What members already hold of the capped offers (one query), kept current as the pass books.
    const capped = new Map<string, { cashback: bigint; points: bigint }>();
    const cappedOffers = dedupe(picks.filter((k) => k.offer && k.offer.max_reward_per_member !== null && k.offer.max_reward_per_member !== undefined).map((k) => k.offer!.id));
    if (cappedOffers.length > 0) {
      const rows: Array<{ member_id: string; offer_id: string; c: string; p: string }> = await trx("card_purchases")
        .whereIn("offer_id", cappedOffers)
        .whereIn("member_id", dedupe(items.map((i) => i.p.member_id).filter((m): m is string => m !== null)))
        .groupBy("member_id", "offer_id")
        .select("member_id", "offer_id", trx.raw("sum(booked_cashback_minor)::bigint AS c"), trx.raw("sum(booked_points)::bigint AS p"));
      for (const m of dedupe(items.map((i) => i.p.member_id))) for (const o of cappedOffers) capped.set(`${m}|${o}`, { cashback: 0n, points: 0n });
      for (const r of rows) capped.set(`${r.member_id}|${r.offer_id}`, { cashback: BigInt(r.c), points: BigInt(r.p) });
    }

    // Second pass, in purchase order: targets, the ledger's differences, the purchases' new rows.
    const earns: Array<{ k: number; input: Parameters<Ledger["earnMany"]>[1][number] }> = [];
    const clawbacks: Array<{ k: number; run: () => Promise<unknown> }> = [];
    const cashbacks: Parameters<MoneyLedger["cashbackMany"]>[1] = [];
    const events: NewEvent[] = [];
    const cleared: Parameters<RoundupService["onClearedMany"]>[1] = [];
    const updated: PurchaseRow[] = [];
    items.forEach(({ p, state }, k) => {
      const pick = picks[k]!;
      const at = state.transactionAt ?? new Date(p.transaction_at);
      const next: Partial<PurchaseRow> = {
        status: state.status,
        authorized_minor: state.authorizedMinor,
        cleared_minor: state.clearedMinor,
        refunded_minor: state.refundedMinor,
        transaction_at: at,
        updated_at: now,
      };
      const m = !p.partner_id && p.member_id ? matches.get(p.id) : null;
      if (m) Object.assign(next, { partner_id: m.partnerId, location_id: m.locationId, match_method: m.method });
      const partnerId = partnerOf(p);
      const { contract, offer } = pick;

      let pendingCashback = 0n;
      let pendingPoints = 0n;
      let targetCashback = 0n;
      let targetPoints = 0n;
      if (contract) {
        if (state.status === "authorized") {
          if (pick.type === "cashback") pendingCashback = pick.full;
          else pendingPoints = pick.full;
        } else {
          let kept = keptReward(pick.full, state.clearedMinor, state.refundedMinor);
          const held = offer ? capped.get(`${p.member_id}|${offer.id}`) : undefined;
          if (offer && held && offer.max_reward_per_member !== null) {
            const mine = p.offer_id === offer.id ? (offer.reward_type === "cashback" ? BigInt(p.booked_cashback_minor) : BigInt(p.booked_points)) : 0n;
            const room = BigInt(offer.max_reward_per_member) - ((offer.reward_type === "cashback" ? held.cashback : held.points) - mine);
            if (kept > room) kept = room > 0n ? room : 0n;
          }
          if (pick.type === "cashback") targetCashback = kept;
          else targetPoints = kept;
        }
        Object.assign(next, { offer_id: offer?.id ?? null, reward_type: pick.type, contract_version_id: contract.id });
      }
      Object.assign(next, { pending_cashback_minor: pendingCashback, pending_points: pendingPoints });

      const ref = { type: "card_purchase", id: p.id };
      const bookedPoints = BigInt(p.booked_points);
      const bookedCashback = BigInt(p.booked_cashback_minor);
      const c = contract ?? (partnerId ? contractAt(trx, partnerId, at) : null);
      if (targetPoints !== bookedPoints && p.member_id && partnerId) {
        const memberId = p.member_id;
        if (targetPoints > bookedPoints) {
          earns.push({
            k,
            input: {
              memberId,
              partnerId,
              points: targetPoints - bookedPoints,
              contractVersionId: c?.id ?? null,
              earnedAt: at,
              expiresAt: new Date(at.getTime() + (c?.points_validity_days ?? 730) * DAY_MS),
              ref,
              memo: { card_purchase: p.id },
            },
          });
        } else {
          // The purchase's own lots first: a refund takes back the points it gave.
          clawbacks.push({
            k,
            run: async () =>
              ledger.clawback(trx, {
                memberId,
                partnerId,
                points: bookedPoints - targetPoints,
                preferLotIds: (await ledger.lotsOfRef(trx, ref)).map((l) => l.id),
                policy: c?.refund_policy ?? "negative_balance",
                negativeFloor: c?.negative_floor ?? 0n,
                occurredAt: now,
                ref,
                contractVersionId: c?.id ?? null,
              }),
          });
        }
        next.booked_points = targetPoints;
      }
      if (targetCashback !== bookedCashback && p.member_id && partnerId) {
        cashbacks.push({
          memberId: p.member_id,
          partnerId,
          currency: p.currency,
          amount: targetCashback - bookedCashback,
          fundingBps: c?.cashback_funding_bps ?? 10000,
          occurredAt: targetCashback > bookedCashback ? at : now,
          ref,
          contractVersionId: c?.id ?? null,
        });
        next.booked_cashback_minor = targetCashback;
        if (targetCashback > 0n && !p.cashback_available_at) {
          // Pending through the offer's return period, counted from the purchase's time.
          next.cashback_available_at = new Date(at.getTime() + (offer?.return_period_days ?? 30) * DAY_MS);
        }
      }

      const rewarded = pendingCashback + pendingPoints + targetCashback + targetPoints > 0n;
      if (rewarded && !p.qualified_at && p.member_id && partnerId) {
        next.qualified_at = now;
        events.push({
          type: "card_transaction.qualified",
          partnerId: p.bank_partner_id,
          occurredAt: now,
          data: { card_purchase_id: p.id, purchase_id: p.purchase_ref, member_id: p.member_id, partner_id: partnerId, offer_id: offer?.id ?? null, status: state.status },
        });
      }

      const row: PurchaseRow = { ...p, ...next } as PurchaseRow;
      if (capped.size > 0) {
        // Keep the running totals of capped offers as the database will hold them.
        const before = p.offer_id ? capped.get(`${p.member_id}|${p.offer_id}`) : undefined;
        if (before) {
          before.cashback -= BigInt(p.booked_cashback_minor);
          before.points -= BigInt(p.booked_points);
        }
        const after = row.offer_id ? capped.get(`${p.member_id}|${row.offer_id}`) : undefined;
        if (after) {
          after.cashback += BigInt(row.booked_cashback_minor);
          after.points += BigInt(row.booked_points);
        }
      }
      if (p.member_id && (state.status === "cleared" || state.status === "refunded")) {
        cleared.push({ p: row, match: c && partnerId ? { partnerId, matchBps: c.roundup_match_bps } : null });
      }
      updated.push(row);
    });

    if (profiled) profiled.compute = (profiled.compute ?? 0) + (performance.now() - tCompute);
    const earned = await phase(trx, "ledger points", () =>
      ledger.earnMany(
        trx,
        earns.map((e) => e.input),
      ),
    );
    earns.forEach((e, n) => {
      const row = updated[e.k]!;
      if (!row.earn_entry_id && earned[n]!.entryId) row.earn_entry_id = earned[n]!.entryId;
    });
    await phase(trx, "ledger clawbacks", async () => {
      for (const cb of clawbacks) await cb.run();
    });
    await phase(trx, "ledger cashback", () => money.cashbackMany(trx, cashbacks));
    await phase(trx, "outbox", () => recordEvents(trx, events));
    // The purchases before their round-ups (roundup_items references them).
    await writePurchases(
      trx,
      updated.filter((r) => fresh?.has(r.id)),
      updated.filter((r) => !fresh?.has(r.id)),
    );
    await phase(trx, "roundup", () => roundup.onClearedMany(trx, cleared));
    return updated;
  }

  /** A purchase as its first event (of any type) creates it: both paths write these columns. */
  function newPurchase(trx: Trx, bankId: string, e: CardEventInput, now: Date) {
    const card = cacheOf(trx).cards.get(`${bankId}|${e.card_token}`);
    return {
      id: newId("cpu", now.getTime()),
      bank_partner_id: bankId,
      purchase_ref: e.purchase_id,
      card_token: e.card_token,
      payment_card_id: card?.id ?? null,
      member_id: card?.member_id ?? null,
      currency: e.currency,
      mid: e.mid ?? null,
      mcc: e.mcc ?? null,
      merchant_name: e.merchant_name ?? null,
      transaction_at: new Date(e.transaction_at),
      status: "authorized",
      created_at: now,
      updated_at: now,
    };
  }

  /** The one-by-one path: one event, its purchase created or locked, then brought up to date. */
  async function applyEvent(trx: Trx, bankId: string, e: CardEventInput, now: Date): Promise<EventOutcome> {
    await loadCards(trx, bankId, [e.card_token]);
    const row = newPurchase(trx, bankId, e, now);
    // Creates the purchase on its first event (whichever type arrives first) and locks it: the
    // events of one purchase are applied one at a time.
    const p: PurchaseRow & { inserted?: boolean } = (
      await trx.raw(
        `INSERT INTO card_purchases (id, bank_partner_id, purchase_ref, card_token, payment_card_id, member_id, currency, mid, mcc, merchant_name, transaction_at, status, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (bank_partner_id, purchase_ref) DO UPDATE SET
           mid = coalesce(card_purchases.mid, excluded.mid),
           mcc = coalesce(card_purchases.mcc, excluded.mcc),
           merchant_name = coalesce(card_purchases.merchant_name, excluded.merchant_name),
           updated_at = excluded.updated_at
         RETURNING *, (xmax = 0) AS inserted`,
        [row.id, bankId, row.purchase_ref, row.card_token, row.payment_card_id, row.member_id, row.currency, row.mid, row.mcc, row.merchant_name, row.transaction_at, row.status, now, now],
      )
    ).rows[0];
    if (p.currency !== e.currency) return { event_id: e.event_id, result: "rejected", reason: `the purchase is in ${p.currency}; this event is in ${e.currency}` };
    if (p.card_token !== e.card_token) return { event_id: e.event_id, result: "rejected", reason: "the purchase was made with another card token" };
    const inserted = (
      await trx.raw(
        `INSERT INTO card_events (id, bank_partner_id, event_id, purchase_id, type, amount_minor, currency, transaction_at, received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (bank_partner_id, event_id) DO NOTHING RETURNING id`,
        [newId("cev", now.getTime()), bankId, e.event_id, p.id, e.type, String(e.amount_minor), e.currency, new Date(e.transaction_at), now],
      )
    ).rows as unknown[];
    if (inserted.length === 0) return { event_id: e.event_id, result: "duplicate" };
    // A purchase created by this very event has no other event to read.
    const facts = p.inserted ? [{ type: e.type, amountMinor: BigInt(e.amount_minor), transactionAt: new Date(e.transaction_at) }] : (await eventsOfMany(trx, [p.id])).get(p.id)!;
    delete p.inserted;
    await reconcileMany(trx, [{ p, state: derivePurchase(facts, now, deps.authExpiryDays) }], now);
    return { event_id: e.event_id, result: "accepted" };
  }

  async function lockPurchase(trx: Trx, id: string): Promise<PurchaseRow | undefined> {
    return trx("card_purchases").where({ id }).forUpdate().first();
  }

  /** Applies events one at a time in the caller's transaction; each is accepted, a duplicate, or rejected. */
  async function ingest(trx: Trx, bankId: string, events: CardEventInput[], offset = 0): Promise<IngestResult> {
    const now = clock.now();
    const out: IngestResult = { received: events.length, accepted: 0, duplicates: 0, rejected: [] };
    await loadCards(
      trx,
      bankId,
      events.map((e) => e.card_token),
    );
    for (let i = 0; i < events.length; i++) {
      const r = await applyEvent(trx, bankId, events[i]!, now);
      if (r.result === "accepted") out.accepted++;
      else if (r.result === "duplicate") out.duplicates++;
      else if ("reason" in r) out.rejected.push({ index: i + offset, event_id: r.event_id, reason: r.reason });
    }
    return out;
  }

  /**
   * The batch path: a chunk of events applied with a fixed number of statements, whatever its size —
   * the purchases created or locked in one upsert, the events deduplicated by the bank's event id in
   * one insert (ON CONFLICT DO NOTHING), the purchases' events read back in one query, then
   * `reconcileMany`. The outcome is the one-by-one path's: each event is checked against its
   * purchase as the purchase's first event created it, the first copy of an event id wins, and a
   * purchase's state is a function of its set of events.
   */
  async function ingestBatch(trx: Trx, bankId: string, events: CardEventInput[], offset = 0): Promise<IngestResult> {
    const now = clock.now();
    const out: IngestResult = { received: events.length, accepted: 0, duplicates: 0, rejected: [] };
    if (events.length === 0) return out;
    await phase(trx, "cards", () =>
      loadCards(
        trx,
        bankId,
        events.map((e) => e.card_token),
      ),
    );
    // The chunk's purchases that exist, locked in purchase_ref order (two batches touching the same
    // purchases never deadlock); the others are created by this chunk.
    const refs = dedupe(events.map((e) => e.purchase_id)).sort();
    const locked: PurchaseRow[] = await phase(
      trx,
      "purchases lock",
      async () =>
        (
          await trx.raw(
            `SELECT * FROM card_purchases
              WHERE bank_partner_id = ? AND purchase_ref = ANY (ARRAY(SELECT jsonb_array_elements_text(?::jsonb)))
              ORDER BY purchase_ref FOR UPDATE`,
            [bankId, JSON.stringify(refs)],
          )
        ).rows,
    );
    const purchase = new Map<string, PurchaseRow>(locked.map((r) => [r.purchase_ref, r]));
    // A new purchase is as its first event in the chunk makes it; later events fill in the merchant
    // data it lacks, an existing purchase's too (as the one-by-one upsert does). New purchases are
    // written once, in their final state, after the ledger moved (`writePurchases`).
    const created = new Set<string>();
    const filled = new Set<string>();
    for (const e of events) {
      const p = purchase.get(e.purchase_id);
      if (p) {
        for (const k of ["mid", "mcc", "merchant_name"] as const) {
          if (p[k] === null && e[k]) {
            p[k] = e[k];
            if (!created.has(p.id)) filled.add(p.id);
          }
        }
        continue;
      }
      const row = newPurchase(trx, bankId, e, now);
      created.add(row.id);
      purchase.set(e.purchase_id, {
        ...row,
        authorized_minor: 0n,
        cleared_minor: 0n,
        refunded_minor: 0n,
        partner_id: null,
        location_id: null,
        match_method: null,
        offer_id: null,
        reward_type: null,
        contract_version_id: null,
        pending_cashback_minor: 0n,
        pending_points: 0n,
        booked_cashback_minor: 0n,
        booked_points: 0n,
        earn_entry_id: null,
        cashback_available_at: null,
        cashback_released_at: null,
        qualified_at: null,
      });
    }

    const candidates: Array<{ i: number; p: PurchaseRow }> = [];
    const seen = new Set<string>();
    events.forEach((e, i) => {
      const p = purchase.get(e.purchase_id)!;
      if (p.currency !== e.currency) out.rejected.push({ index: i + offset, event_id: e.event_id, reason: `the purchase is in ${p.currency}; this event is in ${e.currency}` });
      else if (p.card_token !== e.card_token) out.rejected.push({ index: i + offset, event_id: e.event_id, reason: "the purchase was made with another card token" });
      else if (seen.has(e.event_id)) out.duplicates++;
      else {
        seen.add(e.event_id);
        candidates.push({ i, p });
      }
    });
    // The events of new purchases reference rows written at the end of the chunk: their foreign key
    // is checked at commit (it is DEFERRABLE, immediate everywhere else).
    if (created.size > 0) await trx.raw("SET CONSTRAINTS card_events_purchase_id_foreign DEFERRED");
    const accepted = new Set(
      (
        (
          await phase(trx, "events insert", () =>
            trx.raw(
              `INSERT INTO card_events (id, bank_partner_id, event_id, purchase_id, type, amount_minor, currency, transaction_at, received_at)
               SELECT x.id, ?, x.event_id, x.purchase_id, x.type, x.amount_minor, x.currency, x.transaction_at, ?::timestamptz
                 FROM jsonb_to_recordset(?::jsonb) AS x(id text, event_id text, purchase_id text, type text, amount_minor bigint, currency text, transaction_at timestamptz)
               ON CONFLICT (bank_partner_id, event_id) DO NOTHING
               RETURNING event_id`,
              [
                bankId,
                now.toISOString(),
                rowsJson(
                  candidates.map(({ i, p }) => {
                    const e = events[i]!;
                    return { id: newId("cev", now.getTime()), event_id: e.event_id, purchase_id: p.id, type: e.type, amount_minor: e.amount_minor, currency: e.currency, transaction_at: e.transaction_at };
                  }),
                ),
              ],
            ),
          )
        ).rows as Array<{ event_id: string }>
      ).map((r) => r.event_id),
    );
    // The purchases with news, in the order of their first accepted event.
    const touched: PurchaseRow[] = [];
    const newFacts = new Map<string, CardEventFact[]>();
    for (const { i, p } of candidates) {
      const e = events[i]!;
      if (!accepted.has(e.event_id)) {
        out.duplicates++;
        continue;
      }
      out.accepted++;
      let facts = newFacts.get(p.id);
      if (!facts) {
        newFacts.set(p.id, (facts = []));
        touched.push(p);
      }
      facts.push({ type: e.type, amountMinor: BigInt(e.amount_minor), transactionAt: new Date(e.transaction_at) });
    }
    // A purchase this chunk created has no events but the chunk's; the others are read back.
    const stored = await phase(trx, "events read back", () =>
      eventsOfMany(
        trx,
        touched.filter((p) => !created.has(p.id)).map((p) => p.id),
      ),
    );
    const states = await phase(trx, "state machine", () =>
      touched.map((p) => ({ p: { ...p }, state: derivePurchase(created.has(p.id) ? newFacts.get(p.id)! : stored.get(p.id)!, now, deps.authExpiryDays) })),
    );
    await reconcileMany(trx, states, now, created);
    // What the chunk changed without news: new purchases none of whose events was accepted (all
    // copies of events stored under other purchases) as their first event made them, and merchant
    // data filled in on existing ones.
    const news = new Set(touched.map((p) => p.id));
    const rest = [...purchase.values()].filter((p) => !news.has(p.id) && (created.has(p.id) || filled.has(p.id)));
    if (rest.length > 0) {
      await writePurchases(
        trx,
        rest.filter((p) => created.has(p.id)),
        rest.filter((p) => !created.has(p.id)).map((p) => ({ ...p, updated_at: now })),
      );
    }
    out.rejected.sort((a, b) => a.index - b.index);
    return out;
  }

  /** Any number of events in the caller's transaction, through the batch path a chunk at a time. */
  async function ingestChunked(trx: Trx, bankId: string, events: CardEventInput[], chunkSize = BATCH_CHUNK): Promise<IngestResult> {
    const out: IngestResult = { received: events.length, accepted: 0, duplicates: 0, rejected: [] };
    for (let c = 0; c < events.length; c += chunkSize) {
      const r = await ingestBatch(trx, bankId, events.slice(c, c + chunkSize), c);
      out.accepted += r.accepted;
      out.duplicates += r.duplicates;
      out.rejected.push(...r.rejected);
    }
    return out;
  }

  return {
    ingest,
    ingestBatch,
    ingestChunked,

    /**
     * A large batch (a day's clearing file): the events are split by member (a card's events, and
     * so a member's ledger accounts, stay in one lane, in file order) over `concurrency` lanes, each
     * applying `chunkSize` events at a time through the batch path in its own transaction. Not atomic
     * as a whole: a batch cut short is completed by sending it again — what was applied comes back as
     * duplicates.
     */
    async ingestMany(bankId: string, events: CardEventInput[], opts: { concurrency?: number; chunkSize?: number; phases?: PhaseTimes } = {}): Promise<IngestResult> {
      const lanes = Math.max(1, opts.concurrency ?? 4);
      const chunkSize = Math.max(1, opts.chunkSize ?? BATCH_CHUNK);
      const tokens = [...new Set(events.map((e) => e.card_token))];
      const owner = new Map<string, string>();
      for (let i = 0; i < tokens.length; i += 5000) {
        const rows: Array<{ card_token: string; member_id: string }> = await db("payment_cards")
          .where({ bank_partner_id: bankId, status: "active" })
          .whereIn("card_token", tokens.slice(i, i + 5000))
          .select("card_token", "member_id");
        for (const r of rows) owner.set(r.card_token, r.member_id);
      }
      // The shared accounts the batch will post to are opened first, committed, in one transaction:
      // the merchants' (points issuance, money receivable) and the operator's.
      const mids = [...new Set(events.map((e) => e.mid).filter((m): m is string => Boolean(m)))];
      const partnerIds: string[] = [];
      for (let i = 0; i < mids.length; i += 5000) {
        partnerIds.push(...((await db("partner_locations").whereIn("mid", mids.slice(i, i + 5000)).distinct("partner_id")) as Array<{ partner_id: string }>).map((r) => r.partner_id));
      }
      const someMember = owner.values().next().value;
      if (someMember && partnerIds.length > 0) {
        await db.transaction(async (trx) => {
          await ledger.lockMember(trx, someMember, [...new Set(partnerIds)]);
          await money.openNetwork(trx, [...new Set(partnerIds)], [...new Set(events.map((e) => e.currency))]);
        });
      }
      const laneOf = (key: string) => {
        let h = 0;
        for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) | 0;
        return Math.abs(h) % lanes;
      };
      const byLane: number[][] = Array.from({ length: lanes }, () => []);
      events.forEach((e, i) => byLane[laneOf(owner.get(e.card_token) ?? e.card_token)]!.push(i));
      const out: IngestResult = { received: events.length, accepted: 0, duplicates: 0, rejected: [] };
      await Promise.all(
        byLane.map(async (idx) => {
          for (let c = 0; c < idx.length; c += chunkSize) {
            const part = idx.slice(c, c + chunkSize);
            const times = opts.phases;
            let r: IngestResult | undefined;
            // A chunk that lost a race (a purchase created by another transaction at the same moment,
            // a deadlock) is rolled back whole and applied again.
            for (let attempt = 1; !r; attempt++) {
              const t0 = performance.now();
              let inBody = 0;
              try {
                r = await db.transaction(async (trx) => {
                  if (times) profiles.set(trx, times);
                  const t1 = performance.now();
                  const res = await ingestBatch(trx, bankId, part.map((i) => events[i]!));
                  inBody = performance.now() - t1;
                  return res;
                });
              } catch (err) {
                if (attempt >= 3 || !isRetryableDbError(err)) throw err;
              }
              // What is left is BEGIN and COMMIT: the deferred checks (the events' purchases) run at commit.
              if (times) times["begin+commit"] = (times["begin+commit"] ?? 0) + (performance.now() - t0 - inBody);
            }
            out.accepted += r.accepted;
            out.duplicates += r.duplicates;
            for (const x of r.rejected) out.rejected.push({ ...x, index: part[x.index]! });
          }
        }),
      );
      out.rejected.sort((a, b) => a.index - b.index);
      return out;
    },
    async getPurchase(bankId: string, purchaseRef: string) {
      const p: PurchaseRow | undefined = await db("card_purchases").where({ bank_partner_id: bankId, purchase_ref: purchaseRef }).first();
      if (!p) throw bankingErrors.make("purchase-not-found", `No purchase ${purchaseRef} of this bank.`);
      return purchaseView(p);
    },

    /** Auths with no clearing past the expiry: their pending reward lapses. Returns how many. */
    async expireAuths(now: Date = clock.now()): Promise<number> {
      const cutoff = new Date(now.getTime() - deps.authExpiryDays * DAY_MS);
      let n = 0;
      for (;;) {
        const ids: string[] = (await db("card_purchases").where({ status: "authorized" }).andWhere("transaction_at", "<=", cutoff).orderBy("id").limit(200).select("id")).map(
          (r: { id: string }) => r.id,
        );
        if (ids.length === 0) return n;
        // A page at a time, through the batch path: locked, read back and brought up to date at once.
        n += await db.transaction(async (trx) => {
          const ps: PurchaseRow[] = await trx("card_purchases").whereIn("id", ids).andWhere({ status: "authorized" }).orderBy("id").forUpdate().select("*");
          const facts = await eventsOfMany(
            trx,
            ps.map((p) => p.id),
          );
          await reconcileMany(
            trx,
            ps.map((p) => ({ p, state: derivePurchase(facts.get(p.id)!, now, deps.authExpiryDays) })),
            now,
          );
          return ps.length;
        });
      }
    },

    /** The operator's review list: purchases of linked cards no partner matched. */
    async listUnmatched(opts: { cursor?: string; limit: number }) {
      const rows: PurchaseRow[] = await db("card_purchases")
        .whereNull("partner_id")
        .whereNotNull("member_id")
        .modify((q) => {
          if (opts.cursor) q.where("id", ">", opts.cursor);
        })
        .orderBy("id")
        .limit(opts.limit + 1)
        .select("*");
      const page = rows.slice(0, opts.limit);
      return { items: page.map(purchaseView), next_cursor: rows.length > opts.limit ? page.at(-1)!.id : null };
    },

    /**
     * Re-matches an unmatched purchase (after the operator added the MID or fixed a partner's MCCs),
     * or assigns it to a partner by hand; the reward follows at once.
     */
    async rematch(purchaseId: string, partnerId?: string) {
      return db.transaction(async (trx) => {
        const p = await lockPurchase(trx, purchaseId);
        if (!p) throw bankingErrors.make("purchase-not-found", `No purchase ${purchaseId}.`);
        if (partnerId) {
          // A merchant of the bank's own network only (sandbox or live).
          const bank: { sandbox: boolean } | undefined = await trx("partners").where({ id: p.bank_partner_id }).first("sandbox");
          const partner = await trx("partners").where({ id: partnerId, kind: "merchant", sandbox: bank?.sandbox ?? false }).first("id");
          // The purchase exists: the partner named is what is not there (for this purchase's network).
          if (!partner) throw partnerErrors.make("partner-not-found", `No merchant partner ${partnerId} in the purchase's network.`, { errors: [{ field: "body/partner_id", reason: "is not a merchant partner of the purchase's network" }] });
          p.partner_id = partnerId;
          p.match_method = "manual";
          await trx("card_purchases").where({ id: p.id }).update({ partner_id: partnerId, match_method: "manual", location_id: null });
        }
        const facts = (await eventsOfMany(trx, [p.id])).get(p.id)!;
        const [updated] = await reconcileMany(trx, [{ p, state: derivePurchase(facts, clock.now(), deps.authExpiryDays) }], clock.now());
        return purchaseView(updated!);
      });
    },
  };
}

export type CardTransactionsService = ReturnType<typeof createCardTransactionsService>;
