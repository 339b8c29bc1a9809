import type { DbOrTrx, Trx } from "../infra/db.ts";
import { newId } from "../infra/ids.ts";
import type { AccountKind, NewEntry } from "./ledger.types.ts";
// A cycle with ledger.service.ts, which assembles this module: accountIds is only read at call time.
import { accountIds } from "./ledger.service.ts";

/**
 * The ledger's set-based operations, for callers that move value for many members at once (a bank's
 * clearing file): accounts opened in one statement, many entries posted in one statement, many
 * points earns in one (ledger_earn_many). They write the same rows as the one-at-a-time operations and the database
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
   * Many points earns at once, the same as one `earn` each, in input order, in one statement:
   * `ledger_earn_many` (migration 20261201170000; its body is `ledger_earn_rows` since 20261202000000,
   * which the batched earn calls with its rows) opens the
   * accounts, locks the members' as lockMember does, repays each member's points debt first (earlier
   * earns of the same member in the input first) and makes a lot of the rest.
   */
  async function earnMany(trx: Trx, inputs: BatchEarn[]): Promise<Array<{ entryId: string | null; lotId: string | null; repaidDebt: bigint }>> {
    for (const i of inputs) if (i.points < 0n) throw new Error("earn of negative points");
    const results: Array<{ entryId: string | null; lotId: string | null; repaidDebt: bigint }> = inputs.map(() => ({ entryId: null, lotId: null, repaidDebt: 0n }));
    const items = inputs.flatMap((i, idx) =>
      i.points > 0n
        ? [
            {
              idx,
              member_id: i.memberId,
              partner_id: i.partnerId,
              points: i.points.toString(),
              contract_version_id: i.contractVersionId,
              earned_at: i.earnedAt.toISOString(),
              expires_at: i.expiresAt.toISOString(),
              ref_type: i.ref?.type ?? null,
              ref_id: i.ref?.id ?? null,
              entry_id: newId("ent"),
              // Used only if some points are left once the debt is repaid.
              lot_id: newId("lot"),
              memo: i.memo ?? null,
            },
          ]
        : [],
    );
    if (items.length === 0) return results;
    const rows = rowsOf<{ idx: number; lot_id: string | null; repaid: bigint }>(
      await trx.raw("SELECT idx, lot_id, repaid FROM ledger_earn_many(?::jsonb)", [JSON.stringify(items)]),
    );
    const entryOf = new Map(items.map((it) => [it.idx, it.entry_id]));
    for (const r of rows) results[r.idx] = { entryId: entryOf.get(r.idx)!, lotId: r.lot_id, repaidDebt: BigInt(r.repaid) };
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
