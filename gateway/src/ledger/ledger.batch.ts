import type { DbOrTrx, Trx } from "../infra/db.ts";
import { newId } from "../infra/ids.ts";
import { POINTS, type AccountKind, type NewEntry } from "./ledger.types.ts";
// A cycle with ledger.service.ts, which assembles this module: accountIds is only read at call time.
import { accountIds } from "./ledger.service.ts";

/**
 * The ledger's set-based operations, for callers that move value for many members at once (a bank's
 * clearing file): accounts opened in one statement, many entries posted in one statement, many
 * points earns in three. They write the same rows as the one-at-a-time operations and the database
 * checks them the same way (balanced entries, maintained balances, floors).
 */

/** An account to open: ids are deterministic, so opening is idempotent (ON CONFLICT DO NOTHING). */
export interface AccountSpec {
  id: string;
  kind: AccountKind;
  /** 'PTS' or an ISO 4217 currency (amounts in minor units). */
  asset: string;
  memberId?: string | null;
  partnerId?: string | null;
  /**
   * Maintained: a balance row every posting moves (a member's accounts), checked against `floor`
   * when one is given. Not maintained: the network's own accounts, read as the sum of postings
   * (a maintained row there would serialise every posting of a partner).
   */
  maintained: boolean;
  floor?: bigint | null;
}

/**
 * A lot an entry creates (points earned with their provenance and expiry). Batches post the points of
 * card purchases, which the partner where they were earned funds: the lot's `funded_by` is that
 * partner. Operator-funded points go through `ledger.earn` with its `funding`.
 */
export interface BatchLot {
  id: string;
  memberId: string;
  accountId: string;
  issuingPartnerId: string;
  contractVersionId: string | null;
  earnedAt: Date;
  expiresAt: Date;
  amount: bigint;
}

export interface BatchEarn {
  memberId: string;
  partnerId: string;
  points: bigint;
  contractVersionId: string | null;
  earnedAt: Date;
  expiresAt: Date;
  ref: NewEntry["ref"];
  memo?: Record<string, unknown>;
}

const rowsOf = <T>(r: unknown): T[] => (r as { rows: T[] }).rows;
const min = (a: bigint, b: bigint) => (a < b ? a : b);

export function createLedgerBatch() {
  // Per transaction: an account opened in a transaction that rolls back does not exist afterwards.
  const openedIn = new WeakMap<Trx, Set<string>>();

  async function openAccounts(trx: Trx, specs: AccountSpec[]): Promise<void> {
    let opened = openedIn.get(trx);
    if (!opened) openedIn.set(trx, (opened = new Set()));
    const seen = new Set<string>();
    const todo = specs.filter((s) => !opened.has(s.id) && !seen.has(s.id) && seen.add(s.id));
    if (todo.length === 0) return;
    const rows = todo.map((s) => ({
      id: s.id,
      kind: s.kind,
      asset: s.asset,
      member_id: s.memberId ?? null,
      partner_id: s.partnerId ?? null,
      balance: s.maintained ? "0" : null,
      floor: s.floor === null || s.floor === undefined ? null : s.floor.toString(),
    }));
    // Sorted, so two transactions opening overlapping sets wait for each other instead of deadlocking.
    await trx.raw(
      `INSERT INTO ledger_accounts (id, kind, asset, member_id, partner_id, balance, floor)
       SELECT id, kind, asset, member_id, partner_id, balance, floor
         FROM jsonb_to_recordset(?::jsonb) AS x(id text, kind text, asset text, member_id text, partner_id text, balance bigint, floor bigint)
        ORDER BY id
       ON CONFLICT DO NOTHING`,
      [JSON.stringify(rows)],
    );
    for (const s of todo) opened.add(s.id);
  }

  /**
   * Posts many journal entries (and the lots some of them create) in one statement; returns their
   * ids in order. Each entry must balance per asset (checked here, and by the database after the statement).
   */
  async function postMany(trx: Trx, entries: Array<NewEntry & { lot?: Omit<BatchLot, "accountId"> & { accountId?: string } }>): Promise<string[]> {
    const ids: string[] = [];
    const e: unknown[] = [];
    const l: unknown[] = [];
    const p: unknown[] = [];
    for (const entry of entries) {
      const postings = entry.postings.filter((x) => x.amount !== 0n);
      const sums = new Map<string, bigint>();
      for (const x of postings) sums.set(x.asset, (sums.get(x.asset) ?? 0n) + x.amount);
      for (const [asset, sum] of sums) if (sum !== 0n) throw new Error(`unbalanced ${entry.kind} entry: ${asset} sums to ${sum}`);
      const id = newId("ent");
      ids.push(id);
      e.push({
        id,
        kind: entry.kind,
        partner_id: entry.partnerId ?? null,
        member_id: entry.memberId ?? null,
        ref_type: entry.ref?.type ?? null,
        ref_id: entry.ref?.id ?? null,
        contract_version_id: entry.contractVersionId ?? null,
        occurred_at: entry.occurredAt.toISOString(),
        memo: entry.memo ?? null,
      });
      for (const x of postings) p.push({ entry_id: id, account_id: x.accountId, asset: x.asset, amount: x.amount.toString() });
      if (entry.lot) {
        const lot = entry.lot;
        l.push({
          id: lot.id,
          member_id: lot.memberId,
          account_id: lot.accountId ?? accountIds.points(lot.memberId),
          issuing_partner_id: lot.issuingPartnerId,
          contract_version_id: lot.contractVersionId,
          entry_id: id,
          earned_at: lot.earnedAt.toISOString(),
          expires_at: lot.expiresAt.toISOString(),
          amount: lot.amount.toString(),
        });
      }
    }
    if (ids.length === 0) return ids;
    await trx.raw(
      `WITH e AS (
         INSERT INTO ledger_entries (id, kind, partner_id, member_id, ref_type, ref_id, contract_version_id, occurred_at, memo)
         SELECT id, kind, partner_id, member_id, ref_type, ref_id, contract_version_id, occurred_at, memo
           FROM jsonb_to_recordset(?::jsonb) AS x(id text, kind text, partner_id text, member_id text, ref_type text, ref_id text, contract_version_id text, occurred_at timestamptz, memo jsonb)
       ), l AS (
         INSERT INTO ledger_lots (id, member_id, account_id, issuing_partner_id, contract_version_id, entry_id, earned_at, expires_at, amount, remaining, funded_by)
         SELECT id, member_id, account_id, issuing_partner_id, contract_version_id, entry_id, earned_at, expires_at, amount, amount, 'partner:' || issuing_partner_id
           FROM jsonb_to_recordset(?::jsonb) AS x(id text, member_id text, account_id text, issuing_partner_id text, contract_version_id text, entry_id text, earned_at timestamptz, expires_at timestamptz, amount bigint)
       )
       INSERT INTO ledger_postings (entry_id, account_id, asset, amount)
       SELECT entry_id, account_id, asset, amount
         FROM jsonb_to_recordset(?::jsonb) AS x(entry_id text, account_id text, asset text, amount bigint)`,
      [JSON.stringify(e), JSON.stringify(l), JSON.stringify(p)],
    );
    return ids;
  }

  /**
   * Many points earns at once, the same as one `earn` each, in input order: the members' accounts
   * (and the partners') are opened and the members' locked in one statement each, every earn first
   * repays the member's points debt and the rest becomes a lot; one statement writes them all.
   */
  async function earnMany(trx: Trx, inputs: BatchEarn[]): Promise<Array<{ entryId: string | null; lotId: string | null; repaidDebt: bigint }>> {
    for (const i of inputs) if (i.points < 0n) throw new Error("earn of negative points");
    const todo = inputs.filter((i) => i.points > 0n);
    if (todo.length === 0) return inputs.map(() => ({ entryId: null, lotId: null, repaidDebt: 0n }));
    const members = [...new Set(todo.map((i) => i.memberId))];
    const partners = [...new Set(todo.map((i) => i.partnerId))];
    const memberSpec = (id: string, kind: AccountKind, m: string): AccountSpec => ({ id, kind, asset: POINTS, memberId: m, maintained: true, floor: 0n });
    const networkSpec = (id: string, kind: AccountKind, partnerId: string | null): AccountSpec => ({ id, kind, asset: POINTS, partnerId, maintained: false });
    await openAccounts(trx, [
      ...members.flatMap((m) => [
        memberSpec(accountIds.points(m), "member_points", m),
        memberSpec(accountIds.held(m), "member_points_held", m),
        memberSpec(accountIds.debt(m), "member_points_debt", m),
      ]),
      ...partners.flatMap((p) => [
        networkSpec(accountIds.issuance(p), "partner_issuance", p),
        networkSpec(accountIds.redemption(p), "partner_redemption", p),
        networkSpec(accountIds.recovery(p), "partner_recovery", p),
      ]),
      networkSpec(accountIds.breakage, "breakage", null),
    ]);
    // The same lock as lockMember takes, for every member of the batch, in id order.
    const locked = rowsOf<{ id: string; balance: bigint }>(
      await trx.raw(
        `SELECT id, balance FROM ledger_accounts
          WHERE id = ANY (ARRAY(SELECT jsonb_array_elements_text(?::jsonb)))
          ORDER BY id FOR UPDATE`,
        [JSON.stringify(members.flatMap((m) => [accountIds.points(m), accountIds.held(m), accountIds.debt(m)]))],
      ),
    );
    const debt = new Map(locked.map((r) => [r.id, BigInt(r.balance)]));
    const results: Array<{ entryId: string | null; lotId: string | null; repaidDebt: bigint }> = [];
    const entries: Parameters<typeof postMany>[1] = [];
    const posted: number[] = [];
    for (const input of inputs) {
      if (input.points === 0n) {
        results.push({ entryId: null, lotId: null, repaidDebt: 0n });
        continue;
      }
      const debtId = accountIds.debt(input.memberId);
      const owed = debt.get(debtId) ?? 0n;
      const repay = min(input.points, -owed);
      debt.set(debtId, owed + repay);
      const credited = input.points - repay;
      const lotId = credited > 0n ? newId("lot") : null;
      entries.push({
        kind: "earn",
        partnerId: input.partnerId,
        memberId: input.memberId,
        ...(input.ref ? { ref: input.ref } : {}),
        contractVersionId: input.contractVersionId,
        occurredAt: input.earnedAt,
        ...(input.memo ? { memo: input.memo } : {}),
        postings: [
          { accountId: accountIds.issuance(input.partnerId), asset: POINTS, amount: -input.points },
          { accountId: debtId, asset: POINTS, amount: repay },
          { accountId: accountIds.points(input.memberId), asset: POINTS, amount: credited },
        ],
        ...(lotId
          ? {
              lot: {
                id: lotId,
                memberId: input.memberId,
                issuingPartnerId: input.partnerId,
                contractVersionId: input.contractVersionId,
                earnedAt: input.earnedAt,
                expiresAt: input.expiresAt,
                amount: credited,
              },
            }
          : {}),
      });
      posted.push(results.length);
      results.push({ entryId: null, lotId, repaidDebt: repay });
    }
    const ids = await postMany(trx, entries);
    posted.forEach((k, n) => (results[k]!.entryId = ids[n]!));
    return results;
  }

  return {
    /** Locks accounts (SELECT … FOR UPDATE, in id order) for the rest of the transaction; answers their balances. */
    async lockAccounts(trx: Trx, ids: string[]): Promise<Map<string, bigint | null>> {
      const rows = rowsOf<{ id: string; balance: bigint | null }>(
        await trx.raw("SELECT id, balance FROM ledger_accounts WHERE id = ANY (ARRAY(SELECT jsonb_array_elements_text(?::jsonb))) ORDER BY id FOR UPDATE", [JSON.stringify(ids)]),
      );
      return new Map(rows.map((r) => [r.id, r.balance === null ? null : BigInt(r.balance)]));
    },

    /** A maintained account's balance (0 when it was never opened). */
    async accountBalance(conn: DbOrTrx, id: string): Promise<bigint> {
      const row: { balance: bigint | null } | undefined = await conn("ledger_accounts").where({ id }).first("balance");
      return BigInt(row?.balance ?? 0n);
    },

    openAccounts,
    /** Opens one account if it is new (idempotent). */
    openAccount: (trx: Trx, spec: AccountSpec) => openAccounts(trx, [spec]),
    postMany,
    earnMany,
  };
}
