import { pgliteOf, type Db, type Trx } from "../../gateway/src/infra/db.ts";
import type { Clock } from "../../gateway/src/infra/clock.ts";
import type { Logger } from "../../gateway/src/infra/logger.ts";
import { enqueueInTx } from "../../gateway/src/infra/outbox/outbox.ts";
import { recordEvent } from "../../gateway/src/events/events.service.ts";
import { accountIds, partnerFunded } from "../../gateway/src/ledger/ledger.service.ts";
import { decimal, microsPerMinor, minorExponent, pricePoints, priceShare } from "./money.ts";
import { dueDate, parsePeriod, periodOf, type Period } from "./period.ts";
import { ClearingImbalance, settlementErrors } from "./settlement.errors.ts";
import { contentSha256, csvSha256, type LineRow, type StatementRow } from "./statements.service.ts";
import { ADJUSTMENT_GROUPS, adjustmentDrafts, adjustmentProblems } from "./adjustments.ts";
import { storeStatementPdf } from "./statement-pdf.ts";

/** Where a step is when a hook runs: inside its transaction before COMMIT, or just after it. */
export interface StepPoint {
  scope: "run" | "statement";
  id: string;
  step: string;
  phase: "before-commit" | "after-commit";
  trx?: Trx;
}

export interface ClearingHooks {
  /** Called at every step boundary. Throwing here is a crash at that point (tests inject them). */
  onStep?(at: StepPoint): Promise<void> | void;
}

export interface RunRow {
  id: string;
  period: string;
  period_start: Date | string;
  period_end: Date | string;
  status: "running" | "failed" | "closed";
  step: "statements" | "clearing" | "network" | "close" | "done";
  attempts: number;
  posting_watermark: bigint | number | string | null;
  failure: string | null;
  report: unknown;
  created_at: Date | string;
  updated_at: Date | string;
  closed_at: Date | string | null;
}

interface ContractRow {
  id: string;
  partner_id: string;
  version: number;
  effective_from: Date | string;
  currency: string;
  issuance_price_micros: bigint;
  redemption_price_micros: bigint;
  transaction_fee_minor: bigint;
  monthly_fee_minor: bigint;
  breakage_share_bps: number;
}

type Group =
  | "issuance"
  | "issuance_reversal"
  | "operator_funded_issuance"
  | "operator_funded_reversal"
  | "redemption"
  | "redemption_reversal"
  | "breakage_share"
  | "operator_funded_breakage"
  | "cashback_funding"
  | "cashback_funding_reversal"
  | "roundup_match_funding"
  | "cashback_payout"
  | "roundup_match_credited"
  | "transaction_fee"
  | "monthly_fee";

const GROUP_ORDER: Group[] = [
  "issuance",
  "issuance_reversal",
  "operator_funded_issuance",
  "operator_funded_reversal",
  "redemption",
  "redemption_reversal",
  "breakage_share",
  "operator_funded_breakage",
  "cashback_funding",
  "cashback_funding_reversal",
  "roundup_match_funding",
  "cashback_payout",
  "roundup_match_credited",
  "transaction_fee",
  "monthly_fee",
];

/** Points the operator funds, shown on the statement of the partner where they were earned: no charge. */
const OPERATOR_FUNDED: ReadonlySet<string> = new Set(["operator_funded_issuance", "operator_funded_reversal", "operator_funded_breakage"]);
/** Money lines: the exact sum of the ledger's money postings on the partner's accounts, no price. */
const MONEY: ReadonlySet<string> = new Set(["cashback_funding", "cashback_funding_reversal", "roundup_match_funding", "cashback_payout", "roundup_match_credited"]);

/** Sign from the partner's side: +1, the operator owes the partner; −1, the partner owes. */
const SIGN: Record<Group, bigint> = {
  issuance: -1n,
  issuance_reversal: 1n,
  operator_funded_issuance: 0n,
  operator_funded_reversal: 0n,
  redemption: 1n,
  redemption_reversal: -1n,
  breakage_share: 1n,
  operator_funded_breakage: 0n,
  cashback_funding: 1n,
  cashback_funding_reversal: 1n,
  roundup_match_funding: 1n,
  cashback_payout: 1n,
  roundup_match_credited: 1n,
  transaction_fee: -1n,
  monthly_fee: -1n,
};

const WORDS: Record<Group, string> = {
  issuance: "Points issued to members that you fund — the base rate and your own promotions (you pay the issuance price)",
  issuance_reversal: "Issued points taken back by refunds (issuance price credited; points the member had already spent are not)",
  operator_funded_issuance: "Points your members earned with you under the operator's promotions (the operator funds them: no charge to you)",
  operator_funded_reversal: "Operator-funded points taken back by refunds (no credit to you)",
  redemption: "Points redeemed with you (you are paid the redemption price)",
  redemption_reversal: "Redeemed points given back to members by refunds (redemption price reversed)",
  breakage_share: "Your share of the funded value of the points you funded that expired",
  operator_funded_breakage: "Operator-funded points earned with you that expired (no share: you did not fund them)",
  cashback_funding: "Cashback credited to members for purchases with you, your funded share",
  cashback_funding_reversal: "Cashback taken back by refunds or reversals, your funded share returned",
  roundup_match_funding: "Your match of members' round-up savings",
  cashback_payout: "Cashback you paid out to members for the hub (owed to you)",
  roundup_match_credited: "Partners' round-up matches you credited to members' savings for the hub (owed to you)",
  transaction_fee: "Per-transaction platform fee",
  monthly_fee: "Monthly platform fee",
};

const ROUNDING = {
  price: "points × price_micros ÷ micros per minor unit, rounded half-even once on the line",
  share: "points × issuance price_micros × share_bps ÷ 10,000 ÷ micros per minor unit, rounded half-even once on the line",
  fee: "exact: count × fee_minor, no rounding",
  none: "no charge: the operator funds these points (valued in the network report at this price)",
  money: "exact: the sum of the ledger's money postings on your account, no rounding",
} as const;

/** How a money posting on a partner's account is classified: by the account's kind and the entry's memo. */
const MONEY_GROUP_SQL = `CASE
  WHEN a.kind = 'partner_receivable' AND e.memo->>'money' = 'cashback' AND e.kind = 'earn' THEN 'cashback_funding'
  WHEN a.kind = 'partner_receivable' AND e.memo->>'money' = 'cashback' AND e.kind = 'refund' THEN 'cashback_funding_reversal'
  WHEN a.kind = 'partner_receivable' AND e.memo->>'money' = 'roundup_sweep' THEN 'roundup_match_funding'
  WHEN a.kind = 'partner_payable' AND e.memo->>'money' = 'cashback_payout' THEN 'cashback_payout'
  WHEN a.kind = 'partner_payable' AND e.memo->>'money' = 'roundup_sweep' THEN 'roundup_match_credited'
  ELSE 'unclassified' END`;

/**
 * The order of a statement's lines: by group, this month's before corrections of earlier ones (by
 * month), then by contract version (its start, then its id). Collect numbers items by the same order
 * in SQL; the price step checks they agree.
 */
function lineKey(group: Group, c: ContractRow | undefined, corrects: string | null): string {
  return `${String(GROUP_ORDER.indexOf(group)).padStart(2, "0")}|${corrects === null ? "0" : `1${corrects}`}|${c ? new Date(c.effective_from).toISOString() : ""}|${c?.id ?? ""}`;
}

function rowsOf<T>(result: unknown): T[] {
  return (result as { rows: T[] }).rows;
}

const nowIso = (d: Date) => d.toISOString();

/**
 * Clearing and settlement of one calendar month for the whole network.
 *
 * A run moves through steps — statements → clearing → network → close — and each partner's
 * statement through its own — collect → price → verify → render → ready — then all close together.
 * The statements step fixes the month's posting watermark and creates the statements; a statement's
 * collect step collects its items together with those of its collect group (the run's statements
 * dealt into as many groups as lanes clear them: one pass over the month's ledger per group, the
 * groups at once on as many connections), and the later per-partner steps read their own slice by
 * index.
 * Every step locks its row (SELECT … FOR UPDATE), checks it is still the step to do, does its work
 * and moves the marker in one transaction: a crash anywhere resumes at the step that did not commit,
 * and a second worker on the same row waits and then finds nothing to do.
 *
 * Conservation is checked twice: per statement (every line's points are the sum of its items, and
 * its money re-priced in SQL) and per run (every item of the month traces to ledger postings,
 * re-derived independently in one pass; partners' net positions plus the operator's revenue sum to
 * zero per currency; the points the lines say moved equal the change of members' balances in the
 * ledger). A check that fails undoes the run's lines, records the
 * failure and changes nothing else.
 */
/** The operator's network report of a run (stored on the run; the console reads it). */
export interface NetworkReport {
  period: string;
  currencies: Array<{
    currency: string;
    partners: Array<{ partner_id: string; statement_id: string; net_amount_minor: number; direction: string }>;
    operator_revenue_minor: Record<string, number>;
    operator_revenue_total_minor: number;
    partners_net_total_minor: number;
    network_sum_minor: number;
    operator_funded: { points_issued: number; points_clawed_back: number; points_expired: number; promotion_cost_minor: number };
    money: { partners_lines_minor: number; ledger_counterpart_minor: Record<string, number> };
  }>;
  points: {
    issued: number;
    clawed_back: number;
    redeemed: number;
    restored: number;
    expired: number;
    members_change: number;
    liability_outstanding: number;
    operator_funded: { issued: number; clawed_back: number; expired: number };
  };
  breakage: { points: number; shares_paid_minor: Record<string, number> };
}

export function createClearingService(deps: { db: Db; clock: Clock; log: Logger; hooks?: ClearingHooks }) {
  const { db, clock, log } = deps;
  const hook = async (at: StepPoint) => {
    await deps.hooks?.onStep?.(at);
  };

  async function loadRun(trx: Trx, runId: string, lock = false): Promise<RunRow> {
    const q = trx("settlement_runs").where({ id: runId });
    const run: RunRow | undefined = await (lock ? q.forUpdate() : q).first("*");
    if (!run) throw settlementErrors.make("run-not-found", `No settlement run ${runId}.`);
    return run;
  }

  const runPeriod = (run: RunRow): Period => parsePeriod(run.period);

  // ---------------------------------------------------------------------------------------------
  // Statement steps
  // ---------------------------------------------------------------------------------------------

  /**
   * collect, for the given statements (a collect group, see collectGroup), in one pass over the month: each
   * partner's ledger entries up to the period's end that no statement cleared yet — points on its
   * issuance, redemption and recovery accounts; operator-funded points of entries that happened with
   * it; expired lots it funded (or that the operator funded at it); money on its receivable and
   * payable accounts. One INSERT: nothing is read into this process, the ledger's slices are read
   * once for the group (not once per partner), and each item is written once, already
   * knowing its line and its place in the CSV.
   *
   * An item's line is fixed by what the item is — its group, the month it corrects, its contract
   * version — in the order the price step prints lines (`lineKey`): the lines with items come
   * first on a statement, before fees and adjustments, so their numbers are the ranks of those keys
   * within the statement. The price step checks that its lines agree.
   */
  async function collectMonth(trx: Trx, run: RunRow, p: Period, watermark: string, statements: Array<{ id: string; partner_id: string }>): Promise<void> {
    if (statements.length === 0) return;
    // Which account is whose, by the ledger's own naming: points accounts by id, money accounts by
    // owner and kind (as they always were found), lots by funder.
    // n: the statement's ordinal (below).
    const accounts = JSON.stringify(
      statements.flatMap((s, n) => [
        { n, account_id: accountIds.issuance(s.partner_id), src: "points" },
        { n, account_id: accountIds.redemption(s.partner_id), src: "points" },
        { n, account_id: accountIds.recovery(s.partner_id), src: "points" },
        { n, account_id: accountIds.operatorFunding(s.partner_id), src: "operator" },
      ]),
    );
    // n: the statement's ordinal, what the month's postings are grouped by and the numbering's
    // partition (an integer hashes and compares in one instruction; the statements' ids share their
    // first 8 bytes, which defeats the sort's abbreviated keys).
    const funders = JSON.stringify(statements.map((s, n) => ({ statement_id: s.id, partner_id: s.partner_id, funded_by: partnerFunded(s.partner_id), n })));
    // The contract that prices an item: the entry's own when it is this partner's, else the
    // partner's version in force when the entry happened.
    const contractOf = (at: string) =>
      `coalesce(CASE WHEN e.partner_id = x.partner_id THEN e.contract_version_id END,
                (SELECT c.id FROM contract_versions c WHERE c.partner_id = x.partner_id AND c.effective_from <= ${at} ORDER BY c.effective_from DESC LIMIT 1))`;
    const late = `CASE WHEN e.occurred_at < :start THEN to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM') END`;
    // Cleared once: only an entry from before the period can already be on a statement (a run clears
    // entries before its period's end, and a statement still at collect has no items), so only those
    // are looked up. Were that ever wrong, the items' unique key would refuse the run, not clear twice.
    const notYet = (group: string) =>
      `(e.occurred_at >= :start OR NOT EXISTS (SELECT 1 FROM settlement_items s WHERE s.partner_id = x.partner_id AND s.entry_id = e.id AND s.lot_id = '' AND s.line_group = ${group}))`;
    const pointsGroup = `CASE e.kind WHEN 'earn' THEN 'issuance' WHEN 'refund' THEN 'issuance_reversal' WHEN 'burn' THEN 'redemption'
                              WHEN 'capture' THEN 'redemption' WHEN 'release' THEN 'redemption_reversal' ELSE 'unclassified' END`;
    const operatorGroup = "CASE e.kind WHEN 'earn' THEN 'operator_funded_issuance' WHEN 'refund' THEN 'operator_funded_reversal' ELSE 'unclassified' END";
    // A money account's postings: by the account's kind (the source) and the entry's memo. Both kinds'
    // 'unclassified' stay two candidates of one entry, of which k keeps one (price refuses it).
    const lineGroup = `CASE x.src WHEN 'points' THEN ${pointsGroup} WHEN 'operator' THEN ${operatorGroup} ELSE ${MONEY_GROUP_SQL.replace(/\ba\.kind\b/g, "x.src")} END`;
    // A reversal's original: the earlier closed statement that cleared the purchase it reverses
    // (the first by month). Each step a single-table index probe, so the plan does not depend on the
    // joins this query turns off.
    const correctedStatement = `(SELECT ss.id FROM settlement_statements ss
        WHERE ss.status = 'closed' AND ss.period < :period
          AND ss.id = ANY (ARRAY(SELECT s2.statement_id FROM settlement_items s2
                                  WHERE s2.partner_id = k.partner_id
                                    AND s2.entry_id = ANY (ARRAY(SELECT oe.id FROM ledger_entries oe
                                                                  WHERE oe.kind IN ('earn', 'burn', 'capture')
                                                                    AND oe.ref_type = coalesce(CASE WHEN k.ref_type = 'refund' THEN t.ledger_ref_type END, k.ref_type)
                                                                    AND oe.ref_id = coalesce(CASE WHEN k.ref_type = 'refund' THEN t.ledger_ref_id END, k.ref_id)))))
        ORDER BY ss.period, ss.id LIMIT 1)`;
    const itemCols = "entry_id, lot_id, line_group, entry_kind, ref_type, ref_id, occurred_at, member_id, corrects_period, contract_version_id, points, amount_minor";
    const groupRank = `CASE k.line_group ${GROUP_ORDER.map((g, i) => `WHEN '${g}' THEN ${i}`).join(" ")} END`;
    // The line's key in the order `lineKey` sorts it (JavaScript compares those strings code unit by
    // code unit), packed in one bigint so the numbering's sort compares one integer where it compared
    // four keys on every tie:
    // - the group's rank (4 bits; none, for an unclassified item, last);
    // - the month corrected, none first: 'YYYY-MM' (to_char's, four digits and two) compares as
    //   YYYY × 12 + MM − 1 does (17 bits);
    // - the contract: its time as the millisecond the driver reads, then its id — its rank in that
    //   order among all contract versions (ctr below, an int: 31 bits), none last.
    const lineOrder = `(coalesce(${groupRank}, 15)::bigint << 49)
                       + (CASE WHEN k.corrects_period IS NULL THEN 0
                               ELSE 1 + substr(k.corrects_period, 1, 4)::int * 12 + substr(k.corrects_period, 6, 2)::int - 1 END::bigint << 32)
                       + coalesce(c.ord, 4294967295)`;
    // The numbering sorts the month's items: in memory (this transaction only; a larger month spills
    // to disk rather than fail), every text key in C collation (code point order, as the ids are
    // compared byte for byte: a locale's collation costs a library call per comparison and turns off
    // the sort's abbreviated keys — most of the sort of a million items).
    await trx.raw("SET LOCAL work_mem = '1GB'");
    // The month's postings on the partners' accounts are a large share of the ledger: read them in one
    // pass and join by hash, never one heap page per posting through the account index (which the
    // planner picks for the few hundred postings it expects from the accounts' list).
    await trx.raw("SET LOCAL enable_nestloop = off");
    await trx.raw(
      `WITH acc AS (SELECT * FROM jsonb_to_recordset(:accounts::jsonb) AS t(n int, account_id text, src text)),
            fund AS (SELECT * FROM jsonb_to_recordset(:funders::jsonb) AS t(statement_id text, partner_id text, funded_by text, n int)),
            ctr AS (SELECT c.id, row_number() OVER (ORDER BY date_trunc('milliseconds', c.effective_from), c.id COLLATE "C")::int AS ord,
                           c.issuance_price_micros, c.redemption_price_micros, c.breakage_share_bps
                      FROM contract_versions c),
            cand (statement_id, partner_id, n, src, ${itemCols}, lot_ptx, lot_htx) AS MATERIALIZED (
              -- Points the partner funds or is paid for, and the operator's points earned (or taken back)
              -- with it; money: cashback and round-up matches the partner funds, payouts and matches the
              -- hub owes it. One pass over the postings on the partners' accounts (points accounts by id,
              -- money accounts by owner and kind), one join to their entries.
              SELECT x.statement_id, x.partner_id, x.n, CASE x.src WHEN 'points' THEN 1 WHEN 'operator' THEN 2 WHEN 'partner_receivable' THEN 4 ELSE 5 END, e.id, '',
                     ${lineGroup},
                     e.kind, e.ref_type, e.ref_id, e.occurred_at, e.member_id, ${late}, ${contractOf("e.occurred_at")},
                     CASE WHEN x.src = 'points' AND e.kind IN ('earn', 'release') THEN -x.total
                          WHEN x.src = 'operator' AND e.kind = 'earn' THEN -x.total
                          WHEN x.src IN ('points', 'operator') THEN x.total ELSE 0 END,
                     CASE WHEN x.src NOT IN ('points', 'operator') THEN x.total END, NULL::text, NULL::text
                FROM (SELECT f.statement_id, f.partner_id, g.*
                        FROM (SELECT y.n, y.src, p.entry_id, sum(p.amount)::bigint AS total
                                FROM ledger_postings p
                                JOIN (SELECT n, account_id, src FROM acc
                                      UNION ALL
                                      SELECT fund.n, a.id, a.kind FROM ledger_accounts a JOIN fund ON fund.partner_id = a.partner_id
                                       WHERE a.kind IN ('partner_receivable', 'partner_payable')) y ON y.account_id = p.account_id
                               WHERE p.id <= :watermark GROUP BY 1, 2, 3) g
                        JOIN fund f ON f.n = g.n) x
                JOIN ledger_entries e ON e.id = x.entry_id
               WHERE e.occurred_at < :end AND ${notYet(lineGroup)}
              UNION ALL
              -- Breakage: expiry entries, lot by lot — the lots the partner funded (its share, priced by
              -- the contract under which the lot was earned), and the operator-funded lots earned with it
              -- (memo); with the purchase that earned the lot, as the CSV prints it (one probe per item).
              SELECT b.statement_id, b.partner_id, b.n, 3, b.entry_id, b.lot_id, b.line_group, b.entry_kind, b.ref_type, b.ref_id, b.occurred_at, b.member_id,
                     b.corrects_period, b.contract_version_id, b.points, NULL::bigint, lt.partner_transaction_id, lt.id
                FROM (SELECT x.statement_id, x.partner_id, x.n, e.id AS entry_id, m.lot_id,
                             CASE WHEN l.funded_by = 'operator' THEN 'operator_funded_breakage' ELSE 'breakage_share' END AS line_group,
                             e.kind AS entry_kind, e.ref_type, e.ref_id, e.occurred_at, e.member_id, ${late} AS corrects_period,
                             coalesce(CASE WHEN l.issuing_partner_id = x.partner_id THEN l.contract_version_id END,
                                      (SELECT c.id FROM contract_versions c WHERE c.partner_id = x.partner_id AND c.effective_from <= l.earned_at ORDER BY c.effective_from DESC LIMIT 1))
                               AS contract_version_id,
                             sum(m.amount)::bigint AS points, l.entry_id AS lot_entry_id
                        FROM ledger_lot_movements m
                        JOIN ledger_lots l ON l.id = m.lot_id
                        JOIN (SELECT statement_id, partner_id, n, funded_by, '' AS issuer FROM fund
                              UNION ALL SELECT statement_id, partner_id, n, 'operator', partner_id FROM fund) x
                          ON x.funded_by = l.funded_by AND x.issuer = CASE WHEN l.funded_by = 'operator' THEN l.issuing_partner_id ELSE '' END
                        JOIN ledger_entries e ON e.id = m.entry_id
                       WHERE e.kind = 'expire' AND e.occurred_at < :end
                         AND (SELECT min(pp.id) FROM ledger_postings pp WHERE pp.entry_id = e.id) <= :watermark
                         AND (e.occurred_at >= :start OR NOT EXISTS (SELECT 1 FROM settlement_items s WHERE s.partner_id = x.partner_id AND s.entry_id = e.id AND s.lot_id = m.lot_id))
                       GROUP BY x.statement_id, x.partner_id, x.n, e.id, m.lot_id, l.contract_version_id, l.issuing_partner_id, l.earned_at, l.funded_by, l.entry_id) b
                LEFT JOIN LATERAL (SELECT le.ref_type, le.ref_id FROM ledger_entries le WHERE le.id = b.lot_entry_id LIMIT 1) le ON true
                LEFT JOIN LATERAL (SELECT lt.id, lt.partner_transaction_id FROM point_transactions lt WHERE le.ref_type = 'transaction' AND lt.id = le.ref_id LIMIT 1) lt ON true),
            k AS (
              SELECT statement_id, partner_id, n, ${itemCols}, lot_ptx, lot_htx FROM cand WHERE line_group <> 'unclassified'
              UNION ALL
              -- An entry the rules do not know can show up from two sources: one item (price refuses it).
              SELECT statement_id, partner_id, n, ${itemCols}, lot_ptx, lot_htx
                FROM (SELECT DISTINCT ON (statement_id, entry_id, lot_id) * FROM cand WHERE line_group = 'unclassified' ORDER BY statement_id, entry_id, lot_id, src) u)
       INSERT INTO settlement_items (statement_id, partner_id, ${itemCols}, line_no, seq,
                                     partner_transaction_id, partner_refund_id, hub_transaction_id, corrects_statement_id, price_micros, share_bps, refs_collected)
       SELECT k.statement_id, k.partner_id, k.entry_id, k.lot_id, k.line_group, k.entry_kind, k.ref_type, k.ref_id, k.occurred_at, k.member_id, k.corrects_period,
              k.contract_version_id, k.points, k.amount_minor,
              CASE WHEN k.line_group <> 'unclassified' AND c.id IS NOT NULL THEN dense_rank() OVER (PARTITION BY k.n ORDER BY ${lineOrder}) END,
              row_number() OVER (PARTITION BY k.n ORDER BY ${lineOrder}, k.occurred_at, k.entry_id COLLATE "C", k.lot_id COLLATE "C"),
              k.partner_transaction_id, k.partner_refund_id, k.hub_transaction_id, k.corrects_statement_id,
              -- The rate the CSV prints: the contract's price for points, its share for breakage.
              CASE WHEN k.line_group IN ('issuance', 'issuance_reversal', 'breakage_share', 'operator_funded_issuance', 'operator_funded_reversal', 'operator_funded_breakage') THEN c.issuance_price_micros
                   WHEN k.line_group IN ('redemption', 'redemption_reversal') THEN c.redemption_price_micros END,
              CASE WHEN k.line_group = 'breakage_share' THEN c.breakage_share_bps END,
              true
         FROM (
           -- The partner's own ids, as the CSV prints them (see renderCsv): the purchase's (for a
           -- two-phase redemption, the redemption's; for a refund, the refunded purchase's, with the
           -- refund's own id; for breakage, the purchase that earned the lot: cand has it). By hash:
           -- an item's reference is one of a purchase, a redemption or a refund, so one join finds
           -- the purchase or the refunded one. Looked up below the numbering's sort (OFFSET 0 keeps
           -- them here), so every look-up of earlier items is done before the first of this month's
           -- is written.
           SELECT k.*,
                  coalesce(t.partner_transaction_id, r.partner_transaction_id, k.lot_ptx) AS partner_transaction_id,
                  rf.partner_refund_id,
                  coalesce(t.id, r.transaction_id, k.lot_htx) AS hub_transaction_id,
                  CASE WHEN k.line_group IN ('issuance_reversal', 'redemption_reversal') THEN ${correctedStatement} END AS corrects_statement_id
             FROM k
             LEFT JOIN point_refunds rf ON k.ref_type = 'refund' AND rf.id = k.ref_id
             LEFT JOIN redemptions r ON k.ref_type = 'redemption' AND r.id = k.ref_id
             LEFT JOIN point_transactions t ON t.id = CASE WHEN k.ref_type = 'transaction' THEN k.ref_id ELSE rf.transaction_id END
           OFFSET 0) k
         LEFT JOIN ctr c ON c.id = k.contract_version_id`,
      { accounts, funders, start: p.start, end: p.end, watermark, period: run.period },
    );
  }

  /** price: one line per (group, contract version, month corrected); fees; positions. */
  async function price(trx: Trx, st: StatementRow, p: Period): Promise<void> {
    const problems: string[] = [];
    // The statement's items are new to the table's statistics: read them (and their entries'
    // postings) by index, never by a scan of every statement's items or the whole ledger.
    await trx.raw("SET LOCAL enable_seqscan = off");
    const unclassified = rowsOf<{ entry_id: string; entry_kind: string }>(
      await trx.raw("SELECT entry_id, entry_kind FROM settlement_items WHERE statement_id = ? AND line_group = 'unclassified' ORDER BY entry_id LIMIT 5", [st.id]),
    );
    for (const u of unclassified) problems.push(`entry ${u.entry_id} of kind ${u.entry_kind} moves the partner's points but clearing has no rule for it`);
    const groups = rowsOf<{ line_no: number | null; line_group: Group; contract_version_id: string | null; corrects_period: string | null; points: bigint; amount: bigint | null; item_count: number }>(
      await trx.raw(
        `SELECT line_no, line_group, contract_version_id, corrects_period, sum(points)::bigint AS points, sum(amount_minor)::bigint AS amount, count(*)::int AS item_count
           FROM settlement_items WHERE statement_id = ? AND line_group <> 'unclassified'
          GROUP BY line_no, line_group, contract_version_id, corrects_period`,
        [st.id],
      ),
    );
    // Distinct transactions counted by their bytes (C collation: equality is the same in any
    // deterministic collation, and the sort behind it skips the locale's comparison).
    const txns = rowsOf<{ contract_version_id: string | null; corrects_period: string | null; n: number }>(
      await trx.raw(
        `SELECT contract_version_id, corrects_period, count(DISTINCT (ref_type || ':' || ref_id) COLLATE "C")::int AS n
           FROM settlement_items WHERE statement_id = ? AND line_group IN ('issuance', 'redemption')
          GROUP BY contract_version_id, corrects_period`,
        [st.id],
      ),
    );
    const monthly: ContractRow | undefined = await trx("contract_versions")
      .where({ partner_id: st.partner_id })
      .andWhere("effective_from", "<", p.end)
      .orderBy("effective_from", "desc")
      .first("*");
    const ids = [...new Set([...groups.map((g) => g.contract_version_id), ...txns.map((t) => t.contract_version_id)].filter((x): x is string => x !== null))];
    const contracts = new Map<string, ContractRow>(((await trx("contract_versions").whereIn("id", ids).select("*")) as ContractRow[]).map((c) => [c.id, c]));
    if (monthly) contracts.set(monthly.id, monthly);
    for (const g of groups) if (g.contract_version_id === null) problems.push(`${g.points} ${g.line_group} points have no contract in force`);
    for (const c of contracts.values()) if (c.partner_id !== st.partner_id) problems.push(`contract ${c.id} of ${c.partner_id} priced an entry of ${st.partner_id}`);
    const currencies = new Set([...contracts.values()].map((c) => c.currency));
    // Money lines are in the currency of the partner's money account they were posted to.
    const moneyCurrencies = rowsOf<{ asset: string }>(
      await trx.raw(
        `SELECT DISTINCT a.asset FROM settlement_items i
           JOIN ledger_postings p ON p.entry_id = i.entry_id
           JOIN ledger_accounts a ON a.id = p.account_id AND a.partner_id = i.partner_id AND a.kind IN ('partner_receivable', 'partner_payable')
          WHERE i.statement_id = ? AND i.amount_minor IS NOT NULL`,
        [st.id],
      ),
    );
    for (const m of moneyCurrencies) currencies.add(m.asset);
    if (currencies.size > 1) problems.push(`the partner's contracts mix currencies (${[...currencies].sort().join(", ")}); one statement is one currency`);
    if (problems.length > 0) throw new ClearingImbalance(problems);
    const currency = monthly?.currency ?? [...currencies][0] ?? "EUR";

    type Draft = Omit<LineRow, "statement_id" | "line_no"> & { sortKey: string; itemsLineNo?: number | null };
    const drafts: Draft[] = [];
    const key = lineKey;
    for (const g of groups) {
      const c = contracts.get(g.contract_version_id!)!;
      const points = BigInt(g.points);
      const base = {
        line_group: g.line_group,
        contract_version_id: c.id,
        contract_version: c.version,
        corrects_period: g.corrects_period,
        points,
        item_count: g.item_count,
        transaction_count: 0,
        fee_minor: null,
        sortKey: key(g.line_group, c, g.corrects_period),
        itemsLineNo: g.line_no,
      };
      if (OPERATOR_FUNDED.has(g.line_group)) {
        drafts.push({
          ...base,
          price_micros: BigInt(c.issuance_price_micros),
          share_bps: null,
          exact_amount: decimal(0n, minorExponent(currency)),
          amount_minor: 0n,
          rounding: ROUNDING.none,
          description: WORDS[g.line_group],
        });
      } else if (MONEY.has(g.line_group)) {
        const amount = BigInt(g.amount ?? 0n);
        drafts.push({
          ...base,
          price_micros: null,
          share_bps: null,
          exact_amount: decimal(amount, minorExponent(currency)),
          amount_minor: SIGN[g.line_group] * amount,
          rounding: ROUNDING.money,
          description: WORDS[g.line_group],
        });
      } else if (g.line_group === "breakage_share") {
        const v = priceShare(points, BigInt(c.issuance_price_micros), BigInt(c.breakage_share_bps), currency);
        drafts.push({
          ...base,
          price_micros: BigInt(c.issuance_price_micros),
          share_bps: c.breakage_share_bps,
          exact_amount: decimal(v.exact, v.exactScale),
          amount_minor: SIGN[g.line_group] * v.minor,
          rounding: ROUNDING.share,
          description: WORDS[g.line_group],
        });
      } else {
        const priceMicros = BigInt(g.line_group.startsWith("issuance") ? c.issuance_price_micros : c.redemption_price_micros);
        const v = pricePoints(points, priceMicros, currency);
        drafts.push({
          ...base,
          price_micros: priceMicros,
          share_bps: null,
          exact_amount: decimal(v.exact, v.exactScale),
          amount_minor: SIGN[g.line_group] * v.minor,
          rounding: ROUNDING.price,
          description: WORDS[g.line_group],
        });
      }
    }
    for (const t of txns) {
      const c = contracts.get(t.contract_version_id!)!;
      const fee = BigInt(c.transaction_fee_minor);
      if (fee === 0n) continue;
      drafts.push({
        line_group: "transaction_fee",
        contract_version_id: c.id,
        contract_version: c.version,
        corrects_period: t.corrects_period,
        points: 0n,
        item_count: 0,
        transaction_count: t.n,
        price_micros: null,
        fee_minor: fee,
        share_bps: null,
        exact_amount: decimal(BigInt(t.n) * fee, minorExponent(currency)),
        amount_minor: -(BigInt(t.n) * fee),
        rounding: ROUNDING.fee,
        description: WORDS.transaction_fee,
        sortKey: key("transaction_fee", c, t.corrects_period),
      });
    }
    // The monthly fee is for partners live in the network (active or suspended when the month is
    // cleared); an applied, approved or terminated partner is cleared but not charged it.
    const partner: { status: string } | undefined = await trx("partners").where({ id: st.partner_id }).first("status");
    const live = partner?.status === "active" || partner?.status === "suspended";
    if (monthly && live && BigInt(monthly.monthly_fee_minor) > 0n) {
      const fee = BigInt(monthly.monthly_fee_minor);
      drafts.push({
        line_group: "monthly_fee",
        contract_version_id: monthly.id,
        contract_version: monthly.version,
        corrects_period: null,
        points: 0n,
        item_count: 0,
        transaction_count: 0,
        price_micros: null,
        fee_minor: fee,
        share_bps: null,
        exact_amount: decimal(fee, minorExponent(currency)),
        amount_minor: -fee,
        rounding: ROUNDING.fee,
        description: WORDS.monthly_fee,
        sortKey: key("monthly_fee", monthly, null),
      });
    }
    drafts.push(...(await adjustmentDrafts(trx, st, currency)));
    drafts.sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
    const lines = drafts.map(({ sortKey: _s, itemsLineNo: _n, ...d }, i) => ({ ...d, statement_id: st.id, line_no: i + 1 }));
    // The items were numbered when collected, by the same order: a line that disagrees is a bug here.
    const misnumbered = drafts.map((d, i) => ({ d, no: i + 1 })).filter(({ d, no }) => d.itemsLineNo !== undefined && d.itemsLineNo !== no);
    if (misnumbered.length > 0) {
      throw new ClearingImbalance(misnumbered.slice(0, 5).map(({ d, no }) => `the ${d.line_group} items were numbered for line ${d.itemsLineNo ?? "(none)"}, their line is ${no}`));
    }
    if (lines.length > 0) {
      await trx("settlement_lines").insert(
        lines.map((l) => ({
          ...l,
          points: l.points.toString(),
          price_micros: l.price_micros?.toString() ?? null,
          fee_minor: l.fee_minor?.toString() ?? null,
          amount_minor: l.amount_minor.toString(),
        })),
      );
    }
    const net = lines.reduce((s, l) => s + l.amount_minor, 0n);
    const opening = rowsOf<{ total: bigint | null }>(
      await trx.raw("SELECT sum(net_amount_minor)::bigint AS total FROM settlement_statements WHERE partner_id = ? AND status = 'closed' AND period < ?", [st.partner_id, st.period]),
    )[0]?.total;
    const openingMinor = BigInt(opening ?? 0n);
    await trx("settlement_statements")
      .where({ id: st.id })
      .update({
        currency,
        net_amount_minor: net.toString(),
        opening_position_minor: openingMinor.toString(),
        closing_position_minor: (openingMinor + net).toString(),
        due_date: dueDate(p),
      });
  }

  /**
   * verify: the statement's lines against its items, computed another way: every line's points are
   * the sum of its items; every line's money is re-priced in SQL; the net is the sum of the lines.
   * That every item traces to the ledger — its points or money re-derived from the postings — is
   * checked for the whole month at once by the network step (`traceItems`), before anything closes.
   */
  async function verify(trx: Trx, st: StatementRow): Promise<void> {
    const problems: string[] = [];
    const moneyGroups = [...MONEY].map((g) => `'${g}'`).join(", ");
    const operatorGroups = [...OPERATOR_FUNDED].map((g) => `'${g}'`).join(", ");
    // The items were written moments ago and the table's statistics do not know them: read this
    // statement's slice by its index, whatever the planner believes about its size.
    await trx.raw("SET LOCAL enable_seqscan = off");
    const moneyLineMismatch = rowsOf<{ line_no: number; amount_minor: bigint; items: bigint | null }>(
      await trx.raw(
        `SELECT l.line_no, l.amount_minor, (SELECT sum(i.amount_minor)::bigint FROM settlement_items i WHERE i.statement_id = l.statement_id AND i.line_no = l.line_no) AS items
           FROM settlement_lines l
          WHERE l.statement_id = ? AND l.line_group IN (${moneyGroups}, ${operatorGroups})
            AND l.amount_minor IS DISTINCT FROM CASE WHEN l.line_group IN (${operatorGroups}) THEN 0
                                                     ELSE (SELECT sum(i.amount_minor) FROM settlement_items i WHERE i.statement_id = l.statement_id AND i.line_no = l.line_no) END`,
        [st.id],
      ),
    );
    for (const m of moneyLineMismatch) problems.push(`line ${m.line_no} says ${m.amount_minor} minor units, its items ${m.items ?? "nothing"}`);
    const lineMismatch = rowsOf<{ line_no: number | null; line_points: bigint | null; item_points: bigint | null }>(
      await trx.raw(
        `SELECT coalesce(l.line_no, i.line_no) AS line_no, l.points AS line_points, i.points AS item_points
           FROM (SELECT line_no, points FROM settlement_lines WHERE statement_id = ? AND line_group NOT IN ('transaction_fee', 'monthly_fee', 'adjustment')) l
           FULL JOIN (SELECT line_no, sum(points)::bigint AS points FROM settlement_items WHERE statement_id = ? GROUP BY line_no) i ON i.line_no = l.line_no
          WHERE l.points IS DISTINCT FROM i.points`,
        [st.id, st.id],
      ),
    );
    for (const m of lineMismatch) problems.push(`line ${m.line_no ?? "(none)"} says ${m.line_points ?? "nothing"} points, its items ${m.item_points ?? "nothing"}`);
    const divisor = microsPerMinor(st.currency ?? "EUR").toString();
    const moneyMismatch = rowsOf<{ line_no: number; amount_minor: bigint; expected: string }>(
      await trx.raw(
        `WITH x AS (
           SELECT l.line_no, l.amount_minor, l.line_group,
                  CASE l.line_group
                    WHEN 'breakage_share' THEN l.points::numeric * l.price_micros * l.share_bps
                    WHEN 'transaction_fee' THEN l.transaction_count::numeric * l.fee_minor
                    WHEN 'monthly_fee' THEN l.fee_minor::numeric
                    ELSE l.points::numeric * l.price_micros END AS n,
                  CASE l.line_group WHEN 'breakage_share' THEN ?::numeric * 10000 WHEN 'transaction_fee' THEN 1 WHEN 'monthly_fee' THEN 1 ELSE ?::numeric END AS d,
                  CASE WHEN l.line_group IN ('issuance', 'redemption_reversal', 'transaction_fee', 'monthly_fee') THEN -1 ELSE 1 END AS sign
             FROM settlement_lines l WHERE l.statement_id = ? AND l.line_group NOT IN (${moneyGroups}, ${operatorGroups})),
         q AS (SELECT *, floor(n / d) AS q FROM x)
         SELECT line_no, amount_minor,
                (sign * CASE WHEN 2 * (n - q * d) > d OR (2 * (n - q * d) = d AND mod(q, 2) = 1) THEN q + 1 ELSE q END)::text AS expected
           FROM q
          WHERE amount_minor::numeric <> sign * CASE WHEN 2 * (n - q * d) > d OR (2 * (n - q * d) = d AND mod(q, 2) = 1) THEN q + 1 ELSE q END`,
        [divisor, divisor, st.id],
      ),
    );
    for (const m of moneyMismatch) problems.push(`line ${m.line_no} says ${m.amount_minor} minor units, its points and price make ${m.expected}`);
    const [net] = rowsOf<{ lines: bigint | null; unpriced: number }>(
      await trx.raw(
        `SELECT (SELECT sum(amount_minor)::bigint FROM settlement_lines WHERE statement_id = ?) AS lines,
                (SELECT count(*)::int FROM settlement_items WHERE statement_id = ? AND (line_no IS NULL OR seq IS NULL)) AS unpriced`,
        [st.id, st.id],
      ),
    );
    const fresh: StatementRow = await trx("settlement_statements").where({ id: st.id }).first("*");
    if (BigInt(net?.lines ?? 0n) !== BigInt(fresh.net_amount_minor ?? 0n)) problems.push(`net ${fresh.net_amount_minor} is not the sum of the lines ${net?.lines ?? 0}`);
    if ((net?.unpriced ?? 0) > 0) problems.push(`${net?.unpriced} items are in no line`);
    problems.push(...(await adjustmentProblems(trx, st.id)));
    if (problems.length > 0) throw new ClearingImbalance(problems);
  }

  /** render: the CSV's hash (streamed) and the statement's content hash. */
  async function render(trx: Trx, st: StatementRow): Promise<void> {
    const csv = await csvSha256(trx, st.id);
    const fresh: StatementRow = { ...(await trx("settlement_statements").where({ id: st.id }).first("*")), csv_sha256: csv.sha256, item_count: csv.items };
    const lines: LineRow[] = await trx("settlement_lines").where({ statement_id: st.id }).orderBy("line_no").select("*");
    const content = contentSha256(fresh, lines);
    const pdf = await storeStatementPdf(trx, { ...fresh, content_sha256: content }, lines);
    await trx("settlement_statements")
      .where({ id: st.id })
      .update({ csv_sha256: csv.sha256, item_count: csv.items, content_sha256: content, pdf_sha256: pdf });
  }

  const NEXT: Record<string, string> = { collect: "price", price: "verify", verify: "render", render: "ready" };

  /** Undoes what an unverified statement wrote and records why. Never touches a closed one. */
  async function failStatements(runId: string, statementIds: string[], err: ClearingImbalance): Promise<void> {
    await db.transaction(async (trx) => {
      const run = await loadRun(trx, runId, true);
      if (run.status === "closed") return;
      for (const id of statementIds) {
        await trx("settlement_lines").where({ statement_id: id }).delete();
        await trx("settlement_items").where({ statement_id: id }).delete();
      }
      await trx("settlement_statements")
        .whereIn("id", statementIds)
        .andWhereNot({ status: "closed" })
        .update({
          status: "failed",
          step: "collect",
          failure: err.message.slice(0, 4000),
          currency: null,
          opening_position_minor: null,
          net_amount_minor: null,
          closing_position_minor: null,
          due_date: null,
          content_sha256: null,
          csv_sha256: null,
          pdf_sha256: null,
          item_count: null,
          attempts: trx.raw("attempts + 1"),
        });
      await trx("settlement_runs")
        .where({ id: runId })
        .update({ status: "failed", failure: err.message.slice(0, 4000), updated_at: clock.now() });
    });
    log.error({ runId, statements: statementIds, problems: err.problems }, "settlement run does not balance; its lines were undone and the failure recorded");
  }

  /**
   * collect, for the statement and the others of its collect group still at that step: the run's
   * statements in partner order, dealt into `lanes` groups (the statement's place modulo lanes), so
   * that many lanes (or workers) collect the month in as many passes at once, each a part of the
   * partners, and each statement is collected in one transaction with the move of its step. The
   * others are locked without waiting (SKIP LOCKED): one another worker holds is left to it.
   * Returns the others collected (their step moved here too).
   */
  async function collectGroup(trx: Trx, run: RunRow, st: StatementRow, p: Period, lanes: number): Promise<string[]> {
    const all: string[] = (await trx("settlement_statements").where({ run_id: run.id }).orderBy("partner_id").select("id")).map((r: { id: string }) => r.id);
    const place = all.indexOf(st.id);
    const n = Math.max(1, Math.floor(lanes));
    const others = all.filter((id, i) => id !== st.id && i % n === place % n);
    const locked: Array<{ id: string; partner_id: string }> =
      others.length === 0
        ? []
        : await trx("settlement_statements")
            .whereIn("id", others)
            .where({ run_id: run.id, status: "open", step: "collect" })
            .orderBy("id")
            .forUpdate()
            .skipLocked()
            .select("id", "partner_id");
    const statements = [{ id: st.id, partner_id: st.partner_id }, ...locked].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    await collectMonth(trx, run, p, String(run.posting_watermark ?? 0), statements);
    if (locked.length > 0) await trx("settlement_statements").whereIn("id", locked.map((s) => s.id)).update({ step: NEXT.collect });
    return locked.map((s) => s.id);
  }

  /**
   * Runs the statement's remaining steps; safe to call again at any point, from any worker. `lanes`:
   * how many lanes (or workers) clear the run's statements at once — its collect step collects
   * the statement's group of them (see collectGroup); 1, every statement still to collect.
   */
  async function clearStatement(statementId: string, opts: { lanes?: number } = {}): Promise<StatementRow> {
    for (;;) {
      let step = "";
      let runId = "";
      let alsoCollected: string[] = [];
      const out: { done?: StatementRow } = {};
      try {
        await db.transaction(async (trx) => {
          const st: StatementRow | undefined = await trx("settlement_statements").where({ id: statementId }).forUpdate().first("*");
          if (!st) throw settlementErrors.make("statement-not-found", `No statement ${statementId}.`);
          runId = st.run_id;
          if (st.status !== "open" || !(st.step in NEXT)) {
            out.done = st;
            return;
          }
          const run = await loadRun(trx, st.run_id);
          // Collect only once the run's statements step has fixed the month's posting watermark (a
          // job left from an earlier attempt of a failed run waits for the new one's).
          if (st.step === "collect" && run.step === "statements") {
            out.done = st;
            return;
          }
          const p = runPeriod(run);
          step = st.step;
          // A step's queries run once per statement on data the planner has no history of: compiling
          // them (JIT) costs more than it saves.
          await trx.raw("SET LOCAL jit = off");
          if (step === "collect") alsoCollected = await collectGroup(trx, run, st, p, opts.lanes ?? 1);
          else if (step === "price") await price(trx, st, p);
          else if (step === "verify") await verify(trx, st);
          else if (step === "render") await render(trx, st);
          const next = NEXT[step]!;
          await trx("settlement_statements").where({ id: st.id }).update({ step: next });
          // Ready: let the run look whether every statement is (the job id names this statement,
          // so each statement's nudge is its own job). BullMQ ids hold at most two colons.
          if (next === "ready") await enqueueInTx(trx, "settlement.run", { runId: run.id }, { jobId: `settle-ready:${run.period}.${run.attempts}:${st.partner_id}` });
          await hook({ scope: "statement", id: statementId, step, phase: "before-commit", trx });
          for (const id of alsoCollected) await hook({ scope: "statement", id, step, phase: "before-commit", trx });
        });
      } catch (err) {
        if (err instanceof ClearingImbalance) await failStatements(runId, [statementId], err);
        throw err;
      }
      if (out.done) return out.done;
      await hook({ scope: "statement", id: statementId, step, phase: "after-commit" });
      for (const id of alsoCollected) await hook({ scope: "statement", id, step, phase: "after-commit" });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Run steps
  // ---------------------------------------------------------------------------------------------

  /**
   * The partners a month clears: every live partner with a contract in force before the month
   * ended. A sandbox partner (a developer's, in the sandbox network) is never cleared: its traffic
   * moves no real money, and its members are sandbox members no live partner reaches.
   */
  async function createStatements(trx: Trx, run: RunRow, p: Period): Promise<void> {
    const partners = rowsOf<{ id: string }>(
      await trx.raw(
        `SELECT p.id FROM partners p
          WHERE p.kind <> 'operator' AND NOT p.sandbox
            AND EXISTS (SELECT 1 FROM contract_versions c WHERE c.partner_id = p.id AND c.effective_from < ?)
          ORDER BY p.id`,
        [p.end],
      ),
    );
    const now = clock.now();
    for (const { id: partnerId } of partners) {
      const statementId = `stm_${run.period.replace("-", "")}_${partnerId}`;
      await trx("settlement_statements")
        .insert({ id: statementId, run_id: run.id, partner_id: partnerId, period: run.period, created_at: now })
        .onConflict(["partner_id", "period"])
        .ignore();
      const suffix = run.attempts > 0 ? `.retry${run.attempts}` : "";
      await enqueueInTx(trx, "settlement.clear", { statementId }, { jobId: `clear:${partnerId}:${run.period}${suffix}` });
    }
  }


  /**
   * Every item of the run against the ledger, computed another way: per item, the ledger's figure
   * for its (entry, lot, source), re-derived from the postings on the partner's accounts (points
   * accounts by id, money accounts by owner and kind), the operator's account for points earned with
   * it, or the movements of the lots the partner (or, at it, the operator) funded: the absolute
   * points those accounts moved, the signed money, or the lot's movements. An item with no such
   * figure, or another one, is a mismatch. One pass over the month, by hash: one read of the
   * postings and of the items, never one index probe per item.
   */
  async function traceItems(trx: Trx, statements: StatementRow[]): Promise<string[]> {
    if (statements.length === 0) return [];
    // The sources, as small integers (what the aggregate hashes): 1 the partner's points accounts,
    // 2 the operator's account at it, 3 its payable and 4 its receivable accounts, 5 the lots the
    // operator funded at it, 6 the lots it funded. n: the statement's ordinal, for the partner.
    const accounts = JSON.stringify(
      statements.flatMap((s, n) => [
        { n, account_id: accountIds.issuance(s.partner_id), src: 1 },
        { n, account_id: accountIds.redemption(s.partner_id), src: 1 },
        { n, account_id: accountIds.recovery(s.partner_id), src: 1 },
        { n, account_id: accountIds.operatorFunding(s.partner_id), src: 2 },
      ]),
    );
    const funders = JSON.stringify(statements.map((s, n) => ({ statement_id: s.id, partner_id: s.partner_id, funded_by: partnerFunded(s.partner_id), n })));
    const moneyGroups = [...MONEY].map((g) => `'${g}'`).join(", ");
    const operatorGroups = [...OPERATOR_FUNDED].map((g) => `'${g}'`).join(", ");
    const itemSrc = `CASE WHEN i.lot_id <> '' THEN CASE WHEN i.line_group = 'operator_funded_breakage' THEN 5 ELSE 6 END
                          WHEN i.line_group IN (${operatorGroups}) THEN 2
                          WHEN i.line_group IN ('cashback_payout', 'roundup_match_credited') THEN 3
                          WHEN i.line_group IN (${moneyGroups}) THEN 4
                          ELSE 1 END`;
    // A month of sums and items hashed in memory (this transaction only; a larger month spills to
    // disk rather than fail), not sorted to disk in pieces.
    await trx.raw("SET LOCAL work_mem = '1GB'");
    // Items and the ledger's figures meet in one aggregate, keyed by (partner, source, entry, lot):
    // each item brings its figure, each posting on the partner's accounts (lot '') and each movement
    // of a lot an item names brings its amount. A key with an item must hold exactly one item and the
    // ledger's figure for it; one pass of hashing, no join of a month of sums to a month of items.
    // The items' line group is read back for the few keys that fail, not carried through the pass.
    const mismatches = rowsOf<{ entry_id: string; lot_id: string; line_group: string; items: number; figure: bigint; ledger: bigint | null }>(
      await trx.raw(
        `WITH st AS (SELECT * FROM jsonb_to_recordset(:funders::jsonb) AS t(statement_id text, partner_id text, funded_by text, n int)),
              acc AS (SELECT * FROM jsonb_to_recordset(:accounts::jsonb) AS t(n int, account_id text, src int)
                      UNION ALL
                      SELECT st.n, a.id, CASE a.kind WHEN 'partner_payable' THEN 3 ELSE 4 END FROM ledger_accounts a JOIN st ON st.partner_id = a.partner_id
                       WHERE a.kind IN ('partner_payable', 'partner_receivable')),
              x (n, src, entry_id, lot_id, figure, amount) AS (
                SELECT st.n, ${itemSrc}, i.entry_id, i.lot_id, coalesce(i.amount_minor, i.points), NULL::bigint
                  FROM settlement_items i JOIN st ON st.statement_id = i.statement_id
                UNION ALL
                SELECT acc.n, acc.src, p.entry_id, '', NULL, p.amount
                  FROM ledger_postings p JOIN acc ON acc.account_id = p.account_id
                UNION ALL
                -- The movements of the lots the items name (a few per cent of the month), each counted
                -- for the partner that funded the lot, or, for an operator-funded lot, where it was earned.
                SELECT i.n, i.src, m.entry_id, m.lot_id, NULL, m.amount
                  FROM (SELECT DISTINCT st.n, st.partner_id, st.funded_by, i.entry_id, i.lot_id,
                               CASE WHEN i.line_group = 'operator_funded_breakage' THEN 5 ELSE 6 END AS src
                          FROM settlement_items i JOIN st ON st.statement_id = i.statement_id WHERE i.lot_id <> '') i
                  JOIN ledger_lot_movements m ON m.entry_id = i.entry_id AND m.lot_id = i.lot_id
                  JOIN ledger_lots l ON l.id = m.lot_id
                 WHERE (l.funded_by = i.funded_by OR (l.funded_by = 'operator' AND l.issuing_partner_id = i.partner_id))
                   AND CASE WHEN l.funded_by = 'operator' THEN 5 ELSE 6 END = i.src),
              g AS (
                SELECT n, src, entry_id, lot_id, count(figure)::int AS items, max(figure) AS figure,
                       CASE WHEN src IN (1, 2) THEN abs(sum(amount)) ELSE sum(amount) END::bigint AS ledger
                  FROM x GROUP BY n, src, entry_id, lot_id),
              bad AS (
                SELECT * FROM g
                 WHERE items > 0 AND (items > 1 OR ledger IS DISTINCT FROM figure)
                 ORDER BY entry_id, lot_id
                 LIMIT 5)
         SELECT bad.entry_id, bad.lot_id, bad.items, bad.figure, bad.ledger,
                (SELECT max(i.line_group) FROM settlement_items i
                  WHERE i.partner_id = (SELECT partner_id FROM st WHERE st.n = bad.n) AND i.entry_id = bad.entry_id AND i.lot_id = bad.lot_id
                    AND i.statement_id = (SELECT statement_id FROM st WHERE st.n = bad.n) AND ${itemSrc} = bad.src) AS line_group
           FROM bad
          ORDER BY bad.entry_id, bad.lot_id`,
        { funders, accounts },
      ),
    );
    return mismatches.map((m) => {
      if (m.items > 1) return `${m.items} items of entry ${m.entry_id}${m.lot_id ? `/${m.lot_id}` : ""} stand for one figure of the ledger`;
      const unit = MONEY.has(m.line_group) ? "minor units" : "points";
      return `item ${m.entry_id}${m.lot_id ? `/${m.lot_id}` : ""} (${m.line_group}) says ${m.figure} ${unit}, the ledger ${m.ledger ?? "nothing"}`;
    });
  }

  /**
   * network: the whole month must balance. Partners' nets plus the operator's revenue by source are
   * zero in every currency; the points the lines say moved equal what the members' accounts moved in
   * the ledger for the same entries (points conservation through the postings); the money lines equal
   * the opposite of what those entries moved on the members', the operator's and the banks' holding
   * accounts (money conservation through the postings); every entry that moves a partner's points or
   * money, the operator's points or breakage is in a statement. The sandbox network — sandbox
   * partners' accounts, sandbox members' entries and points — is in none of it.
   */
  async function network(trx: Trx, run: RunRow, p: Period): Promise<NetworkReport> {
    const problems: string[] = [];
    const statements: StatementRow[] = await trx("settlement_statements").where({ run_id: run.id }).orderBy("partner_id").select("*");
    const notReady = statements.filter((s) => s.step !== "ready" || s.status !== "open");
    if (notReady.length > 0) problems.push(`statements not ready: ${notReady.map((s) => s.id).join(", ")}`);
    // Every amount traces to the ledger: each item of the month re-derived from the postings — on a
    // second connection, in this transaction's snapshot, while this one runs the other checks (the
    // trace is one hashed aggregate on one core; the others are parallel plans that leave it room).
    const trace = traceInSnapshot(trx, statements);
    // Awaited whatever happens below: the exported snapshot lives only as long as this transaction.
    const traced = trace.then(
      (found) => ({ found }),
      (error: unknown) => ({ error }),
    );
    try {
      return await checkNetwork(trx, run, p, statements, problems, traced);
    } finally {
      await traced;
    }
  }

  /**
   * The month's trace (traceItems) on its own connection in trx's snapshot; in trx itself on PGlite
   * or a pool of one connection (no second connection to take).
   */
  async function traceInSnapshot(trx: Trx, statements: StatementRow[]): Promise<string[]> {
    const poolMax = (db.client as { config?: { pool?: { max?: number } } }).config?.pool?.max ?? 1;
    if (pgliteOf(db) || poolMax < 2) return traceItems(trx, statements);
    const [exported] = rowsOf<{ snapshot: string }>(await trx.raw("SELECT pg_export_snapshot() AS snapshot"));
    return db.transaction(async (t2) => {
      await t2.raw("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
      // A literal (the command takes no parameter): the server's own id, hex digits and dashes.
      const snapshot = exported!.snapshot;
      if (!/^[0-9A-F-]+$/i.test(snapshot)) throw new Error(`unexpected snapshot id ${snapshot}`);
      await t2.raw(`SET TRANSACTION SNAPSHOT '${snapshot}'`);
      await t2.raw("SET LOCAL jit = off");
      await t2.raw("SET LOCAL enable_nestloop = off");
      return traceItems(t2, statements);
    });
  }

  async function checkNetwork(
    trx: Trx,
    run: RunRow,
    p: Period,
    statements: StatementRow[],
    problems: string[],
    traced: Promise<{ found: string[] } | { error: unknown }>,
  ): Promise<NetworkReport> {
    const byGroup = rowsOf<{ currency: string; line_group: string; amount: bigint; points: bigint }>(
      await trx.raw(
        `SELECT s.currency, l.line_group, sum(l.amount_minor)::bigint AS amount, sum(l.points)::bigint AS points
           FROM settlement_lines l JOIN settlement_statements s ON s.id = l.statement_id
          WHERE s.run_id = ? GROUP BY s.currency, l.line_group ORDER BY s.currency, l.line_group`,
        [run.id],
      ),
    );
    // Operator-funded points valued at the issuance price the partner where they were earned would
    // have paid: per line, half-even, like every priced line.
    const operatorLines: Array<{ currency: string; line_group: string; points: bigint; price_micros: bigint }> = await trx("settlement_lines as l")
      .join("settlement_statements as s", "s.id", "l.statement_id")
      .where("s.run_id", run.id)
      .whereIn("l.line_group", ["operator_funded_issuance", "operator_funded_reversal"])
      .select("s.currency", "l.line_group", "l.points", "l.price_micros");
    const moneySide = rowsOf<{ asset: string; kind: string; amount: bigint }>(
      await trx.raw(
        `SELECT a.asset, a.kind, sum(p.amount)::bigint AS amount
           FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
          WHERE a.kind NOT IN ('partner_receivable', 'partner_payable') AND a.asset <> 'PTS'
            AND p.entry_id IN (SELECT i.entry_id FROM settlement_items i JOIN settlement_statements s ON s.id = i.statement_id
                                WHERE s.run_id = ? AND i.amount_minor IS NOT NULL)
          GROUP BY a.asset, a.kind ORDER BY a.asset, a.kind`,
        [run.id],
      ),
    );
    const currencies = [...new Set([...statements.map((s) => s.currency ?? "EUR"), ...moneySide.map((m) => m.asset)])].sort();
    const report: NetworkReport = {
      period: run.period,
      currencies: [],
      points: { issued: 0, clawed_back: 0, redeemed: 0, restored: 0, expired: 0, members_change: 0, liability_outstanding: 0, operator_funded: { issued: 0, clawed_back: 0, expired: 0 } },
      breakage: { points: 0, shares_paid_minor: {} },
    };
    for (const cur of currencies) {
      const revenue: Record<string, number> = {};
      let revenueTotal = 0n;
      const row = (g: string) => byGroup.find((r) => r.currency === cur && r.line_group === g);
      const value = (g: string) =>
        operatorLines.filter((l) => l.currency === cur && l.line_group === g).reduce((s, l) => s + pricePoints(BigInt(l.points), BigInt(l.price_micros), cur).minor, 0n);
      const promotionIssued = value("operator_funded_issuance");
      const promotionReturned = value("operator_funded_reversal");
      for (const g of [...GROUP_ORDER, ...ADJUSTMENT_GROUPS]) {
        let v = -BigInt(row(g)?.amount ?? 0n);
        // The points programme is credited the issuance price of operator-funded points as if the
        // operator were their partner, and the operator's promotions are charged the same below:
        // the pair cancels, so the total stays the cash the operator keeps.
        if (g === "operator_funded_issuance") v = promotionIssued;
        if (g === "operator_funded_reversal") v = -promotionReturned;
        if (g === "operator_funded_breakage") continue;
        revenue[g] = Number(v);
        revenueTotal += v;
      }
      revenue.operator_funded_promotion = Number(-(promotionIssued - promotionReturned));
      revenueTotal += -(promotionIssued - promotionReturned);
      const mine = statements.filter((s) => (s.currency ?? "EUR") === cur);
      const nets = mine.reduce((s, st) => s + BigInt(st.net_amount_minor ?? 0n), 0n);
      const sum = nets + revenueTotal;
      if (sum !== 0n) problems.push(`${cur}: partners' nets ${nets} and operator revenue ${revenueTotal} sum to ${sum}, not 0`);
      const moneyLines = [...MONEY].reduce((s, g) => s + BigInt(row(g)?.amount ?? 0n), 0n);
      const counterpart: Record<string, number> = {};
      let counterpartTotal = 0n;
      for (const m of moneySide.filter((x) => x.asset === cur)) {
        counterpart[m.kind] = Number(m.amount);
        counterpartTotal += BigInt(m.amount);
      }
      if (moneyLines + counterpartTotal !== 0n) {
        problems.push(
          `${cur}: money does not conserve: the partners' money lines sum to ${moneyLines}, the same entries moved ${counterpartTotal} on members', operator and bank holding accounts (they must cancel)`,
        );
      }
      const pts = (g: string) => BigInt(row(g)?.points ?? 0n);
      report.currencies.push({
        currency: cur,
        partners: mine.map((s) => {
          const net = BigInt(s.net_amount_minor ?? 0n);
          return { partner_id: s.partner_id, statement_id: s.id, net_amount_minor: Number(net), direction: net > 0n ? "payable_to_partner" : net < 0n ? "receivable_from_partner" : "nil" };
        }),
        operator_revenue_minor: revenue,
        operator_revenue_total_minor: Number(revenueTotal),
        partners_net_total_minor: Number(nets),
        network_sum_minor: Number(sum),
        operator_funded: {
          points_issued: Number(pts("operator_funded_issuance")),
          points_clawed_back: Number(pts("operator_funded_reversal")),
          points_expired: Number(pts("operator_funded_breakage")),
          promotion_cost_minor: Number(promotionIssued - promotionReturned),
        },
        money: { partners_lines_minor: Number(moneyLines), ledger_counterpart_minor: counterpart },
      });
      report.breakage.shares_paid_minor[cur] = -(revenue.breakage_share ?? 0);
    }
    const pts = (g: string) => byGroup.filter((r) => r.line_group === g).reduce((s, r) => s + BigInt(r.points), 0n);
    const op = { issued: pts("operator_funded_issuance"), clawed: pts("operator_funded_reversal"), expired: pts("operator_funded_breakage") };
    const flows = {
      issued: pts("issuance") + op.issued,
      clawed: pts("issuance_reversal") + op.clawed,
      redeemed: pts("redemption"),
      restored: pts("redemption_reversal"),
      expired: pts("breakage_share") + op.expired,
    };
    const [ledger] = rowsOf<{ members_change: bigint | null; liability: bigint | null }>(
      await trx.raw(
        `SELECT (SELECT sum(p.amount)::bigint FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
                  WHERE a.kind IN ('member_points', 'member_points_held', 'member_points_debt')
                    AND p.entry_id IN (SELECT i.entry_id FROM settlement_items i JOIN settlement_statements s ON s.id = i.statement_id
                                        WHERE s.run_id = ? AND i.amount_minor IS NULL)) AS members_change,
                (SELECT sum(p.amount)::bigint FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id JOIN ledger_entries e ON e.id = p.entry_id
                  WHERE a.kind IN ('member_points', 'member_points_held', 'member_points_debt') AND e.occurred_at < ?
                    AND NOT EXISTS (SELECT 1 FROM members m WHERE m.id = a.member_id AND m.sandbox)) AS liability`,
        [run.id, p.end],
      ),
    );
    const membersChange = BigInt(ledger?.members_change ?? 0n);
    const expected = flows.issued - flows.clawed - flows.redeemed + flows.restored - flows.expired;
    if (membersChange !== expected) {
      problems.push(
        `points do not conserve: lines say members gained ${expected} (issued ${flows.issued} − clawed back ${flows.clawed} − redeemed ${flows.redeemed} + restored ${flows.restored} − expired ${flows.expired}), the ledger says ${membersChange}`,
      );
    }
    const [uncleared] = rowsOf<{ n: number }>(
      await trx.raw(
        `SELECT count(*)::int AS n FROM ledger_entries e
          WHERE e.occurred_at < ?
            AND EXISTS (SELECT 1 FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
                         WHERE p.entry_id = e.id AND p.id <= ?
                           AND (a.kind IN ('partner_issuance', 'partner_redemption', 'partner_recovery', 'partner_receivable', 'partner_payable', 'breakage')
                                OR (a.kind = 'funding' AND a.asset = 'PTS'))
                           -- the sandbox network's accounts are cleared by no one
                           AND NOT EXISTS (SELECT 1 FROM partners sp WHERE sp.id = a.partner_id AND sp.sandbox))
            AND NOT EXISTS (SELECT 1 FROM members sm WHERE sm.id = e.member_id AND sm.sandbox)
            AND NOT EXISTS (SELECT 1 FROM settlement_items i WHERE i.entry_id = e.id)`,
        [p.end, String(run.posting_watermark ?? 0)],
      ),
    );
    if ((uncleared?.n ?? 0) > 0) problems.push(`${uncleared?.n} ledger entries before the period's end that move partners' points or money, operator-funded points or breakage are in no statement`);
    report.points = {
      issued: Number(flows.issued),
      clawed_back: Number(flows.clawed),
      redeemed: Number(flows.redeemed),
      restored: Number(flows.restored),
      expired: Number(flows.expired),
      members_change: Number(membersChange),
      liability_outstanding: Number(ledger?.liability ?? 0n),
      operator_funded: { issued: Number(op.issued), clawed_back: Number(op.clawed), expired: Number(op.expired) },
    };
    report.breakage.points = Number(flows.expired);
    const trace = await traced;
    if ("error" in trace) throw trace.error;
    // The trace's findings first, as when it ran before the other checks.
    problems.splice(statements.some((s) => s.step !== "ready" || s.status !== "open") ? 1 : 0, 0, ...trace.found);
    if (problems.length > 0) throw new ClearingImbalance(problems);
    return report;
  }

  /** close: every statement of the run final at once, each partner told. */
  async function close(trx: Trx, run: RunRow): Promise<void> {
    const now = clock.now();
    const statements: StatementRow[] = await trx("settlement_statements").where({ run_id: run.id }).orderBy("partner_id").select("*");
    for (const st of statements) {
      if (st.status === "closed") continue;
      await trx("settlement_statements").where({ id: st.id }).update({ status: "closed", step: "closed", closed_at: now });
      await recordEvent(trx, {
        type: "statement.ready",
        partnerId: st.partner_id,
        occurredAt: now,
        data: { statement_id: st.id, period: st.period, net_amount_minor: Number(st.net_amount_minor), currency: st.currency, content_sha256: st.content_sha256 },
      });
    }
    await trx("settlement_runs").where({ id: run.id }).update({ status: "closed", closed_at: now });
  }

  const RUN_NEXT: Record<string, RunRow["step"]> = { statements: "clearing", clearing: "network", network: "close", close: "done" };

  /** Moves the run on as far as it can go now; returns the run. Safe to call any number of times. */
  async function advanceRun(runId: string): Promise<RunRow> {
    for (;;) {
      let step = "";
      const out: { result?: RunRow; failure?: ClearingImbalance } = {};
      await db.transaction(async (trx) => {
        const run = await loadRun(trx, runId, true);
        if (run.status !== "running" || run.step === "done") {
          out.result = run;
          return;
        }
        const p = runPeriod(run);
        step = run.step;
        const patch: Record<string, unknown> = { updated_at: clock.now() };
        if (step === "statements") {
          const [wm] = rowsOf<{ max: bigint | null }>(await trx.raw("SELECT max(id)::bigint AS max FROM ledger_postings"));
          patch.posting_watermark = String(wm?.max ?? 0);
          await createStatements(trx, run, p);
        } else if (step === "clearing") {
          const rows: Array<{ status: string; step: string; id: string; failure: string | null }> = await trx("settlement_statements")
            .where({ run_id: run.id })
            .select("id", "status", "step", "failure");
          const failed = rows.filter((r) => r.status === "failed");
          if (failed.length > 0) {
            await trx("settlement_runs").where({ id: run.id }).update({ status: "failed", failure: `statement ${failed[0]!.id} failed: ${failed[0]!.failure}`.slice(0, 4000), updated_at: clock.now() });
            out.result = { ...run, status: "failed" };
            return;
          }
          if (rows.some((r) => r.step !== "ready")) {
            out.result = run;
            return;
          }
          // The month's items are new: let the planner see them before the network-wide joins
          // (committed here, so the network step's second connection sees them too).
          await trx.raw("ANALYZE settlement_items");
        } else if (step === "network") {
          // Month-wide aggregates planned once: compiling them (JIT) costs more than it saves. The
          // run's statements and items are new to the planner, which takes a month of items for a
          // few thousand and probes the ledger once per item: every join here is a hash join.
          await trx.raw("SET LOCAL jit = off");
          await trx.raw("SET LOCAL enable_nestloop = off");
          try {
            patch.report = JSON.stringify(await network(trx, run, p));
          } catch (err) {
            if (!(err instanceof ClearingImbalance)) throw err;
            out.failure = err;
            return;
          }
        } else if (step === "close") {
          await close(trx, run);
        }
        await trx("settlement_runs").where({ id: run.id }).update({ ...patch, step: RUN_NEXT[step] });
        await hook({ scope: "run", id: runId, step, phase: "before-commit", trx });
      });
      if (out.failure) {
        const failure = out.failure;
        const ids: string[] = (await db("settlement_statements").where({ run_id: runId }).select("id")).map((r: { id: string }) => r.id);
        await failStatements(runId, ids, failure);
        throw failure;
      }
      if (out.result) return out.result;
      await hook({ scope: "run", id: runId, step, phase: "after-commit" });
    }
  }

  return {
    clearStatement,
    advanceRun,

    /**
     * Starts clearing a month (or restarts a failed one). Starting twice is harmless: the run id is
     * the period's and the jobs' ids are deterministic. Months close in order and only once ended.
     */
    async startRun(period: string): Promise<{ run: RunRow; created: boolean }> {
      let p: Period;
      try {
        p = parsePeriod(period);
      } catch {
        throw settlementErrors.make("period-not-ended", `${period} is not a period (YYYY-MM).`);
      }
      const now = clock.now();
      if (p.end > now) throw settlementErrors.make("period-not-ended", `${period} ends at ${nowIso(p.end)}; it can be cleared after that.`);
      return db.transaction(async (trx) => {
        // One writer of runs at a time: the order of months is decided under this lock.
        await trx.raw("SELECT pg_advisory_xact_lock(hashtext('settlement_runs'))");
        const existing: RunRow | undefined = await trx("settlement_runs").where({ period }).forUpdate().first("*");
        if (existing && existing.status === "running") {
          // Starting a running month again resumes it: its jobs may have been lost with a worker
          // (the in-process queue) or failed on a transient error. Every step is idempotent, so the
          // extra jobs do only what is left.
          const stamp = now.getTime();
          await enqueueInTx(trx, "settlement.run", { runId: existing.id }, { jobId: `settle-resume:${period}.${existing.attempts}:${stamp}` });
          const pending: Array<{ id: string; partner_id: string }> = await trx("settlement_statements")
            .where({ run_id: existing.id, status: "open" })
            .whereNot({ step: "ready" })
            .select("id", "partner_id");
          for (const st of pending) await enqueueInTx(trx, "settlement.clear", { statementId: st.id }, { jobId: `clear-resume:${st.partner_id}:${period}.${stamp}` });
          return { run: existing, created: false };
        }
        if (existing && existing.status === "closed") return { run: existing, created: false };
        const later: { period: string } | undefined = await trx("settlement_runs").where("period", ">", period).first("period");
        if (later) throw settlementErrors.make("run-closed", `${later.period} is already cleared; ${period} can no longer be opened. Late entries go into the next run as adjustments.`);
        const open: { period: string } | undefined = await trx("settlement_runs").where("period", "<", period).andWhereNot({ status: "closed" }).first("period");
        if (open) throw settlementErrors.make("previous-period-open", `${open.period} is not closed yet; months close in order.`);
        // No gap either: once a month is cleared, the next one is the only one that may open (a
        // skipped month could never be cleared after, and its entries would land in a later one).
        const last: { period: string } | undefined = await trx("settlement_runs").where("period", "<", period).orderBy("period", "desc").first("period");
        const due = last ? periodOf(parsePeriod(last.period).end) : period;
        if (due !== period) throw settlementErrors.make("previous-period-open", `${due} has not been cleared; months close in order (the last cleared is ${last!.period}).`);
        let run: RunRow;
        if (existing) {
          await trx("settlement_statements").where({ run_id: existing.id, status: "failed" }).update({ status: "open", step: "collect" });
          [run] = await trx("settlement_runs")
            .where({ id: existing.id })
            .update({ status: "running", step: "statements", failure: null, attempts: existing.attempts + 1, updated_at: now })
            .returning("*");
        } else {
          [run] = await trx("settlement_runs")
            .insert({ id: `run_${period}`, period, period_start: p.start, period_end: p.end, created_at: now, updated_at: now })
            .returning("*");
        }
        await enqueueInTx(trx, "settlement.run", { runId: run.id }, { jobId: `settle:${period}:${run.attempts}` });
        return { run, created: true };
      });
    },

    /**
     * The whole month in this process: the same steps the jobs run. Partners' statements are cleared
     * by `concurrency` lanes at once (1: one after another), as that many `settlement.clear` workers
     * would: each statement is its own rows and its own transactions, so lanes never share work.
     */
    async runToEnd(runId: string, opts: { concurrency?: number } = {}): Promise<RunRow> {
      let run = await advanceRun(runId);
      if (run.status !== "running") return run;
      const ids: string[] = (await db("settlement_statements").where({ run_id: runId }).orderBy("partner_id").select("id")).map((r: { id: string }) => r.id);
      let next = 0;
      const lane = async () => {
        while (next < ids.length) await clearStatement(ids[next++]!, { lanes });
      };
      const lanes = Math.max(1, Math.min(opts.concurrency ?? 1, ids.length));
      await Promise.all(Array.from({ length: lanes }, lane));
      run = await advanceRun(runId);
      return run;
    },

    async getRun(runId: string) {
      const run: RunRow | undefined = await db("settlement_runs").where({ id: runId }).first("*");
      if (!run) throw settlementErrors.make("run-not-found", `No settlement run ${runId}.`);
      const statements: StatementRow[] = await db("settlement_statements").where({ run_id: runId }).orderBy("partner_id").select("*");
      return { run, statements };
    },
  };
}

export type ClearingService = ReturnType<typeof createClearingService>;
