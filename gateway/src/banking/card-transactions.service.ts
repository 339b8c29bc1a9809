import type { Db, Trx } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";
import type { Logger } from "../infra/logger.ts";
import { newId } from "../infra/ids.ts";
import { recordEvent } from "../events/events.service.ts";
import type { Ledger } from "../ledger/ledger.service.ts";
import { bankingErrors } from "./banking.errors.ts";
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
 * versions, offers, MIDs) read once per batch instead of once per event. It lives as long as the
 * transaction, so it never outlives the snapshot it was read in.
 */
interface BatchCache {
  contracts: Map<string, Promise<ContractTerms[]>>;
  offers: Map<string, Promise<OfferRow[]>>;
  mids: Map<string, Promise<{ id: string; partner_id: string } | undefined>>;
  cards: Map<string, Promise<{ id: string; member_id: string } | undefined>>;
}
const caches = new WeakMap<Trx, BatchCache>();
function cacheOf(trx: Trx): BatchCache {
  let c = caches.get(trx);
  if (!c) caches.set(trx, (c = { contracts: new Map(), offers: new Map(), mids: new Map(), cards: new Map() }));
  return c;
}
function memo<K, V>(map: Map<K, Promise<V>>, key: K, load: () => Promise<V>): Promise<V> {
  let v = map.get(key);
  if (!v) map.set(key, (v = load()));
  return v;
}

export function createCardTransactionsService(deps: CardTransactionsDeps) {
  const { db, clock, ledger, money, roundup } = deps;

  /** The contract version in force at `at` (versions read once per transaction). */
  async function contractAt(conn: Trx, partnerId: string, at: Date): Promise<ContractTerms | null> {
    const versions = await memo(cacheOf(conn).contracts, partnerId, async () =>
      ((await conn("contract_versions").where({ partner_id: partnerId }).orderBy("effective_from", "desc").select("*")) as Array<Record<string, unknown>>).map(toTerms),
    );
    return versions.find((v) => v.effective_from.getTime() <= at.getTime()) ?? null;
  }

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

  /**
   * Matching: the MID names one partner location across the network; failing that, a partner
   * whose MCCs include the purchase's MCC and whose normalised name is the merchant's (or begins
   * it: "acme fuel riga 12" is Acme Fuel). Only active partners earn.
   */
  async function match(conn: Trx, p: Pick<PurchaseRow, "mid" | "mcc" | "merchant_name">): Promise<{ partnerId: string; locationId: string | null; method: "mid" | "mcc_name" } | null> {
    if (p.mid) {
      const mid = p.mid;
      const loc = await memo(cacheOf(conn).mids, mid, () =>
        conn("partner_locations as l").join("partners as p", "p.id", "l.partner_id").where("l.mid", mid).whereIn("p.status", ["active"]).first("l.id", "l.partner_id"),
      );
      if (loc) return { partnerId: loc.partner_id, locationId: loc.id, method: "mid" };
    }
    if (p.mcc && p.merchant_name) {
      const name = normaliseMerchantName(p.merchant_name);
      if (!name) return null;
      const candidates: Array<{ id: string; name: string }> = await conn("partners")
        .where({ status: "active", kind: "merchant" })
        .whereRaw("mccs @> ?::jsonb", [JSON.stringify([p.mcc])])
        .orderBy("id")
        .select("id", "name");
      for (const c of candidates) {
        const n = normaliseMerchantName(c.name);
        if (n && (name === n || name.startsWith(`${n} `))) return { partnerId: c.id, locationId: null, method: "mcc_name" };
      }
    }
    return null;
  }

  async function memberOfToken(conn: Trx, bankId: string, token: string): Promise<{ id: string; member_id: string } | undefined> {
    return memo(cacheOf(conn).cards, `${bankId}|${token}`, () => conn("payment_cards").where({ bank_partner_id: bankId, card_token: token, status: "active" }).first("id", "member_id"));
  }

  async function eventsOf(trx: Trx, purchaseId: string): Promise<CardEventFact[]> {
    const rows: Array<{ type: CardEventType; amount_minor: bigint; transaction_at: Date | string }> = await trx("card_events")
      .where({ purchase_id: purchaseId })
      .select("type", "amount_minor", "transaction_at");
    return rows.map((r) => ({ type: r.type, amountMinor: BigInt(r.amount_minor), transactionAt: new Date(r.transaction_at) }));
  }

  /**
   * Brings one purchase (locked by the caller) to the state its events say, and the ledger with it:
   * the reward it should hold now is computed afresh and only the difference is posted.
   */
  async function reconcile(trx: Trx, p: PurchaseRow, state: PurchaseState, now: Date): Promise<PurchaseRow> {
    const at = state.transactionAt ?? new Date(p.transaction_at);
    const next: Partial<PurchaseRow> = {
      status: state.status,
      authorized_minor: state.authorizedMinor,
      cleared_minor: state.clearedMinor,
      refunded_minor: state.refundedMinor,
      transaction_at: at,
      updated_at: now,
    };
    let matched = p.partner_id ? { partnerId: p.partner_id } : null;
    if (!matched && p.member_id) {
      const m = await match(trx, p);
      if (m) {
        matched = m;
        Object.assign(next, { partner_id: m.partnerId, location_id: m.locationId, match_method: m.method });
      }
    }

    let pendingCashback = 0n;
    let pendingPoints = 0n;
    let targetCashback = 0n;
    let targetPoints = 0n;
    let contract: ContractTerms | null = null;
    let offer: OfferRow | null = null;
    const live = state.status === "authorized" || state.status === "cleared" || state.status === "refunded";
    if (p.member_id && matched && live) {
      contract = await contractAt(trx, matched.partnerId, at);
      if (contract) {
        const basis = state.status === "authorized" ? state.authorizedMinor : state.clearedMinor;
        const partner = matched.partnerId;
        const offers: OfferRow[] = await memo(cacheOf(trx).offers, `${partner}|${p.currency}`, () =>
          trx("card_offers").where({ partner_id: partner, status: "active", currency: p.currency }).select("*"),
        );
        const needing = offers.filter((o) => o.requires_activation).map((o) => o.id);
        const activated = new Set<string>(
          needing.length === 0
            ? []
            : (await trx("card_offer_activations").whereIn("offer_id", needing).andWhere({ member_id: p.member_id }).andWhere("activated_at", "<=", at).select("offer_id")).map(
                (r: { offer_id: string }) => r.offer_id,
              ),
        );
        const best = bestOffer(offers, at, p.currency, basis, activated);
        let full = 0n;
        let type: "cashback" | "points" | null = null;
        if (best) {
          offer = best.offer;
          full = best.reward;
          type = best.offer.reward_type;
        } else if (contract.currency === p.currency) {
          // The contract's base earn on card purchases: floor(amount × earn_points ÷ earn_per_minor).
          full = (basis * contract.earn_points) / contract.earn_per_minor;
          type = "points";
        }
        if (state.status === "authorized") {
          if (type === "cashback") pendingCashback = full;
          else pendingPoints = full;
        } else {
          let kept = keptReward(full, state.clearedMinor, state.refundedMinor);
          if (offer?.max_reward_per_member !== null && offer?.max_reward_per_member !== undefined) {
            const col = offer.reward_type === "cashback" ? "booked_cashback_minor" : "booked_points";
            const other: { s: string | null } | undefined = await trx("card_purchases")
              .where({ member_id: p.member_id, offer_id: offer.id })
              .whereNot({ id: p.id })
              .first(trx.raw(`sum(${col})::bigint AS s`));
            const room = BigInt(offer.max_reward_per_member) - BigInt(other?.s ?? 0);
            if (kept > room) kept = room > 0n ? room : 0n;
          }
          if (type === "cashback") targetCashback = kept;
          else targetPoints = kept;
        }
        Object.assign(next, { offer_id: offer?.id ?? null, reward_type: type, contract_version_id: contract.id });
      }
    }
    Object.assign(next, { pending_cashback_minor: pendingCashback, pending_points: pendingPoints });

    const ref = { type: "card_purchase", id: p.id };
    const partnerId = matched?.partnerId;
    const bookedPoints = BigInt(p.booked_points);
    const bookedCashback = BigInt(p.booked_cashback_minor);
    if (targetPoints !== bookedPoints && p.member_id && partnerId) {
      const c = contract ?? (await contractAt(trx, partnerId, at));
      if (targetPoints > bookedPoints) {
        const res = await ledger.earn(trx, {
          memberId: p.member_id,
          partnerId,
          points: targetPoints - bookedPoints,
          contractVersionId: c?.id ?? null,
          earnedAt: at,
          expiresAt: new Date(at.getTime() + (c?.points_validity_days ?? 730) * DAY_MS),
          ref,
          memo: { card_purchase: p.id },
        });
        if (!p.earn_entry_id && res.entryId) next.earn_entry_id = res.entryId;
      } else {
        // The purchase's own lots first: a refund takes back the points it gave.
        const lots = await ledger.lotsOfRef(trx, ref);
        await ledger.clawback(trx, {
          memberId: p.member_id,
          partnerId,
          points: bookedPoints - targetPoints,
          preferLotIds: lots.map((l) => l.id),
          policy: c?.refund_policy ?? "negative_balance",
          negativeFloor: c?.negative_floor ?? 0n,
          occurredAt: now,
          ref,
          contractVersionId: c?.id ?? null,
        });
      }
      next.booked_points = targetPoints;
    }
    if (targetCashback !== bookedCashback && p.member_id && partnerId) {
      const c = contract ?? (await contractAt(trx, partnerId, at));
      await money.cashback(trx, {
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
      await recordEvent(trx, {
        type: "card_transaction.qualified",
        partnerId: p.bank_partner_id,
        occurredAt: now,
        data: { card_purchase_id: p.id, purchase_id: p.purchase_ref, member_id: p.member_id, partner_id: partnerId, offer_id: offer?.id ?? null, status: state.status },
      });
    }

    const updated: PurchaseRow = { ...p, ...next } as PurchaseRow;
    if (p.member_id && (state.status === "cleared" || state.status === "refunded")) {
      const c = partnerId ? (contract ?? (await contractAt(trx, partnerId, at))) : null;
      await roundup.onCleared(trx, updated, c && partnerId ? { partnerId, matchBps: c.roundup_match_bps } : null);
    }
    const dbPatch = Object.fromEntries(Object.entries(next).map(([k, v]) => [k, typeof v === "bigint" ? v.toString() : v]));
    await trx("card_purchases").where({ id: p.id }).update(dbPatch);
    return updated;
  }

  async function applyEvent(trx: Trx, bankId: string, e: CardEventInput, now: Date): Promise<EventOutcome> {
    const card = await memberOfToken(trx, bankId, e.card_token);
    const row = {
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
    const facts = p.inserted ? [{ type: e.type, amountMinor: BigInt(e.amount_minor), transactionAt: new Date(e.transaction_at) }] : await eventsOf(trx, p.id);
    delete p.inserted;
    await reconcile(trx, p, derivePurchase(facts, now, deps.authExpiryDays), now);
    return { event_id: e.event_id, result: "accepted" };
  }

  async function lockPurchase(trx: Trx, id: string): Promise<PurchaseRow | undefined> {
    return trx("card_purchases").where({ id }).forUpdate().first();
  }

    /** Applies a batch in the caller's transaction; each event is accepted, a duplicate, or rejected. */
  async function ingest(trx: Trx, bankId: string, events: CardEventInput[], offset = 0): Promise<IngestResult> {
    const now = clock.now();
    const out: IngestResult = { received: events.length, accepted: 0, duplicates: 0, rejected: [] };
    // The batch's cards and their members' round-up settings in two queries, not two per event.
    const tokens = [...new Set(events.map((e) => e.card_token))].filter((t) => !cacheOf(trx).cards.has(`${bankId}|${t}`));
    if (tokens.length > 1) {
      const rows: Array<{ id: string; member_id: string; card_token: string }> = await trx("payment_cards")
        .where({ bank_partner_id: bankId, status: "active" })
        .whereIn("card_token", tokens)
        .select("id", "member_id", "card_token");
      const found = new Map(rows.map((r) => [r.card_token, { id: r.id, member_id: r.member_id }]));
      for (const t of tokens) cacheOf(trx).cards.set(`${bankId}|${t}`, Promise.resolve(found.get(t)));
      await roundup.preload(trx, [...new Set(rows.map((r) => r.member_id))]);
    }
    for (let i = 0; i < events.length; i++) {
      const r = await applyEvent(trx, bankId, events[i]!, now);
      if (r.result === "accepted") out.accepted++;
      else if (r.result === "duplicate") out.duplicates++;
      else if ("reason" in r) out.rejected.push({ index: i + offset, event_id: r.event_id, reason: r.reason });
    }
    return out;
  }

  return {
    ingest,

    /**
     * A large batch (a day's clearing file): the events are split by member (a card's events, and
     * so a member's ledger accounts, stay in one lane, in file order) over `concurrency` lanes, each
     * committing every `chunkSize` events in its own transaction. Not atomic as a whole: a batch cut
     * short is completed by sending it again — what was applied comes back as duplicates.
     */
    async ingestMany(bankId: string, events: CardEventInput[], opts: { concurrency?: number; chunkSize?: number } = {}): Promise<IngestResult> {
      const lanes = Math.max(1, opts.concurrency ?? 4);
      const chunkSize = Math.max(1, opts.chunkSize ?? 500);
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
            const r = await db.transaction((trx) => ingest(trx, bankId, part.map((i) => events[i]!)));
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
        for (const id of ids) {
          await db.transaction(async (trx) => {
            const p = await lockPurchase(trx, id);
            if (!p || p.status !== "authorized") return;
            await reconcile(trx, p, derivePurchase(await eventsOf(trx, id), now, deps.authExpiryDays), now);
          });
          n++;
        }
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
          const partner = await trx("partners").where({ id: partnerId, kind: "merchant" }).first("id");
          if (!partner) throw bankingErrors.make("purchase-not-found", `No merchant partner ${partnerId}.`);
          p.partner_id = partnerId;
          p.match_method = "manual";
          await trx("card_purchases").where({ id: p.id }).update({ partner_id: partnerId, match_method: "manual", location_id: null });
        }
        const updated = await reconcile(trx, p, derivePurchase(await eventsOf(trx, p.id), clock.now(), deps.authExpiryDays), clock.now());
        return purchaseView(updated);
      });
    },
  };
}

export type CardTransactionsService = ReturnType<typeof createCardTransactionsService>;
