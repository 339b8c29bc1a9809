import type { Trx } from "../../gateway/src/infra/db.ts";
import { decimal, minorExponent } from "./money.ts";
import { ClearingImbalance } from "./settlement.errors.ts";
import type { LineRow, StatementRow } from "./statements.service.ts";

/**
 * Money adjustments in clearing: what accepted disputes booked (`settlement_adjustments`). Clearing
 * calls this module at three points — price, verify, network — and nothing else of clearing knows
 * about adjustments.
 *
 * An adjustment is booked into the month in which it was accepted, which is always still open (a
 * month is cleared only after it ended). The first statement of the partner priced for that month
 * (or a later one) claims it — in the price step's transaction, so a crashed step claims it again
 * on the rerun, and a statement re-priced after a failed check claims the same ones — and prints it
 * as one `adjustment` line naming the statement and line it corrects. The operator's side of the
 * amount is the network report's `adjustment` revenue source, so the network still sums to zero.
 */

export const ADJUSTMENT_GROUPS = ["adjustment"] as const;

export const ADJUSTMENT_ROUNDING = "exact: the amount accepted on the dispute, no rounding";

type Draft = Omit<LineRow, "statement_id" | "line_no"> & { sortKey: string };

interface AdjustmentRow {
  id: string;
  currency: string;
  amount_minor: bigint;
  corrects_statement_id: string;
  corrects_line_no: number;
  corrects_period: string;
  description: string;
}

function rowsOf<T>(result: unknown): T[] {
  return (result as { rows: T[] }).rows;
}

/** price: claims the partner's pending adjustments for this statement and drafts their lines (after every other line). */
export async function adjustmentDrafts(trx: Trx, st: StatementRow, currency: string): Promise<Draft[]> {
  await trx("settlement_adjustments")
    .where({ partner_id: st.partner_id })
    .andWhere("period", "<=", st.period)
    .andWhere((q) => q.whereNull("statement_id").orWhere({ statement_id: st.id }))
    .update({ statement_id: st.id });
  const rows = rowsOf<AdjustmentRow>(
    await trx.raw(
      `SELECT a.id, a.currency, a.amount_minor, a.corrects_statement_id, a.corrects_line_no, s.period AS corrects_period, a.description
         FROM settlement_adjustments a JOIN settlement_statements s ON s.id = a.corrects_statement_id
        WHERE a.statement_id = ? ORDER BY a.id`,
      [st.id],
    ),
  );
  const wrong = rows.filter((r) => r.currency !== currency);
  if (wrong.length > 0) throw new ClearingImbalance(wrong.map((r) => `adjustment ${r.id} is in ${r.currency}, the statement in ${currency}`));
  return rows.map((r) => ({
    line_group: "adjustment",
    contract_version_id: null,
    contract_version: null,
    corrects_period: r.corrects_period,
    points: 0n,
    item_count: 0,
    transaction_count: 0,
    price_micros: null,
    fee_minor: null,
    share_bps: null,
    exact_amount: decimal(BigInt(r.amount_minor), minorExponent(currency)),
    amount_minor: BigInt(r.amount_minor),
    rounding: ADJUSTMENT_ROUNDING,
    description: r.description,
    adjustment_id: r.id,
    corrects_statement_id: r.corrects_statement_id,
    corrects_line_no: r.corrects_line_no,
    sortKey: `z|${r.id}`,
  }));
}

/** verify: every adjustment the statement claimed is on exactly one line, for exactly its amount and reference. */
export async function adjustmentProblems(trx: Trx, statementId: string): Promise<string[]> {
  const rows = rowsOf<{ adjustment: string | null; line_no: number | null; problem: string }>(
    await trx.raw(
      `SELECT coalesce(a.id, l.adjustment_id) AS adjustment, l.line_no,
              CASE WHEN l.line_no IS NULL THEN 'is claimed by the statement but on no line'
                   WHEN a.id IS NULL THEN 'is on a line but not claimed by the statement'
                   ELSE 'is on a line whose amount or reference differs' END AS problem
         FROM (SELECT * FROM settlement_adjustments WHERE statement_id = ?) a
         FULL JOIN (SELECT * FROM settlement_lines WHERE statement_id = ? AND line_group = 'adjustment') l ON l.adjustment_id = a.id
        WHERE a.id IS NULL OR l.line_no IS NULL
           OR l.amount_minor <> a.amount_minor OR l.corrects_statement_id IS DISTINCT FROM a.corrects_statement_id
           OR l.corrects_line_no IS DISTINCT FROM a.corrects_line_no
        LIMIT 5`,
      [statementId, statementId],
    ),
  );
  return rows.map((r) => `adjustment ${r.adjustment ?? "(none)"} ${r.problem}${r.line_no === null ? "" : ` (line ${r.line_no})`}`);
}
