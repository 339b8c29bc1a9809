import type { Db, DbOrTrx, Trx } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";
import type { Logger } from "../infra/logger.ts";
import { newId } from "../infra/ids.ts";
import { enqueueInTx } from "../infra/outbox/outbox.ts";
import { recordEvent } from "../events/events.service.ts";
import { memberAccessErrors, type MemberAccess, type MemberRef } from "../members/member-access.ts";
import { partnerFunded, type Funding, type FundedBy, type Ledger } from "../ledger/ledger.service.ts";
import type { MemberBalances } from "../ledger/ledger.types.ts";
import { earnErrors } from "./earn.errors.ts";
import { decodeCursor, encodeCursor } from "../http/cursor.ts";
import { baseRateRules, type BasketLine, type ContractTerms, type EarnItem, type EarnRules } from "./earn.rules.ts";

const DAY_MS = 86_400_000;

export interface EarnInput extends MemberRef {
  partner_transaction_id: string;
  amount_minor: number;
  currency: string;
  occurred_at?: string;
  lines?: BasketLine[];
  /** Part of the basket paid with points: burned and earned atomically, earn on the cash part. */
  burn?: { points: number; amount_minor: number };
}

export interface BurnInput extends MemberRef {
  partner_transaction_id: string;
  points: number;
  amount_minor: number;
  currency: string;
  occurred_at?: string;
}

export interface RefundInput {
  refund_id: string;
  amount_minor?: number;
  occurred_at?: string;
}

export interface RedemptionInput extends MemberRef {
  partner_transaction_id: string;
  points: number;
  amount_minor: number;
  currency: string;
  hold_minutes?: number;
  occurred_at?: string;
}

export interface ContractRow {
  id: string;
  version: number;
  currency: string;
  earn_points: bigint;
  earn_per_minor: bigint;
  points_validity_days: number;
  refund_policy: "negative_balance" | "recovery_entry";
  negative_floor: bigint;
}

/** The columns of `contract_versions` a ContractRow holds, for every query that reads the terms. */
export const CONTRACT_COLUMNS = ["id", "version", "currency", "earn_points", "earn_per_minor", "points_validity_days", "refund_policy", "negative_floor"] as const;

interface TransactionRow {
  id: string;
  partner_id: string;
  partner_transaction_id: string;
  kind: "earn" | "burn" | "purchase" | "redemption";
  member_id: string;
  amount_minor: bigint;
  currency: string;
  occurred_at: Date | string;
  contract_version_id: string;
  points_earned: bigint;
  points_burned: bigint;
  refunded_minor: bigint;
  points_clawed_back: bigint;
  points_restored: bigint;
  ledger_ref_type: string;
  ledger_ref_id: string;
  computation: { items?: Array<{ points?: number; funded_by?: string }> } | string | null;
}

/**
 * Who pays for a purchase's points, from its computation's items (`funded_by` of each rule line;
 * an item without one is the partner's own base rate). The issuing partner comes first.
 */
export function fundingOf(partnerId: string, items: Array<{ points?: number; funded_by?: string }>): Funding[] {
  const own = partnerFunded(partnerId);
  const by = new Map<FundedBy, bigint>([[own, 0n]]);
  for (const i of items) {
    const f = (i.funded_by ?? own) as FundedBy;
    by.set(f, (by.get(f) ?? 0n) + BigInt(i.points ?? 0));
  }
  return [...by].map(([fundedBy, points]) => ({ fundedBy, points }));
}

/**
 * Whose points a refund takes back. Each other funder's share is cumulative over the purchase's
 * refunds — floor(its points × points clawed back so far ÷ points earned) minus what earlier refunds
 * took — so partial refunds add up to a full one exactly; the issuing partner takes the rest.
 */
export function refundFunding(funding: Funding[], earned: bigint, clawedBefore: bigint, claw: bigint): Funding[] {
  if (earned === 0n) return [{ fundedBy: funding[0]!.fundedBy, points: claw }];
  let left = claw;
  const others = funding.slice(1).map((f) => {
    const due = (f.points * (clawedBefore + claw)) / earned - (f.points * clawedBefore) / earned;
    const take = due < 0n ? 0n : due > left ? left : due;
    left -= take;
    return { fundedBy: f.fundedBy, points: take };
  });
  return [{ fundedBy: funding[0]!.fundedBy, points: left }, ...others];
}

interface RedemptionRow {
  id: string;
  partner_id: string;
  partner_transaction_id: string;
  member_id: string;
  points: bigint;
  amount_minor: bigint;
  currency: string;
  status: "held" | "captured" | "voided" | "expired";
  captured_points: bigint;
  contract_version_id: string;
  occurred_at: Date | string;
  expires_at: Date | string;
  transaction_id: string | null;
  created_at: Date | string;
}

export function toTerms(r: ContractRow): ContractTerms {
  return {
    id: r.id,
    version: r.version,
    currency: r.currency,
    earnPoints: BigInt(r.earn_points),
    earnPerMinor: BigInt(r.earn_per_minor),
    pointsValidityDays: r.points_validity_days,
    refundPolicy: r.refund_policy,
    negativeFloor: BigInt(r.negative_floor),
  };
}

const iso = (d: Date | string) => new Date(d).toISOString();


function computationView(contract: ContractTerms, items: EarnItem[]) {
  return {
    contract_version: contract.version,
    rounding: "floor(amount_minor × earn_points ÷ earn_per_minor) on the amount earned on, rounded down to whole points",
    items,
  };
}

/** The head of an earn's answer, key for key, whichever path computed it (dry run, one by one, batched). */
export function earnAnswer<Id extends string | null>(a: {
  transactionId: Id;
  dryRun: boolean;
  input: Pick<EarnInput, "partner_transaction_id" | "amount_minor" | "currency">;
  memberId: string;
  occurredAt: Date;
  contract: ContractTerms;
  computed: { points: bigint | number; items: EarnItem[] };
  pointsBurned: number;
}) {
  return {
    transaction_id: a.transactionId,
    partner_transaction_id: a.input.partner_transaction_id,
    member_id: a.memberId,
    dry_run: a.dryRun,
    amount_minor: a.input.amount_minor,
    currency: a.input.currency,
    occurred_at: a.occurredAt.toISOString(),
    points_earned: Number(a.computed.points),
    points_burned: a.pointsBurned,
    computation: computationView(a.contract, a.computed.items),
  };
}

/** The head of a burn's answer, key for key, whichever path wrote it (one by one, one statement); the balance follows. */
export function burnAnswer(a: { transactionId: string; input: Pick<BurnInput, "partner_transaction_id" | "points" | "amount_minor" | "currency">; memberId: string; occurredAt: Date }) {
  return {
    transaction_id: a.transactionId,
    partner_transaction_id: a.input.partner_transaction_id,
    member_id: a.memberId,
    points_burned: a.input.points,
    amount_minor: a.input.amount_minor,
    currency: a.input.currency,
    occurred_at: a.occurredAt.toISOString(),
  };
}

export function redemptionView(r: RedemptionRow) {
  return {
    id: r.id,
    partner_transaction_id: r.partner_transaction_id,
    member_id: r.member_id,
    status: r.status,
    points: Number(r.points),
    captured_points: Number(r.captured_points),
    amount_minor: Number(r.amount_minor),
    currency: r.currency,
    expires_at: iso(r.expires_at),
    transaction_id: r.transaction_id,
    created_at: iso(r.created_at),
  };
}

/**
 * Earn, burn, two-phase redemptions and refunds for partners. Each write takes the transaction the
 * idempotency layer opened, so the key row, the ledger entries, the events and the outbox commit
 * together or not at all.
 */
export function createEarnService(deps: { db: Db; clock: Clock; log: Logger; ledger: Ledger; members: MemberAccess; rules?: EarnRules }) {
  const { db, clock, ledger, members } = deps;
  const rules = deps.rules ?? baseRateRules;

  /** The partner must be active; its contract in force at `at` is read in the same round trip. */
  async function activePartnerContract(conn: DbOrTrx, partnerId: string, at: Date): Promise<ContractTerms> {
    const rows = (
      await conn.raw(
        `SELECT p.status, ${CONTRACT_COLUMNS.map((c) => `c.${c}`).join(", ")}
           FROM partners p
           LEFT JOIN LATERAL (SELECT * FROM contract_versions cv WHERE cv.partner_id = p.id AND cv.effective_from <= ?
                               ORDER BY cv.effective_from DESC LIMIT 1) c ON true
          WHERE p.id = ?`,
        [at.toISOString(), partnerId],
      )
    ).rows as Array<ContractRow & { status: string; id: string | null }>;
    const row = rows[0];
    if (!row || row.status !== "active") {
      throw earnErrors.make("partner-not-active", `Partner ${partnerId} is ${row?.status ?? "unknown"}; only active partners earn and burn.`);
    }
    if (!row.id) throw earnErrors.make("no-contract-in-force", `No contract of partner ${partnerId} is in force at ${at.toISOString()}.`);
    return toTerms(row);
  }

  async function contractById(conn: DbOrTrx, id: string): Promise<ContractTerms> {
    const row: ContractRow = await conn("contract_versions")
      .where({ id })
      .first(...CONTRACT_COLUMNS);
    return toTerms(row);
  }

  function checkCurrency(contract: ContractTerms, currency: string): void {
    if (contract.currency !== currency) {
      throw earnErrors.make("currency-mismatch", `The contract in force is in ${contract.currency}; ${currency} was sent.`, { expected_currency: contract.currency });
    }
  }

  const view = (b: MemberBalances) => ({ available: Number(b.points), held: Number(b.held), owed: Number(-b.debt) });

  async function balanceView(conn: DbOrTrx, memberId: string) {
    return view(await ledger.balances(conn, memberId));
  }

  async function insertTransaction(trx: Trx, row: Record<string, unknown>): Promise<void> {
    const inserted = (await trx("point_transactions").insert(row).onConflict(["partner_id", "kind", "partner_transaction_id"]).ignore().returning("id")) as unknown[];
    if (inserted.length === 0) {
      const existing: { id: string } = await trx("point_transactions")
        .where({ partner_id: row.partner_id, kind: row.kind, partner_transaction_id: row.partner_transaction_id })
        .first("id");
      throw earnErrors.make("duplicate-transaction", `Transaction ${String(row.partner_transaction_id)} was already sent (as ${existing.id}).`, {
        transaction_id: existing.id,
      });
    }
  }

  async function computeEarn(conn: DbOrTrx, contract: ContractTerms, partnerId: string, memberId: string, input: EarnInput, occurredAt: Date) {
    checkCurrency(contract, input.currency);
    const burnMinor = BigInt(input.burn?.amount_minor ?? 0);
    const amount = BigInt(input.amount_minor);
    if (burnMinor > amount) throw earnErrors.make("burn-exceeds-amount", `${burnMinor} paid with points exceeds the amount ${amount}.`);
    const computed = await rules.compute({
      partnerId,
      memberId,
      contract,
      earnableMinor: amount - burnMinor,
      currency: input.currency,
      occurredAt,
      lines: input.lines ?? [],
      conn,
    });
    return { contract, computed };
  }

  return {
    /** POST /v1/earn?dry_run=true: the same answer, nothing written. */
    async previewEarn(partnerId: string, input: EarnInput) {
      const occurredAt = input.occurred_at ? new Date(input.occurred_at) : clock.now();
      const terms = await activePartnerContract(db, partnerId, occurredAt);
      const { memberId } = await members.resolve(db, partnerId, input);
      const { contract, computed } = await computeEarn(db, terms, partnerId, memberId, input, occurredAt);
      const bal = await balanceView(db, memberId);
      const burned = input.burn?.points ?? 0;
      return {
        ...earnAnswer({ transactionId: null, dryRun: true, input, memberId, occurredAt, contract, computed, pointsBurned: burned }),
        lot: null,
        balance: { ...bal, available: bal.available - burned + Number(computed.points) },
      };
    },

    /** Credits points for a purchase; with `burn`, pays part of it with points in the same step. */
    async earn(trx: Trx, partnerId: string, input: EarnInput) {
      const now = clock.now();
      const occurredAt = input.occurred_at ? new Date(input.occurred_at) : now;
      const terms = await activePartnerContract(trx, partnerId, occurredAt);
      const { memberId } = await members.resolve(trx, partnerId, input, { link: input.card_number !== undefined });
      const { contract, computed } = await computeEarn(trx, terms, partnerId, memberId, input, occurredAt);
      const id = newId("txn");
      const ref = { type: "transaction", id };
      const burnPoints = BigInt(input.burn?.points ?? 0);
      await insertTransaction(trx, {
        id,
        partner_id: partnerId,
        partner_transaction_id: input.partner_transaction_id,
        kind: burnPoints > 0n ? "purchase" : "earn",
        member_id: memberId,
        amount_minor: input.amount_minor,
        currency: input.currency,
        occurred_at: occurredAt,
        contract_version_id: contract.id,
        points_earned: computed.points.toString(),
        points_burned: burnPoints.toString(),
        burn_amount_minor: input.burn?.amount_minor ?? 0,
        ledger_ref_type: ref.type,
        ledger_ref_id: id,
        computation: JSON.stringify({ items: computed.items, lines: input.lines ?? [] }),
      });
      if (burnPoints > 0n) {
        await ledger.burn(trx, { memberId, partnerId, points: burnPoints, occurredAt, now, ref, contractVersionId: contract.id });
        await recordEvent(trx, {
          type: "burn.posted",
          partnerId,
          occurredAt,
          data: { transaction_id: id, member_id: memberId, points: Number(burnPoints), partner_transaction_id: input.partner_transaction_id },
        });
      }
      const expiresAt = new Date(occurredAt.getTime() + contract.pointsValidityDays * DAY_MS);
      const res = await ledger.earn(trx, {
        memberId,
        partnerId,
        points: computed.points,
        contractVersionId: contract.id,
        earnedAt: occurredAt,
        expiresAt,
        ref,
        funding: fundingOf(partnerId, computed.items as Array<{ points?: number; funded_by?: string }>),
      });
      if (res.entryId) {
        await recordEvent(trx, {
          type: "earn.posted",
          partnerId,
          occurredAt,
          data: { transaction_id: id, member_id: memberId, points: Number(computed.points), partner_transaction_id: input.partner_transaction_id },
        });
      }
      return {
        ...earnAnswer({ transactionId: id, dryRun: false, input, memberId, occurredAt, contract, computed, pointsBurned: Number(burnPoints) }),
        lot: res.lotId ? { id: res.lotId, expires_at: expiresAt.toISOString() } : null,
        balance: res.balances ? view(res.balances) : await balanceView(trx, memberId),
      };
    },

    /** Spends points at once. */
    async burn(trx: Trx, partnerId: string, input: BurnInput) {
      const now = clock.now();
      const occurredAt = input.occurred_at ? new Date(input.occurred_at) : now;
      const contract = await activePartnerContract(trx, partnerId, occurredAt);
      const { memberId } = await members.resolve(trx, partnerId, input, { link: input.card_number !== undefined });
      checkCurrency(contract, input.currency);
      const id = newId("txn");
      const ref = { type: "transaction", id };
      await insertTransaction(trx, {
        id,
        partner_id: partnerId,
        partner_transaction_id: input.partner_transaction_id,
        kind: "burn",
        member_id: memberId,
        amount_minor: input.amount_minor,
        currency: input.currency,
        occurred_at: occurredAt,
        contract_version_id: contract.id,
        points_burned: String(input.points),
        burn_amount_minor: input.amount_minor,
        ledger_ref_type: ref.type,
        ledger_ref_id: id,
      });
      const burned = await ledger.burn(trx, { memberId, partnerId, points: BigInt(input.points), occurredAt, now, ref, contractVersionId: contract.id });
      await recordEvent(trx, {
        type: "burn.posted",
        partnerId,
        occurredAt,
        data: { transaction_id: id, member_id: memberId, points: input.points, partner_transaction_id: input.partner_transaction_id },
      });
      return { ...burnAnswer({ transactionId: id, input, memberId, occurredAt }), balance: view(burned.balances) };
    },

    /**
     * Refunds all or part of a purchase. Points come back in proportion to the refunded share,
     * computed on the cumulative refunded amount (so partial refunds add up exactly to a full one):
     * earned points clawed back = floor(points_earned × refunded ÷ amount) − already clawed back,
     * points paid with given back = floor(points_burned × refunded ÷ amount) − already given back.
     */
    async refund(trx: Trx, partnerId: string, transactionId: string, input: RefundInput) {
      const t: TransactionRow | undefined = await trx("point_transactions").where({ id: transactionId, partner_id: partnerId }).forUpdate().first("*");
      if (!t) throw earnErrors.make("transaction-not-found", `No transaction ${transactionId}.`);
      const amount = BigInt(t.amount_minor);
      const left = amount - BigInt(t.refunded_minor);
      const refundMinor = input.amount_minor === undefined ? left : BigInt(input.amount_minor);
      if (refundMinor <= 0n || refundMinor > left) {
        throw earnErrors.make("refund-exceeds-transaction", `${left} minor units are left to refund on ${transactionId}; ${refundMinor} was asked.`, {
          refundable_minor: Number(left),
        });
      }
      const refundedAfter = BigInt(t.refunded_minor) + refundMinor;
      const share = (points: bigint) => (amount === 0n ? points : (points * refundedAfter) / amount);
      const claw = share(BigInt(t.points_earned)) - BigInt(t.points_clawed_back);
      const restore = share(BigInt(t.points_burned)) - BigInt(t.points_restored);
      const now = clock.now();
      const occurredAt = input.occurred_at ? new Date(input.occurred_at) : now;
      const id = newId("rfd");
      const inserted = (await trx("point_refunds")
        .insert({
          id,
          transaction_id: t.id,
          partner_id: partnerId,
          partner_refund_id: input.refund_id,
          amount_minor: refundMinor.toString(),
          points_clawed_back: claw.toString(),
          points_restored: restore.toString(),
          from_balance: 0,
          to_debt: 0,
          to_recovery: 0,
          occurred_at: occurredAt,
        })
        .onConflict(["partner_id", "partner_refund_id"])
        .ignore()
        .returning("id")) as unknown[];
      if (inserted.length === 0) throw earnErrors.make("duplicate-refund", `Refund ${input.refund_id} was already sent.`);
      const contract = await contractById(trx, t.contract_version_id);
      const ref = { type: t.ledger_ref_type, id: t.ledger_ref_id };
      if (restore > 0n) {
        await ledger.restoreBurned(trx, { memberId: t.member_id, partnerId, points: restore, occurredAt, ref, contractVersionId: contract.id });
      }
      let clawed = { fromBalance: 0n, toDebt: 0n, toRecovery: 0n };
      if (claw > 0n) {
        const preferLotIds = (await ledger.lotsOfRef(trx, ref)).map((l) => l.id);
        clawed = await ledger.clawback(trx, {
          memberId: t.member_id,
          partnerId,
          points: claw,
          preferLotIds,
          policy: contract.refundPolicy,
          negativeFloor: contract.negativeFloor,
          occurredAt,
          ref: { type: "refund", id },
          contractVersionId: contract.id,
          memo: { transaction_id: t.id },
          funding: refundFunding(
            fundingOf(partnerId, (typeof t.computation === "string" ? JSON.parse(t.computation) : t.computation)?.items ?? []),
            BigInt(t.points_earned),
            BigInt(t.points_clawed_back),
            claw,
          ),
        });
        await trx("point_refunds")
          .where({ id })
          .update({ from_balance: clawed.fromBalance.toString(), to_debt: clawed.toDebt.toString(), to_recovery: clawed.toRecovery.toString() });
      }
      await trx("point_transactions")
        .where({ id: t.id })
        .update({
          refunded_minor: refundedAfter.toString(),
          points_clawed_back: (BigInt(t.points_clawed_back) + claw).toString(),
          points_restored: (BigInt(t.points_restored) + restore).toString(),
        });
      await recordEvent(trx, {
        type: "refund.posted",
        partnerId,
        occurredAt,
        data: {
          refund_id: id,
          // The partner's own id (the answer's `refund_id`), as earn.posted carries partner_transaction_id.
          partner_refund_id: input.refund_id,
          transaction_id: t.id,
          member_id: t.member_id,
          amount_minor: Number(refundMinor),
          points_clawed_back: Number(claw),
          points_restored: Number(restore),
        },
      });
      return {
        id,
        refund_id: input.refund_id,
        transaction_id: t.id,
        member_id: t.member_id,
        amount_minor: Number(refundMinor),
        currency: t.currency,
        occurred_at: occurredAt.toISOString(),
        points_clawed_back: Number(claw),
        points_restored: Number(restore),
        clawback: { from_balance: Number(clawed.fromBalance), to_debt: Number(clawed.toDebt), to_recovery: Number(clawed.toRecovery) },
        transaction: { amount_minor: Number(amount), refunded_minor: Number(refundedAfter), refundable_minor: Number(amount - refundedAfter) },
        balance: await balanceView(trx, t.member_id),
      };
    },

    /** Holds points for a checkout; they release themselves at expires_at unless captured. */
    async hold(trx: Trx, partnerId: string, input: RedemptionInput) {
      const now = clock.now();
      const occurredAt = input.occurred_at ? new Date(input.occurred_at) : now;
      const contract = await activePartnerContract(trx, partnerId, occurredAt);
      const { memberId } = await members.resolve(trx, partnerId, input, { link: input.card_number !== undefined });
      checkCurrency(contract, input.currency);
      const id = newId("red");
      const holdMs = (input.hold_minutes ?? 15) * 60_000;
      const expiresAt = new Date(now.getTime() + holdMs);
      const inserted = (await trx("redemptions")
        .insert({
          id,
          partner_id: partnerId,
          partner_transaction_id: input.partner_transaction_id,
          member_id: memberId,
          points: String(input.points),
          amount_minor: String(input.amount_minor),
          currency: input.currency,
          contract_version_id: contract.id,
          occurred_at: occurredAt,
          expires_at: expiresAt,
          created_at: now,
          updated_at: now,
        })
        .onConflict(["partner_id", "partner_transaction_id"])
        .ignore()
        .returning("id")) as unknown[];
      if (inserted.length === 0) throw earnErrors.make("duplicate-transaction", `A redemption for ${input.partner_transaction_id} already exists.`);
      await ledger.hold(trx, { memberId, partnerId, points: BigInt(input.points), occurredAt, now, ref: { type: "redemption", id }, contractVersionId: contract.id });
      await enqueueInTx(trx, "ledger.redemption-expire", { redemptionId: id }, { jobId: `redemption-expire:${id}`, delayMs: holdMs });
      await recordEvent(trx, { type: "redemption.held", partnerId, occurredAt, data: { redemption_id: id, member_id: memberId, points: input.points } });
      const row: RedemptionRow = await trx("redemptions").where({ id }).first("*");
      return { ...redemptionView(row), balance: await balanceView(trx, memberId) };
    },

    async capture(trx: Trx, partnerId: string, redemptionId: string, input: { points?: number }) {
      const r = await lockHeld(trx, partnerId, redemptionId);
      const held = BigInt(r.points);
      const capture = input.points === undefined ? held : BigInt(input.points);
      if (capture > held) throw earnErrors.make("capture-exceeds-hold", `${held} points are held; ${capture} cannot be captured.`, { held_points: Number(held) });
      const now = clock.now();
      const ref = { type: "redemption", id: r.id };
      await ledger.settleHold(trx, { memberId: r.member_id, partnerId, held, capture, occurredAt: now, ref, contractVersionId: r.contract_version_id });
      const amountMinor = (BigInt(r.amount_minor) * capture) / held;
      const txnId = newId("txn");
      await insertTransaction(trx, {
        id: txnId,
        partner_id: partnerId,
        partner_transaction_id: r.partner_transaction_id,
        kind: "redemption",
        member_id: r.member_id,
        amount_minor: amountMinor.toString(),
        currency: r.currency,
        occurred_at: now,
        contract_version_id: r.contract_version_id,
        points_burned: capture.toString(),
        burn_amount_minor: amountMinor.toString(),
        ledger_ref_type: ref.type,
        ledger_ref_id: ref.id,
      });
      await trx("redemptions").where({ id: r.id }).update({ status: "captured", captured_points: capture.toString(), transaction_id: txnId, updated_at: now });
      await recordEvent(trx, {
        type: "redemption.captured",
        partnerId,
        occurredAt: now,
        data: { redemption_id: r.id, transaction_id: txnId, member_id: r.member_id, points: Number(capture), released_points: Number(held - capture) },
      });
      const row: RedemptionRow = await trx("redemptions").where({ id: r.id }).first("*");
      return { ...redemptionView(row), balance: await balanceView(trx, r.member_id) };
    },

    async void(trx: Trx, partnerId: string, redemptionId: string) {
      const r = await lockHeld(trx, partnerId, redemptionId);
      const now = clock.now();
      await ledger.settleHold(trx, { memberId: r.member_id, partnerId, held: BigInt(r.points), capture: 0n, occurredAt: now, ref: { type: "redemption", id: r.id } });
      await trx("redemptions").where({ id: r.id }).update({ status: "voided", updated_at: now });
      await recordEvent(trx, { type: "redemption.voided", partnerId, occurredAt: now, data: { redemption_id: r.id, member_id: r.member_id, points: Number(r.points) } });
      const row: RedemptionRow = await trx("redemptions").where({ id: r.id }).first("*");
      return { ...redemptionView(row), balance: await balanceView(trx, r.member_id) };
    },

    async getRedemption(partnerId: string, redemptionId: string) {
      const row: RedemptionRow | undefined = await db("redemptions").where({ id: redemptionId, partner_id: partnerId }).first("*");
      if (!row) throw earnErrors.make("redemption-not-found", `No redemption ${redemptionId}.`);
      return redemptionView(row);
    },

    /** Releases one hold if it is still held and past its expiry (the job's work; safe to repeat). */
    async expireHold(redemptionId: string): Promise<boolean> {
      return db.transaction(async (trx) => {
        const r: RedemptionRow | undefined = await trx("redemptions").where({ id: redemptionId }).forUpdate().first("*");
        const now = clock.now();
        if (!r || r.status !== "held" || new Date(r.expires_at) > now) return false;
        await ledger.settleHold(trx, { memberId: r.member_id, partnerId: r.partner_id, held: BigInt(r.points), capture: 0n, occurredAt: now, ref: { type: "redemption", id: r.id } });
        await trx("redemptions").where({ id: r.id }).update({ status: "expired", updated_at: now });
        await recordEvent(trx, { type: "redemption.expired", partnerId: r.partner_id, occurredAt: now, data: { redemption_id: r.id, member_id: r.member_id, points: Number(r.points) } });
        return true;
      });
    },

    /** Holds past their expiry that no job released yet (a sweep behind the per-hold jobs). */
    async dueHolds(limit = 500): Promise<string[]> {
      const rows: Array<{ id: string }> = await db("redemptions").where({ status: "held" }).andWhere("expires_at", "<=", clock.now()).orderBy("expires_at").limit(limit).select("id");
      return rows.map((r) => r.id);
    },

    /**
     * The expiry run: lots past their date go to breakage (`points.expired`, to the issuing
     * partner), and lots expiring within `noticeDays` are announced once (`points.expiring_soon`).
     */
    async runExpiry(opts: { noticeDays?: number; batch?: number } = {}): Promise<{ expiredPoints: bigint; members: number; announcedLots: number }> {
      const now = clock.now();
      let expiredPoints = 0n;
      let count = 0;
      for (;;) {
        const due = await ledger.membersWithDueLots(db, now, opts.batch ?? 200);
        if (due.length === 0) break;
        for (const memberId of due) {
          await db.transaction(async (trx) => {
            const res = await ledger.expireDue(trx, memberId, now);
            expiredPoints += res.total;
            const byPartner = new Map<string, bigint>();
            for (const l of res.lots) byPartner.set(l.issuingPartnerId, (byPartner.get(l.issuingPartnerId) ?? 0n) + l.points);
            for (const [partnerId, points] of byPartner) {
              await recordEvent(trx, { type: "points.expired", partnerId, occurredAt: now, data: { member_id: memberId, points: Number(points), entry_id: res.entryId } });
            }
          });
          count++;
        }
      }
      let announced = 0;
      const until = new Date(now.getTime() + (opts.noticeDays ?? 30) * DAY_MS);
      for (;;) {
        const n = await db.transaction(async (trx) => {
          const lots = await ledger.takeLotsToAnnounce(trx, now, until, opts.batch ?? 500);
          const groups = new Map<string, { partnerId: string; memberId: string; points: bigint; expiresAt: Date }>();
          for (const l of lots) {
            const k = `${l.memberId}|${l.issuingPartnerId}`;
            const g = groups.get(k);
            if (g) {
              g.points += l.remaining;
              if (l.expiresAt < g.expiresAt) g.expiresAt = l.expiresAt;
            } else groups.set(k, { partnerId: l.issuingPartnerId, memberId: l.memberId, points: l.remaining, expiresAt: l.expiresAt });
          }
          for (const g of groups.values()) {
            await recordEvent(trx, {
              type: "points.expiring_soon",
              partnerId: g.partnerId,
              occurredAt: now,
              data: { member_id: g.memberId, points: Number(g.points), expires_at: g.expiresAt.toISOString() },
            });
          }
          return lots.length;
        });
        announced += n;
        if (n === 0) break;
      }
      return { expiredPoints, members: count, announcedLots: announced };
    },

    /** Available, held and owed points, and what expires next (grouped by date). */
    async balance(partnerId: string, memberId: string) {
      if (!(await members.canSee(db, partnerId, memberId))) throw memberAccessErrors.make("member-not-found", `No member ${memberId}.`);
      const now = clock.now();
      const [b, lots] = await Promise.all([ledger.balances(db, memberId), ledger.openLots(db, memberId)]);
      // Lots past their date that the expiry job has not reached yet are not spendable.
      const due = lots.filter((l) => l.expiresAt <= now).reduce((s, l) => s + l.remaining, 0n);
      const byDate = new Map<string, bigint>();
      for (const l of lots) {
        if (l.expiresAt <= now) continue;
        const d = l.expiresAt.toISOString();
        byDate.set(d, (byDate.get(d) ?? 0n) + l.remaining);
      }
      const expiring = [...byDate.entries()].slice(0, 5).map(([expires_at, points]) => ({ points: Number(points), expires_at }));
      const available = b.points - due;
      return {
        member_id: memberId,
        available: Number(available),
        held: Number(b.held),
        pending: 0,
        owed: Number(-b.debt),
        net: Number(available + b.debt),
        expiring,
        as_of: now.toISOString(),
      };
    },

    /** The member's movements, newest first, in words a member understands. */
    async history(partnerId: string, memberId: string, opts: { cursor?: string; limit?: number }) {
      if (!(await members.canSee(db, partnerId, memberId))) throw memberAccessErrors.make("member-not-found", `No member ${memberId}.`);
      const limit = Math.min(Math.max(opts.limit ?? 20, 1), 100);
      const before = opts.cursor ? decodeCursor(opts.cursor, /^ent_[0-9a-z]{26}$/) : undefined;
      const rows = await ledger.history(db, memberId, { before, limit: limit + 1 });
      const page = rows.slice(0, limit);
      const words: Record<string, string> = {
        earn: "Points earned",
        burn: "Points spent",
        hold: "Points reserved for a purchase",
        capture: "Reserved points spent",
        release: "Points returned",
        refund: "Points taken back after a refund",
        expire: "Points expired",
        adjust: "Correction",
      };
      return {
        items: page.map((e) => ({
          id: e.id,
          type: e.kind,
          // A partial capture spends part of a reservation and returns the rest: what the member
          // can spend goes up by the rest, and the words say so.
          description: e.kind === "capture" && e.points > 0n ? "Reserved points spent; the rest returned" : (words[e.kind] ?? e.kind),
          points: Number(e.points),
          partner_id: e.partnerId === partnerId ? e.partnerId : null,
          at_this_partner: e.partnerId === partnerId,
          occurred_at: e.occurredAt.toISOString(),
        })),
        next_cursor: rows.length > limit ? encodeCursor(page[page.length - 1]!.id) : null,
      };
    },
  };

  async function lockHeld(trx: Trx, partnerId: string, redemptionId: string): Promise<RedemptionRow> {
    const r: RedemptionRow | undefined = await trx("redemptions").where({ id: redemptionId, partner_id: partnerId }).forUpdate().first("*");
    if (!r) throw earnErrors.make("redemption-not-found", `No redemption ${redemptionId}.`);
    if (r.status === "expired" || (r.status === "held" && new Date(r.expires_at) <= clock.now())) {
      throw earnErrors.make("redemption-expired", `Redemption ${r.id} expired at ${iso(r.expires_at)}; hold the points again.`, { redemption_status: "expired" });
    }
    if (r.status !== "held") throw earnErrors.make("redemption-not-held", `Redemption ${r.id} is ${r.status}.`, { redemption_status: r.status });
    return r;
  }
}

export type EarnService = ReturnType<typeof createEarnService>;
