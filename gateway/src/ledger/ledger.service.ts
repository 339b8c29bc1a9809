import type { Db, DbOrTrx, Trx } from "../infra/db.ts";
import type { Logger } from "../infra/logger.ts";
import { newId } from "../infra/ids.ts";
import { ledgerErrors } from "./ledger.errors.ts";
import { createLedgerBatch } from "./ledger.batch.ts";
import { POINTS, type EntryRef, type Lot, type LotMovement, type MemberBalances, type NewEntry, type Posting } from "./ledger.types.ts";

/**
 * The double-entry points ledger: the only writer of the ledger tables. Every operation runs in the
 * caller's transaction and starts by locking the member's accounts (SELECT … FOR UPDATE), so the
 * operations on one member are serial while different members proceed in parallel. The database
 * enforces the rest (balanced entries, append-only history, balances at or above their floors).
 *
 * Account ids are deterministic (`acc_pts_<member>`, `acc_iss_<partner>`), so no look-up precedes a
 * posting; accounts are created on first use.
 */
export const accountIds = {
  points: (memberId: string) => `acc_pts_${memberId}`,
  held: (memberId: string) => `acc_held_${memberId}`,
  debt: (memberId: string) => `acc_debt_${memberId}`,
  issuance: (partnerId: string) => `acc_iss_${partnerId}`,
  redemption: (partnerId: string) => `acc_red_${partnerId}`,
  recovery: (partnerId: string) => `acc_rec_${partnerId}`,
  breakage: "acc_breakage",
  /**
   * The operator's points account at a partner: points the operator's promotions (its rules, tier
   * multipliers) put into circulation with that partner's purchases — one per partner, so clearing
   * reads a partner's operator-funded points by account, like its own.
   */
  operatorFunding: (partnerId: string) => `acc_opf_${partnerId}`,
} as const;

/** Who pays for points: the operator, or a partner (`partner:<id>`), as the rules' `funded_by` says. */
export type FundedBy = "operator" | `partner:${string}`;

export interface Funding {
  fundedBy: FundedBy;
  points: bigint;
}

export const partnerFunded = (partnerId: string): FundedBy => `partner:${partnerId}`;

/** The ledger account that pays for a funder's points. */
function fundingAccount(f: FundedBy, issuingPartnerId: string): string {
  return f === "operator" ? accountIds.operatorFunding(issuingPartnerId) : accountIds.issuance(f.slice("partner:".length));
}

function fundingPartners(funding: Funding[]): string[] {
  return funding.filter((f) => f.fundedBy !== "operator").map((f) => f.fundedBy.slice("partner:".length));
}

/** One entry per funder (summed), in first-seen order; zero amounts dropped. */
function mergeFunding(funding: Funding[]): Funding[] {
  const by = new Map<FundedBy, bigint>();
  for (const f of funding) {
    if (f.points < 0n) throw new Error(`negative funding of ${f.fundedBy}`);
    by.set(f.fundedBy, (by.get(f.fundedBy) ?? 0n) + f.points);
  }
  return [...by].filter(([, p]) => p > 0n).map(([fundedBy, points]) => ({ fundedBy, points }));
}

/**
 * Splits `total` over the funders in proportion to their points, largest remainder: each gets
 * floor(total × points ÷ Σ points), the units left go one each to the largest remainders (ties: the
 * order given). No share exceeds its funder's points when total ≤ Σ points.
 */
export function splitByFunding(total: bigint, funding: Funding[]): bigint[] {
  const sum = funding.reduce((s, f) => s + f.points, 0n);
  if (sum === 0n) return funding.map(() => 0n);
  const shares = funding.map((f) => (total * f.points) / sum);
  let left = total - shares.reduce((s, x) => s + x, 0n);
  const order = funding.map((f, i) => ({ i, rem: (total * f.points) % sum })).sort((a, b) => (a.rem === b.rem ? a.i - b.i : a.rem > b.rem ? -1 : 1));
  for (const o of order) {
    if (left === 0n) break;
    shares[o.i]! += 1n;
    left -= 1n;
  }
  return shares;
}

interface AccountRow {
  id: string;
  kind: string;
  balance: bigint | null;
  floor: bigint | null;
}

interface LotRow {
  id: string;
  member_id: string;
  issuing_partner_id: string;
  contract_version_id: string | null;
  entry_id: string;
  earned_at: Date | string;
  expires_at: Date | string;
  amount: bigint;
  remaining: bigint;
  funded_by: FundedBy;
}

function rowsOf<T>(result: unknown): T[] {
  return (result as { rows: T[] }).rows;
}

function toLot(r: LotRow): Lot {
  return {
    id: r.id,
    memberId: r.member_id,
    issuingPartnerId: r.issuing_partner_id,
    contractVersionId: r.contract_version_id,
    entryId: r.entry_id,
    earnedAt: new Date(r.earned_at),
    expiresAt: new Date(r.expires_at),
    amount: BigInt(r.amount),
    remaining: BigInt(r.remaining),
    fundedBy: r.funded_by,
  };
}

const min = (a: bigint, b: bigint) => (a < b ? a : b);
const max = (a: bigint, b: bigint) => (a > b ? a : b);

export interface EarnInput {
  memberId: string;
  partnerId: string;
  points: bigint;
  contractVersionId: string | null;
  earnedAt: Date;
  expiresAt: Date;
  ref: EntryRef;
  memo?: Record<string, unknown>;
  /**
   * Who pays for the points (summing to `points`); all by `partnerId` when absent. Each funder's
   * points are posted to its own account and become a lot of their own.
   */
  funding?: Funding[];
}

export interface SpendInput {
  memberId: string;
  partnerId: string;
  points: bigint;
  occurredAt: Date;
  /** Lots past this instant are expired first, so a spend never uses points that are already void. */
  now: Date;
  ref: EntryRef;
  contractVersionId?: string | null;
  memo?: Record<string, unknown>;
}

export interface ClawbackInput {
  memberId: string;
  partnerId: string;
  points: bigint;
  /** Lots to take from first (those the refunded purchase created). */
  preferLotIds: string[];
  policy: "negative_balance" | "recovery_entry";
  /** The contract's negative floor (0 or below): how far the member's points debt may go. */
  negativeFloor: bigint;
  occurredAt: Date;
  ref: EntryRef;
  contractVersionId?: string | null;
  memo?: Record<string, unknown>;
  /** Whose points the refund takes back (summing to `points`); all `partnerId`'s when absent. */
  funding?: Funding[];
}

export interface ClawbackResult {
  entryId: string;
  fromBalance: bigint;
  toDebt: bigint;
  toRecovery: bigint;
}

interface NewLot {
  id: string;
  memberId: string;
  issuingPartnerId: string;
  contractVersionId: string | null;
  earnedAt: Date;
  expiresAt: Date;
  amount: bigint;
  fundedBy: FundedBy;
}

export interface HistoryEntry {
  id: string;
  kind: string;
  partnerId: string | null;
  occurredAt: Date;
  points: bigint;
}

export interface ExpiredLots {
  entryId: string | null;
  total: bigint;
  lots: Array<{ lotId: string; issuingPartnerId: string; points: bigint; expiresAt: Date }>;
}

export function createLedger(deps: { db: Db; log?: Logger }) {
  const { db } = deps;

  /**
   * Creates the member's accounts (and the partners' and the network's) if they are new, and locks
   * the member's three points accounts for the rest of the transaction. One round trip when the
   * accounts exist already.
   */
  async function lockMember(trx: Trx, memberId: string, partnerIds: string[] = [], operatorFundedAt: string | null = null): Promise<MemberBalances> {
    const values: Array<string | null> = [];
    const tuples: string[] = [];
    const add = (id: string, kind: string, member: string | null, partner: string | null, maintained: boolean) => {
      tuples.push(`(?, ?, 'PTS', ?, ?, ${maintained ? "0" : "NULL::bigint"}, ${maintained ? "0" : "NULL::bigint"})`);
      values.push(id, kind, member, partner);
    };
    add(accountIds.points(memberId), "member_points", memberId, null, true);
    add(accountIds.held(memberId), "member_points_held", memberId, null, true);
    add(accountIds.debt(memberId), "member_points_debt", memberId, null, true);
    for (const p of new Set(partnerIds)) {
      add(accountIds.issuance(p), "partner_issuance", null, p, false);
      add(accountIds.redemption(p), "partner_redemption", null, p, false);
      add(accountIds.recovery(p), "partner_recovery", null, p, false);
    }
    add(accountIds.breakage, "breakage", null, null, false);
    if (operatorFundedAt) add(accountIds.operatorFunding(operatorFundedAt), "funding", null, operatorFundedAt, false);
    const ids = [accountIds.points(memberId), accountIds.held(memberId), accountIds.debt(memberId)];
    const lockSql = "SELECT id, kind, balance, floor FROM ledger_accounts WHERE id IN (?, ?, ?) ORDER BY id FOR UPDATE";
    let rows = rowsOf<AccountRow>(
      await trx.raw(
        `WITH ins AS (INSERT INTO ledger_accounts (id, kind, asset, member_id, partner_id, balance, floor) VALUES ${tuples.join(", ")}
           ON CONFLICT DO NOTHING RETURNING id) ${lockSql}`,
        [...values, ...ids],
      ),
    );
    // Rows inserted by the statement itself are not visible to its own SELECT: read them again.
    if (rows.length < 3) rows = rowsOf<AccountRow>(await trx.raw(lockSql, ids));
    const by = new Map(rows.map((r) => [r.kind, r]));
    return {
      points: BigInt(by.get("member_points")!.balance!),
      held: BigInt(by.get("member_points_held")!.balance!),
      debt: BigInt(by.get("member_points_debt")!.balance!),
      debtFloor: BigInt(by.get("member_points_debt")!.floor!),
    };
  }

  /**
   * Writes one journal entry, its postings and (for an earn) its lot in one statement. The database
   * checks that it balances when the statement ends.
   */
  async function post(trx: Trx, entry: NewEntry, lots: NewLot[] = [], moves: LotMovement[] = []): Promise<string> {
    const postings = entry.postings.filter((p) => p.amount !== 0n);
    const sums = new Map<string, bigint>();
    for (const p of postings) sums.set(p.asset, (sums.get(p.asset) ?? 0n) + p.amount);
    for (const [asset, sum] of sums) if (sum !== 0n) throw new Error(`unbalanced ${entry.kind} entry: ${asset} sums to ${sum}`);
    const id = newId("ent");
    const binds: Array<string | null> = [
      id,
      entry.kind,
      entry.partnerId ?? null,
      entry.memberId ?? null,
      entry.ref?.type ?? null,
      entry.ref?.id ?? null,
      entry.contractVersionId ?? null,
      entry.occurredAt.toISOString(),
      entry.memo ? JSON.stringify(entry.memo) : null,
    ];
    let sql = `WITH e AS (INSERT INTO ledger_entries (id, kind, partner_id, member_id, ref_type, ref_id, contract_version_id, occurred_at, memo)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?::timestamptz, ?::jsonb))`;
    if (lots.length > 0) {
      sql += `, l AS (INSERT INTO ledger_lots (id, member_id, account_id, issuing_partner_id, contract_version_id, entry_id, earned_at, expires_at, amount, remaining, funded_by)
                 VALUES ${lots.map(() => "(?, ?, ?, ?, ?, ?, ?::timestamptz, ?::timestamptz, ?::bigint, ?::bigint, ?)").join(", ")})`;
      for (const lot of lots) {
        binds.push(
          lot.id,
          lot.memberId,
          accountIds.points(lot.memberId),
          lot.issuingPartnerId,
          lot.contractVersionId,
          id,
          lot.earnedAt.toISOString(),
          lot.expiresAt.toISOString(),
          lot.amount.toString(),
          lot.amount.toString(),
          lot.fundedBy,
        );
      }
    }
    // The lots the entry consumes (a burn, a hold, an expiry), and the record of it: the same statement.
    if (moves.length > 0) {
      const m = lotMoves(id, moves);
      sql += `, ${m.ctes}`;
      binds.push(...m.binds);
    }
    sql += ` INSERT INTO ledger_postings (entry_id, account_id, asset, amount) VALUES ${postings.map(() => "(?, ?, ?, ?::bigint)").join(", ")}`;
    for (const p of postings) binds.push(id, p.accountId, p.asset, p.amount.toString());
    await trx.raw(sql, binds);
    return id;
  }

  async function moveLots(trx: Trx, entryId: string, moves: LotMovement[]): Promise<void> {
    if (moves.length === 0) return;
    const m = lotMoves(entryId, moves);
    await trx.raw(`WITH ${m.ctes} SELECT 1`, m.binds);
  }

  /** The lots' new remainders and the record of the moves, as two CTEs: one round trip with whatever statement carries them. */
  function lotMoves(entryId: string, moves: LotMovement[]): { ctes: string; binds: string[] } {
    return {
      ctes: `lots_moved AS (UPDATE ledger_lots l SET remaining = l.remaining - v.amount
                              FROM (VALUES ${moves.map(() => "(?, ?::bigint)").join(", ")}) AS v(id, amount) WHERE l.id = v.id),
             moves_recorded AS (INSERT INTO ledger_lot_movements (lot_id, entry_id, amount) VALUES ${moves.map(() => "(?, ?, ?::bigint)").join(", ")})`,
      binds: [...moves.flatMap((m) => [m.lotId, m.amount.toString()]), ...moves.flatMap((m) => [m.lotId, entryId, m.amount.toString()])],
    };
  }

  /** The member's open lots, soonest-expiring first (call under the member's lock). */
  function openLots(trx: Trx, memberId: string) {
    return trx<LotRow>("ledger_lots")
      .where({ member_id: memberId })
      .andWhere("remaining", ">", 0)
      .orderBy([{ column: "expires_at" }, { column: "id" }])
      .select("*");
  }

  /** Picks lots to consume: the preferred ones first, then soonest-expiring first. */
  async function pickLots(trx: Trx, memberId: string, points: bigint, preferLotIds: string[] = []): Promise<LotMovement[]> {
    const rows: Array<{ id: string; remaining: bigint }> = await trx("ledger_lots")
      .where({ member_id: memberId })
      .andWhere("remaining", ">", 0)
      .select("id", "remaining")
      .orderByRaw(`${preferLotIds.length > 0 ? "(id = ANY(?)) DESC, " : ""}expires_at, id`, preferLotIds.length > 0 ? [preferLotIds] : []);
    return pickFrom(rows, memberId, points);
  }

  /** Takes `points` from `rows` in their order. */
  function pickFrom(rows: Array<{ id: string; remaining: bigint | string }>, memberId: string, points: bigint): LotMovement[] {
    const moves: LotMovement[] = [];
    let left = points;
    for (const r of rows) {
      if (left === 0n) break;
      const take = min(left, BigInt(r.remaining));
      moves.push({ lotId: r.id, amount: take });
      left -= take;
    }
    if (left !== 0n) throw new Error(`lots of ${memberId} hold ${points - left} points, ${points} needed: lots and balance disagree`);
    return moves;
  }

  /**
   * Picks lots to take back per funder, so the points a refund takes from the balance come from the
   * funders it credits: for each funder, its lots among the preferred ones first, then other
   * preferred lots, then its other lots, then any (each soonest-expiring first).
   */
  async function pickLotsByFunder(trx: Trx, memberId: string, funding: Funding[], shares: bigint[], preferLotIds: string[]): Promise<LotMovement[]> {
    const rows: Array<{ id: string; remaining: bigint; funded_by: string }> = await trx("ledger_lots")
      .where({ member_id: memberId })
      .andWhere("remaining", ">", 0)
      .orderBy([{ column: "expires_at" }, { column: "id" }])
      .select("id", "remaining", "funded_by");
    const left = new Map(rows.map((r) => [r.id, BigInt(r.remaining)]));
    const prefer = new Set(preferLotIds);
    const taken = new Map<string, bigint>();
    funding.forEach((f, i) => {
      let need = shares[i]!;
      const rank = (r: { id: string; funded_by: string }) => (prefer.has(r.id) ? 0 : 2) + (r.funded_by === f.fundedBy ? 0 : 1);
      const ordered = rows.map((r, k) => ({ r, k })).sort((a, b) => rank(a.r) - rank(b.r) || a.k - b.k);
      for (const { r } of ordered) {
        if (need === 0n) break;
        const take = min(need, left.get(r.id)!);
        if (take === 0n) continue;
        left.set(r.id, left.get(r.id)! - take);
        taken.set(r.id, (taken.get(r.id) ?? 0n) + take);
        need -= take;
      }
      if (need !== 0n) throw new Error(`lots of ${memberId} cannot cover ${shares[i]} points: lots and balance disagree`);
    });
    return [...taken].map(([lotId, amount]) => ({ lotId, amount }));
  }

  /** Gives back, latest-expiring first, up to `points` that entries of `ref` took from lots. */
  async function pickRestore(trx: Trx, ref: EntryRef, points: bigint): Promise<LotMovement[]> {
    const rows = rowsOf<{ lot_id: string; net: bigint }>(
      await trx.raw(
        `SELECT m.lot_id, sum(m.amount)::bigint AS net, l.expires_at
           FROM ledger_lot_movements m
           JOIN ledger_entries e ON e.id = m.entry_id
           JOIN ledger_lots l ON l.id = m.lot_id
          WHERE e.ref_type = ? AND e.ref_id = ? AND e.kind IN ('burn', 'hold', 'capture', 'release')
          GROUP BY m.lot_id, l.expires_at
         HAVING sum(m.amount) > 0
          ORDER BY l.expires_at DESC, m.lot_id DESC`,
        [ref.type, ref.id],
      ),
    );
    const moves: LotMovement[] = [];
    let left = points;
    for (const r of rows) {
      if (left === 0n) break;
      const give = min(left, BigInt(r.net));
      moves.push({ lotId: r.lot_id, amount: -give });
      left -= give;
    }
    if (left !== 0n) throw new Error(`cannot give back ${points} points to the lots of ${ref.type} ${ref.id}`);
    return moves;
  }

  async function expireDueLocked(trx: Trx, memberId: string, now: Date, open?: LotRow[]): Promise<ExpiredLots> {
    // `open`: the member's open lots, read already under its lock (a spend reads them once).
    const rows: LotRow[] = open
      ? open.filter((r) => new Date(r.expires_at).getTime() <= now.getTime())
      : await openLots(trx, memberId).andWhere("expires_at", "<=", now);
    if (rows.length === 0) return { entryId: null, total: 0n, lots: [] };
    const lots = rows.map(toLot);
    const total = lots.reduce((s, l) => s + l.remaining, 0n);
    const entryId = await post(trx, {
      kind: "expire",
      memberId,
      ref: { type: "expiry", id: memberId },
      occurredAt: now,
      memo: { lots: lots.map((l) => l.id) },
      postings: [
        { accountId: accountIds.points(memberId), asset: POINTS, amount: -total },
        { accountId: accountIds.breakage, asset: POINTS, amount: total },
      ],
    }, [], lots.map((l) => ({ lotId: l.id, amount: l.remaining })));
    return { entryId, total, lots: lots.map((l) => ({ lotId: l.id, issuingPartnerId: l.issuingPartnerId, points: l.remaining, expiresAt: l.expiresAt })) };
  }

  function insufficient(available: bigint, requested: bigint) {
    return ledgerErrors.make("insufficient-points", `The member has ${available} points available; ${requested} were requested.`, {
      available_points: Number(available),
      requested_points: Number(requested),
    });
  }

  return {
    lockMember,
    post,
    // Opening accounts, many entries in one statement, many earns at once (ledger.batch.ts).
    ...createLedgerBatch(),

    /**
     * Credits earned points: they first pay off any points debt, the rest becomes a lot with its
     * provenance (issuing partner, contract version, earned and expiry dates).
     */
    async earn(trx: Trx, input: EarnInput): Promise<{ entryId: string | null; lotId: string | null; lotIds: string[]; repaidDebt: bigint; balances: MemberBalances | null }> {
      if (input.points < 0n) throw new Error("earn of negative points");
      if (input.points === 0n) return { entryId: null, lotId: null, lotIds: [], repaidDebt: 0n, balances: null };
      const funding = mergeFunding(input.funding ?? [{ fundedBy: partnerFunded(input.partnerId), points: input.points }]);
      const funded = funding.reduce((s, f) => s + f.points, 0n);
      if (funded !== input.points) throw new Error(`earn of ${input.points} points funded for ${funded}`);
      const operatorFunded = funding.some((f) => f.fundedBy === "operator");
      if (funding.length === 1 && funding[0]!.fundedBy === partnerFunded(input.partnerId)) {
        // The common case, points funded by the partner where they are earned: one round trip.
        // ledger_earn (migrations 20261130090000, 20261130160000) creates the accounts if new, locks the
        // member's as lockMember does, repays debt first and writes the entry, postings and lot.
        const entryId = newId("ent");
        const [row] = rowsOf<{ points: bigint; held: bigint; debt: bigint; debt_floor: bigint; repaid: bigint; lot_id: string | null }>(
          await trx.raw("SELECT * FROM ledger_earn(?, ?, ?::bigint, ?, ?::timestamptz, ?::timestamptz, ?, ?, ?, ?, ?::jsonb)", [
            input.memberId,
            input.partnerId,
            input.points.toString(),
            input.contractVersionId,
            input.earnedAt.toISOString(),
            input.expiresAt.toISOString(),
            input.ref.type,
            input.ref.id,
            entryId,
            newId("lot"),
            input.memo ? JSON.stringify(input.memo) : null,
          ]),
        );
        const balances = { points: BigInt(row!.points), held: BigInt(row!.held), debt: BigInt(row!.debt), debtFloor: BigInt(row!.debt_floor) };
        return { entryId, lotId: row!.lot_id, lotIds: row!.lot_id ? [row!.lot_id] : [], repaidDebt: BigInt(row!.repaid), balances };
      }
      const bal = await lockMember(trx, input.memberId, [input.partnerId, ...fundingPartners(funding)], operatorFunded ? input.partnerId : null);
      const repay = min(input.points, -bal.debt);
      const credited = input.points - repay;
      // Rule: the member's points debt is repaid from the funders in the order given (the caller
      // lists the issuing partner's own points first); what is left of each funder becomes its lot.
      let toRepay = repay;
      const lots: NewLot[] = [];
      // Ids in funding order, so that of one earn's lots (same expiry) the first funder's is spent first.
      const ids = funding.map(() => newId("lot")).sort();
      for (const f of funding) {
        const used = min(toRepay, f.points);
        toRepay -= used;
        const id = ids.shift()!;
        if (f.points - used > 0n) {
          lots.push({
            id,
            memberId: input.memberId,
            issuingPartnerId: input.partnerId,
            contractVersionId: input.contractVersionId,
            earnedAt: input.earnedAt,
            expiresAt: input.expiresAt,
            amount: f.points - used,
            fundedBy: f.fundedBy,
          });
        }
      }
      const entryId = await post(
        trx,
        {
          kind: "earn",
          partnerId: input.partnerId,
          memberId: input.memberId,
          ref: input.ref,
          contractVersionId: input.contractVersionId,
          occurredAt: input.earnedAt,
          ...(input.memo ? { memo: input.memo } : {}),
          postings: [
            ...funding.map((f) => ({ accountId: fundingAccount(f.fundedBy, input.partnerId), asset: POINTS, amount: -f.points })),
            { accountId: accountIds.debt(input.memberId), asset: POINTS, amount: repay },
            { accountId: accountIds.points(input.memberId), asset: POINTS, amount: credited },
          ],
        },
        lots,
      );
      const balances = { ...bal, points: bal.points + credited, debt: bal.debt + repay };
      return { entryId, lotId: lots[0]?.id ?? null, lotIds: lots.map((l) => l.id), repaidDebt: repay, balances };
    },

    /** Spends points at once (soonest-expiring lots first); 422 insufficient-points when short. */
    async burn(trx: Trx, input: SpendInput): Promise<{ entryId: string; lots: LotMovement[]; balances: MemberBalances }> {
      return spend(trx, input, "burn");
    },

    /** Holds points for a two-phase redemption: they leave the spendable balance, lots included. */
    async hold(trx: Trx, input: SpendInput): Promise<{ entryId: string; lots: LotMovement[]; balances: MemberBalances }> {
      return spend(trx, input, "hold");
    },

    /**
     * Settles a hold: `capture` points go to the redeeming partner, the rest of `held` goes back to
     * the member's lots it came from. capture = 0 is a void (or an expired hold's release).
     */
    async settleHold(
      trx: Trx,
      input: { memberId: string; partnerId: string; held: bigint; capture: bigint; occurredAt: Date; ref: EntryRef; contractVersionId?: string | null },
    ): Promise<{ entryId: string }> {
      await lockMember(trx, input.memberId, [input.partnerId]);
      const release = input.held - input.capture;
      const entryId = await post(trx, {
        kind: input.capture > 0n ? "capture" : "release",
        partnerId: input.partnerId,
        memberId: input.memberId,
        ref: input.ref,
        contractVersionId: input.contractVersionId ?? null,
        occurredAt: input.occurredAt,
        postings: [
          { accountId: accountIds.held(input.memberId), asset: POINTS, amount: -input.held },
          { accountId: accountIds.redemption(input.partnerId), asset: POINTS, amount: input.capture },
          { accountId: accountIds.points(input.memberId), asset: POINTS, amount: release },
        ],
      });
      if (release > 0n) await moveLots(trx, entryId, await pickRestore(trx, input.ref, release));
      return { entryId };
    },

    /** Gives burned points back to the member (a refund of a purchase paid with points). */
    async restoreBurned(
      trx: Trx,
      input: { memberId: string; partnerId: string; points: bigint; occurredAt: Date; ref: EntryRef; contractVersionId?: string | null },
    ): Promise<{ entryId: string | null }> {
      if (input.points === 0n) return { entryId: null };
      await lockMember(trx, input.memberId, [input.partnerId]);
      const entryId = await post(trx, {
        kind: "release",
        partnerId: input.partnerId,
        memberId: input.memberId,
        ref: input.ref,
        contractVersionId: input.contractVersionId ?? null,
        occurredAt: input.occurredAt,
        postings: [
          { accountId: accountIds.redemption(input.partnerId), asset: POINTS, amount: -input.points },
          { accountId: accountIds.points(input.memberId), asset: POINTS, amount: input.points },
        ],
      });
      await moveLots(trx, entryId, await pickRestore(trx, input.ref, input.points));
      return { entryId };
    },

    /**
     * Takes back points a refund cancels: from the balance (the refunded purchase's own lots first),
     * then — when already spent — into the member's points debt down to the contract's negative
     * floor (policy negative_balance), and whatever is left as a recovery the partner bears. The sum
     * is always the points asked for: a refund never fails and no point goes unaccounted.
     */
    async clawback(trx: Trx, input: ClawbackInput): Promise<ClawbackResult> {
      const funding = mergeFunding(input.funding ?? [{ fundedBy: partnerFunded(input.partnerId), points: input.points }]);
      const funded = funding.reduce((s, f) => s + f.points, 0n);
      if (funded !== input.points) throw new Error(`clawback of ${input.points} points funded for ${funded}`);
      const bal = await lockMember(trx, input.memberId, [input.partnerId, ...fundingPartners(funding)], funding.some((f) => f.fundedBy === "operator") ? input.partnerId : null);
      const fromBalance = min(input.points, bal.points);
      let rest = input.points - fromBalance;
      let toDebt = 0n;
      if (rest > 0n && input.policy === "negative_balance") {
        // The floor is data: the contract's negative floor becomes the debt account's floor, never
        // above the debt already owed.
        const floor = min(input.negativeFloor, bal.debt);
        if (floor !== bal.debtFloor) await trx("ledger_accounts").where({ id: accountIds.debt(input.memberId) }).update({ floor: floor.toString() });
        toDebt = min(rest, max(0n, bal.debt - floor));
        rest -= toDebt;
      }
      const toRecovery = rest;
      // The points that cannot be taken back are borne by the funders in proportion to the points
      // each gets back (largest remainder): a partner's on its recovery account, the operator's on
      // its own funding account (netted: the operator gets back only what was recovered).
      const unrecovered = splitByFunding(toRecovery, funding);
      const funderPostings = funding.flatMap((f, i) => {
        const lost = unrecovered[i]!;
        if (f.fundedBy === "operator") return [{ accountId: accountIds.operatorFunding(input.partnerId), asset: POINTS, amount: f.points - lost }];
        const partner = f.fundedBy.slice("partner:".length);
        return [
          { accountId: accountIds.recovery(partner), asset: POINTS, amount: -lost },
          { accountId: accountIds.issuance(partner), asset: POINTS, amount: f.points },
        ];
      });
      const entryId = await post(trx, {
        kind: "refund",
        partnerId: input.partnerId,
        memberId: input.memberId,
        ref: input.ref,
        contractVersionId: input.contractVersionId ?? null,
        occurredAt: input.occurredAt,
        memo: {
          from_balance: fromBalance.toString(),
          to_debt: toDebt.toString(),
          to_recovery: toRecovery.toString(),
          ...(input.funding ? { funding: Object.fromEntries(funding.map((f, i) => [f.fundedBy, { points: f.points.toString(), unrecovered: unrecovered[i]!.toString() }])) } : {}),
          ...(input.memo ?? {}),
        },
        postings: [
          { accountId: accountIds.points(input.memberId), asset: POINTS, amount: -fromBalance },
          { accountId: accountIds.debt(input.memberId), asset: POINTS, amount: -toDebt },
          ...funderPostings,
        ],
      });
      if (fromBalance > 0n) {
        const moves =
          funding.length > 1
            ? await pickLotsByFunder(trx, input.memberId, funding, splitByFunding(fromBalance, funding), input.preferLotIds)
            : await pickLots(trx, input.memberId, fromBalance, input.preferLotIds);
        await moveLots(trx, entryId, moves);
      }
      return { entryId, fromBalance, toDebt, toRecovery };
    },

    /** Expires the member's lots that are past their date into breakage. */
    async expireDue(trx: Trx, memberId: string, now: Date): Promise<ExpiredLots> {
      await lockMember(trx, memberId);
      return expireDueLocked(trx, memberId, now);
    },

    /** Members with lots past their date (for the expiry job), oldest first. */
    async membersWithDueLots(conn: DbOrTrx, now: Date, limit: number): Promise<string[]> {
      const rows: Array<{ member_id: string }> = await conn("ledger_lots")
        .where("remaining", ">", 0)
        .andWhere("expires_at", "<=", now)
        .distinct("member_id")
        .limit(limit);
      return rows.map((r) => r.member_id);
    },

    /** Open lots expiring in (now, until] not yet announced; marks them announced. */
    async takeLotsToAnnounce(trx: Trx, now: Date, until: Date, limit: number): Promise<Lot[]> {
      const rows: LotRow[] = await trx("ledger_lots")
        .where("remaining", ">", 0)
        .andWhere("expires_at", ">", now)
        .andWhere("expires_at", "<=", until)
        .whereNull("expiry_notified_at")
        .orderBy("id")
        .limit(limit)
        .forUpdate()
        .skipLocked()
        .select("*");
      if (rows.length > 0) await trx("ledger_lots").whereIn("id", rows.map((r) => r.id)).update({ expiry_notified_at: now });
      return rows.map(toLot);
    },

    /**
     * Points a partner issued (earn) and redeemed (burn, captured holds) per UTC day since `from`,
     * read from the members' points postings of the partner's entries. For dashboards.
     */
    async pointsPerDay(conn: DbOrTrx, partnerId: string, from: Date): Promise<Array<{ day: string; issued: bigint; redeemed: bigint }>> {
      const rows = rowsOf<{ day: string; issued: bigint | string | null; redeemed: bigint | string | null }>(
        await conn.raw(
          `SELECT to_char(date_trunc('day', e.occurred_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS day,
                SUM(CASE WHEN e.kind = 'earn' AND p.amount > 0 THEN p.amount ELSE 0 END) AS issued,
                SUM(CASE WHEN e.kind IN ('burn', 'capture') AND p.amount < 0 THEN -p.amount ELSE 0 END) AS redeemed
           FROM ledger_entries e
           JOIN ledger_postings p ON p.entry_id = e.id
           JOIN ledger_accounts a ON a.id = p.account_id
          WHERE e.partner_id = ? AND e.occurred_at >= ? AND a.member_id IS NOT NULL AND a.asset = 'PTS'
          GROUP BY 1 ORDER BY 1`,
          [partnerId, from],
        ),
      );
      return rows.map((r) => ({ day: r.day, issued: BigInt(r.issued ?? 0), redeemed: BigInt(r.redeemed ?? 0) }));
    },

    async balances(conn: DbOrTrx, memberId: string): Promise<MemberBalances> {
      const rows: AccountRow[] = await conn("ledger_accounts")
        .whereIn("id", [accountIds.points(memberId), accountIds.held(memberId), accountIds.debt(memberId)])
        .select("id", "kind", "balance", "floor");
      const by = new Map(rows.map((r) => [r.kind, r]));
      return {
        points: BigInt(by.get("member_points")?.balance ?? 0n),
        held: BigInt(by.get("member_points_held")?.balance ?? 0n),
        debt: BigInt(by.get("member_points_debt")?.balance ?? 0n),
        debtFloor: BigInt(by.get("member_points_debt")?.floor ?? 0n),
      };
    },

    async openLots(conn: DbOrTrx, memberId: string): Promise<Lot[]> {
      const rows: LotRow[] = await conn("ledger_lots")
        .where({ member_id: memberId })
        .andWhere("remaining", ">", 0)
        .orderBy([{ column: "expires_at" }, { column: "id" }])
        .select("*");
      return rows.map(toLot);
    },

    /**
     * The member's entries, newest first, each with its effect on what the member can spend
     * (the sum of its postings to the member's points and debt accounts; a hold counts as spent).
     */
    async history(conn: DbOrTrx, memberId: string, opts: { before?: string; limit: number }): Promise<HistoryEntry[]> {
      const rows = rowsOf<{ id: string; kind: string; partner_id: string | null; occurred_at: Date | string; points: string | null }>(
        await conn.raw(
          `SELECT e.id, e.kind, e.partner_id, e.occurred_at,
                  (SELECT sum(p.amount) FROM ledger_postings p WHERE p.entry_id = e.id AND p.account_id IN (?, ?)) AS points
             FROM ledger_entries e
            WHERE e.member_id = ? ${opts.before ? "AND e.id < ?" : ""}
            ORDER BY e.id DESC LIMIT ?`,
          [accountIds.points(memberId), accountIds.debt(memberId), memberId, ...(opts.before ? [opts.before] : []), opts.limit],
        ),
      );
      return rows.map((r) => ({
        id: r.id,
        kind: r.kind,
        partnerId: r.partner_id,
        occurredAt: new Date(r.occurred_at),
        points: BigInt(r.points ?? 0),
      }));
    },

    /** The lots that the earn entries of a business object created. */
    async lotsOfRef(conn: DbOrTrx, ref: EntryRef): Promise<Lot[]> {
      const rows: LotRow[] = await conn("ledger_lots as l")
        .join("ledger_entries as e", "e.id", "l.entry_id")
        .where({ "e.ref_type": ref.type, "e.ref_id": ref.id, "e.kind": "earn" })
        .select("l.*");
      return rows.map(toLot);
    },

    /**
     * Proves the ledger's invariants on the whole database; returns what is wrong (nothing, always).
     */
    async checkInvariants(conn: DbOrTrx = db): Promise<string[]> {
      const problems: string[] = [];
      for (const r of rowsOf<{ account_id: string; balance: bigint; postings_sum: string }>(await conn.raw("SELECT * FROM ledger_balance_mismatches()"))) {
        problems.push(`account ${r.account_id}: balance ${r.balance} but postings sum to ${r.postings_sum}`);
      }
      for (const r of rowsOf<{ asset: string; total: string }>(await conn.raw("SELECT asset, sum(amount) AS total FROM ledger_postings GROUP BY asset HAVING sum(amount) <> 0"))) {
        problems.push(`network total of ${r.asset} is ${r.total}, not 0`);
      }
      for (const r of rowsOf<{ entry_id: string; asset: string; total: string }>(
        await conn.raw("SELECT entry_id, asset, sum(amount) AS total FROM ledger_postings GROUP BY entry_id, asset HAVING sum(amount) <> 0"),
      )) {
        problems.push(`entry ${r.entry_id} does not balance in ${r.asset}: ${r.total}`);
      }
      for (const r of rowsOf<{ id: string; balance: bigint; floor: bigint }>(await conn.raw("SELECT id, balance, floor FROM ledger_accounts WHERE floor IS NOT NULL AND balance < floor"))) {
        problems.push(`account ${r.id} is below its floor: ${r.balance} < ${r.floor}`);
      }
      for (const r of rowsOf<{ id: string; remaining: bigint; expected: string }>(
        await conn.raw(
          `SELECT l.id, l.remaining, l.amount - coalesce(sum(m.amount), 0) AS expected
             FROM ledger_lots l LEFT JOIN ledger_lot_movements m ON m.lot_id = l.id
            GROUP BY l.id HAVING l.remaining <> l.amount - coalesce(sum(m.amount), 0)`,
        ),
      )) {
        problems.push(`lot ${r.id}: remaining ${r.remaining} but its movements leave ${r.expected}`);
      }
      for (const r of rowsOf<{ id: string; balance: bigint; lots: string }>(
        await conn.raw(
          `SELECT a.id, a.balance, coalesce((SELECT sum(remaining) FROM ledger_lots l WHERE l.account_id = a.id), 0) AS lots
             FROM ledger_accounts a
            WHERE a.kind = 'member_points'
              AND a.balance <> coalesce((SELECT sum(remaining) FROM ledger_lots l WHERE l.account_id = a.id), 0)`,
        ),
      )) {
        problems.push(`account ${r.id}: balance ${r.balance} but its lots hold ${r.lots}`);
      }
      return problems;
    },
  };

  async function spend(trx: Trx, input: SpendInput, kind: "burn" | "hold"): Promise<{ entryId: string; lots: LotMovement[]; balances: MemberBalances }> {
    if (input.points <= 0n) throw new Error(`${kind} of ${input.points} points`);
    let bal = await lockMember(trx, input.memberId, [input.partnerId]);
    // The member is locked: its open lots stay as read until the entries that consume them are
    // written. One read serves both: the lots past their date expire first, the rest are spent.
    const open: LotRow[] = await openLots(trx, input.memberId);
    const expired = await expireDueLocked(trx, input.memberId, input.now, open);
    if (expired.total > 0n) bal = { ...bal, points: bal.points - expired.total };
    if (bal.points < input.points) throw insufficient(bal.points, input.points);
    const gone = new Set(expired.lots.map((l) => l.lotId));
    const lots = pickFrom(
      open.filter((r) => !gone.has(r.id)),
      input.memberId,
      input.points,
    );
    const entryId = await post(trx, {
      kind,
      partnerId: input.partnerId,
      memberId: input.memberId,
      ref: input.ref,
      contractVersionId: input.contractVersionId ?? null,
      occurredAt: input.occurredAt,
      ...(input.memo ? { memo: input.memo } : {}),
      postings: [
        { accountId: accountIds.points(input.memberId), asset: POINTS, amount: -input.points },
        {
          accountId: kind === "burn" ? accountIds.redemption(input.partnerId) : accountIds.held(input.memberId),
          asset: POINTS,
          amount: input.points,
        },
      ],
    }, [], lots);
    const balances = { ...bal, points: bal.points - input.points, held: bal.held + (kind === "hold" ? input.points : 0n) };
    return { entryId, lots, balances };
  }
}

export type Ledger = ReturnType<typeof createLedger>;
export type { Posting };
