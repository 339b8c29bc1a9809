import { createHash } from "node:crypto";
import type { Db, DbOrTrx } from "../../gateway/src/infra/db.ts";
import { csvRow, csvText } from "./csv.ts";
import { parsePeriod } from "./period.ts";
import { settlementErrors } from "./settlement.errors.ts";
import { decodeCursor, encodeCursor } from "../../gateway/src/http/cursor.ts";

export const CSV_HEADER = [
  "statement_id",
  "line_no",
  "line_group",
  "occurred_at",
  "entry_kind",
  "partner_transaction_id",
  "partner_refund_id",
  "hub_transaction_id",
  "ledger_entry_id",
  "lot_id",
  "member_id",
  "points",
  "price_micros",
  "share_bps",
  "corrects_period",
  "corrects_statement_id",
  "amount_minor",
] as const;

/** Items per page of the CSV: a page is one query and one chunk (a few MB at most). */
const PAGE = 10_000;

function rowsOf<T>(result: unknown): T[] {
  return (result as { rows: T[] }).rows;
}

/** An item as the CSV prints it: numbers arrive as their decimal text, the time as the driver's Date. */
interface CsvItemRow {
  seq: number;
  statement_id: string;
  line_no: string;
  line_group: string;
  occurred_at: Date | string;
  entry_kind: string;
  partner_transaction_id: string | null;
  partner_refund_id: string | null;
  hub_transaction_id: string | null;
  entry_id: string;
  lot_id: string | null;
  member_id: string | null;
  points: string;
  price_micros: string | null;
  share_bps: string | null;
  corrects_period: string | null;
  corrects_statement_id: string | null;
  amount_minor: string | null;
}

/** The item's record: csvRow's rules (csv.ts), numbers as the database wrote them. */
function csvRecord(r: CsvItemRow): string {
  return `${[
    csvText(r.statement_id),
    r.line_no,
    csvText(r.line_group),
    new Date(r.occurred_at).toISOString(),
    csvText(r.entry_kind),
    csvText(r.partner_transaction_id),
    csvText(r.partner_refund_id),
    csvText(r.hub_transaction_id),
    csvText(r.entry_id),
    csvText(r.lot_id),
    csvText(r.member_id),
    r.points,
    r.price_micros ?? "",
    r.share_bps ?? "",
    csvText(r.corrects_period),
    csvText(r.corrects_statement_id),
    r.amount_minor ?? "",
  ].join(",")}\r\n`;
}


/**
 * Items with everything the CSV prints of them, as fields for csvRecord. Every look-up is by primary key, one
 * index probe per item at most (LIMIT 1 keeps the planner from hashing a whole month's ledger for a
 * page). The item carries its entry's reference, its member (since 20261201090000) and the
 * partner's ids (since 20261201150000: refs_collected); the look-ups are for items collected before.
 */
const ITEMS_SQL = `SELECT i.seq, i.statement_id, i.line_no::text, i.line_group, i.occurred_at, i.entry_kind, i.entry_id, nullif(i.lot_id, '') AS lot_id, coalesce(i.member_id, e.member_id) AS member_id, i.points::text,
                (CASE WHEN i.refs_collected THEN i.price_micros
                      WHEN i.line_group IN ('issuance', 'issuance_reversal', 'breakage_share', 'operator_funded_issuance', 'operator_funded_reversal', 'operator_funded_breakage') THEN c.issuance_price_micros
                      WHEN i.line_group IN ('redemption', 'redemption_reversal') THEN c.redemption_price_micros END)::text AS price_micros,
                i.amount_minor::text,
                (CASE WHEN i.refs_collected THEN i.share_bps WHEN i.line_group = 'breakage_share' THEN c.breakage_share_bps END)::text AS share_bps,
                i.corrects_period,
                CASE WHEN i.refs_collected THEN i.partner_transaction_id
                     ELSE coalesce(t.partner_transaction_id, r.partner_transaction_id, ft.partner_transaction_id, lt.partner_transaction_id) END AS partner_transaction_id,
                CASE WHEN i.refs_collected THEN i.partner_refund_id ELSE f.partner_refund_id END AS partner_refund_id,
                CASE WHEN i.refs_collected THEN i.hub_transaction_id ELSE coalesce(t.id, r.transaction_id, ft.id, lt.id) END AS hub_transaction_id,
                CASE WHEN i.refs_collected THEN i.corrects_statement_id ELSE
                (SELECT s2.statement_id
                   FROM ledger_entries oe
                   JOIN settlement_items s2 ON s2.entry_id = oe.id AND s2.partner_id = i.partner_id
                   JOIN settlement_statements ss ON ss.id = s2.statement_id AND ss.status = 'closed' AND ss.period < :period
                  WHERE i.line_group IN ('issuance_reversal', 'redemption_reversal')
                    AND oe.kind IN ('earn', 'burn', 'capture')
                    AND oe.ref_type = coalesce(ft.ledger_ref_type, i.ref_type)
                    AND oe.ref_id = coalesce(ft.ledger_ref_id, i.ref_id)
                  ORDER BY ss.period, s2.statement_id LIMIT 1) END AS corrects_statement_id
           FROM (SELECT * FROM settlement_items WHERE statement_id = :statementId AND seq = ANY (:seqs::int[])) i
           LEFT JOIN LATERAL (SELECT e.member_id FROM ledger_entries e WHERE i.member_id IS NULL AND NOT i.refs_collected AND e.id = i.entry_id LIMIT 1) e ON true
           LEFT JOIN LATERAL (SELECT c.issuance_price_micros, c.redemption_price_micros, c.breakage_share_bps FROM contract_versions c WHERE NOT i.refs_collected AND c.id = i.contract_version_id LIMIT 1) c ON true
           LEFT JOIN LATERAL (SELECT t.id, t.partner_transaction_id FROM point_transactions t WHERE NOT i.refs_collected AND i.ref_type = 'transaction' AND t.id = i.ref_id LIMIT 1) t ON true
           LEFT JOIN LATERAL (SELECT r.transaction_id, r.partner_transaction_id FROM redemptions r WHERE NOT i.refs_collected AND i.ref_type = 'redemption' AND r.id = i.ref_id LIMIT 1) r ON true
           LEFT JOIN LATERAL (SELECT f.partner_refund_id, f.transaction_id FROM point_refunds f WHERE NOT i.refs_collected AND i.ref_type = 'refund' AND f.id = i.ref_id LIMIT 1) f ON true
           LEFT JOIN LATERAL (SELECT ft.id, ft.partner_transaction_id, ft.ledger_ref_type, ft.ledger_ref_id FROM point_transactions ft WHERE ft.id = f.transaction_id LIMIT 1) ft ON true
           LEFT JOIN LATERAL (SELECT l.entry_id FROM ledger_lots l WHERE NOT i.refs_collected AND i.lot_id <> '' AND l.id = i.lot_id LIMIT 1) l ON true
           LEFT JOIN LATERAL (SELECT le.ref_type, le.ref_id FROM ledger_entries le WHERE le.id = l.entry_id LIMIT 1) le ON true
           LEFT JOIN LATERAL (SELECT lt.id, lt.partner_transaction_id FROM point_transactions lt WHERE le.ref_type = 'transaction' AND lt.id = le.ref_id LIMIT 1) lt ON true
          ORDER BY i.seq`;

/** A text field as csvText would change it: a quote, comma, CR or LF anywhere, or a formula's first character. */
const NEEDS_CSV_TEXT = `$re$[",\r\n]|(^|\x1f)[-=+@\t\r]$re$`;

/**
 * A page of the CSV as the database writes it: each item's record as csvRecord would, when its
 * fields were collected with it (refs_collected), no text field needs csvText to change it (the
 * check sees every field's start: they are joined by a character no id holds) and its time is one
 * toISOString prints with a four-digit year (UTC, milliseconds truncated, as the driver reads
 * them). One text per item crosses the wire instead of seventeen fields the driver parses — most of
 * a page's time. Any other item has no record here (NULL): csvRecord writes it from itemsSql.
 */
const PAGE_SQL = `SELECT i.seq,
       CASE WHEN i.refs_collected AND i.occurred_at >= '0001-01-01T00:00:00Z' AND i.occurred_at < '10000-01-01T00:00:00Z'
                 AND concat_ws(chr(31), i.statement_id, i.line_group, i.entry_kind, i.partner_transaction_id, i.partner_refund_id, i.hub_transaction_id,
                               i.entry_id, i.lot_id, i.member_id, i.corrects_period, i.corrects_statement_id) !~ ${NEEDS_CSV_TEXT}
            THEN concat_ws(',', i.statement_id, coalesce(i.line_no::text, ''), i.line_group, to_char(i.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                           i.entry_kind, coalesce(i.partner_transaction_id, ''), coalesce(i.partner_refund_id, ''), coalesce(i.hub_transaction_id, ''), i.entry_id, i.lot_id,
                           coalesce(i.member_id, ''), i.points::text, coalesce(i.price_micros::text, ''), coalesce(i.share_bps::text, ''), coalesce(i.corrects_period, ''),
                           coalesce(i.corrects_statement_id, ''), coalesce(i.amount_minor::text, '') || E'\\r\\n') END AS record
  FROM settlement_items i
 WHERE i.statement_id = :statementId AND i.seq > :after
 ORDER BY i.seq LIMIT :limit`;

/**
 * Streams the statement's line items as CSV, one page of items at a time (keyset on the item's
 * place), so a month of any size is never held in memory; a page leaves as one chunk. Everything
 * it prints is immutable once the statement is priced: the same statement always gives the same bytes.
 *
 * Each item names the partner's own ids: the purchase's partner_transaction_id (for a two-phase
 * redemption, the redemption's; for a refund, the refunded purchase's, with the partner's refund
 * id; for breakage, the purchase that earned the expired points).
 */
export async function renderCsv(conn: DbOrTrx, statementId: string, write: (chunk: string) => void | Promise<void>): Promise<number> {
  const st: { partner_id: string; period: string } | undefined = await conn("settlement_statements").where({ id: statementId }).first("partner_id", "period");
  if (!st) throw settlementErrors.make("statement-not-found", `No statement ${statementId}.`);
  await write(csvRow([...CSV_HEADER]));
  let after = 0;
  let count = 0;
  for (;;) {
    const page = await conn.transaction(async (trx) => {
      // A page is a few thousand index probes: a parallel plan only adds the start of its workers.
      await trx.raw("SET LOCAL max_parallel_workers_per_gather = 0");
      // Nor is there anything for JIT to win: compiling the page's plan costs more than running it.
      await trx.raw("SET LOCAL jit = off");
      // The page is read by the items' (statement, seq) index even while the statistics have not
      // caught up with a statement collected moments ago.
      await trx.raw("SET LOCAL enable_seqscan = off");
      // Each look-up is by a key that (but for the contract) differs on every item: a cache of them
      // (Memoize) never hits and only adds its upkeep to every probe — a third of a page's time.
      await trx.raw("SET LOCAL enable_memoize = off");
      const rows = rowsOf<{ seq: number; record: string | null }>(
        await trx.raw(PAGE_SQL, { statementId, after, limit: PAGE }),
      );
      const missing = rows.filter((r) => r.record === null).map((r) => r.seq);
      if (missing.length > 0) {
        const records = new Map(
          rowsOf<CsvItemRow>(await trx.raw(ITEMS_SQL, { period: st.period, statementId, seqs: missing })).map((r) => [r.seq, csvRecord(r)]),
        );
        for (const r of rows) if (r.record === null) r.record = records.get(r.seq)!;
      }
      return { n: rows.length, last: rows[rows.length - 1]?.seq ?? after, text: rows.map((r) => r.record).join("") };
    });
    if (page.n > 0) await write(page.text);
    count += page.n;
    if (page.n < PAGE) return count;
    after = page.last;
  }
}

/** The sha256 of the CSV, computed by streaming it (one update per page). */
export async function csvSha256(conn: DbOrTrx, statementId: string): Promise<{ sha256: string; items: number }> {
  const hash = createHash("sha256");
  const items = await renderCsv(conn, statementId, (chunk) => {
    hash.update(chunk, "utf8");
  });
  return { sha256: hash.digest("hex"), items };
}

export interface StatementRow {
  id: string;
  run_id: string;
  partner_id: string;
  period: string;
  status: "open" | "failed" | "closed";
  step: string;
  currency: string | null;
  opening_position_minor: bigint | null;
  net_amount_minor: bigint | null;
  closing_position_minor: bigint | null;
  due_date: string | null;
  content_sha256: string | null;
  csv_sha256: string | null;
  pdf_sha256?: string | null;
  item_count: number | null;
  attempts: number;
  failure: string | null;
  created_at: Date | string;
  closed_at: Date | string | null;
}

export interface LineRow {
  statement_id: string;
  line_no: number;
  line_group: string;
  contract_version_id: string | null;
  contract_version: number | null;
  corrects_period: string | null;
  points: bigint;
  item_count: number;
  transaction_count: number;
  price_micros: bigint | null;
  fee_minor: bigint | null;
  share_bps: number | null;
  exact_amount: string | null;
  amount_minor: bigint;
  rounding: string;
  description: string;
  /** An `adjustment` line: the adjustment it prints and the statement line it corrects. */
  adjustment_id?: string | null;
  corrects_statement_id?: string | null;
  corrects_line_no?: number | null;
}

const num = (v: bigint | number | null) => (v === null ? null : Number(v));


export function lineView(l: LineRow) {
  return {
    line_no: l.line_no,
    group: l.line_group,
    description: l.description,
    contract_version: l.contract_version,
    corrects_period: l.corrects_period,
    points: Number(l.points),
    items: l.item_count,
    transactions: l.transaction_count,
    price_micros: num(l.price_micros),
    fee_minor: num(l.fee_minor),
    share_bps: l.share_bps,
    exact_amount: l.exact_amount,
    amount_minor: Number(l.amount_minor),
    rounding: l.rounding,
    // Only on adjustment lines, so the content (and hash) of every other line stays as it was.
    ...(l.adjustment_id ? { adjustment: { id: l.adjustment_id, corrects_statement_id: l.corrects_statement_id!, corrects_line_no: l.corrects_line_no! } } : {}),
  };
}

function direction(net: bigint): "payable_to_partner" | "receivable_from_partner" | "nil" {
  return net > 0n ? "payable_to_partner" : net < 0n ? "receivable_from_partner" : "nil";
}

/**
 * The statement as the API shows it. The canonical form of the same content (no timestamps of the
 * read, fixed key order, amounts as integers) is what `content_sha256` hashes.
 */
export function statementContent(st: StatementRow, lines: LineRow[]) {
  const p = parsePeriod(st.period);
  const views = lines.map(lineView);
  const isFee = (g: string) => g === "transaction_fee" || g === "monthly_fee";
  const sum = (ls: LineRow[]) => ls.reduce((s, l) => s + BigInt(l.amount_minor), 0n);
  const net = BigInt(st.net_amount_minor ?? 0n);
  return {
    id: st.id,
    partner_id: st.partner_id,
    period: st.period,
    period_start: p.start.toISOString(),
    period_end: p.end.toISOString(),
    currency: st.currency,
    opening_position_minor: Number(st.opening_position_minor ?? 0n),
    net_amount_minor: Number(net),
    closing_position_minor: Number(st.closing_position_minor ?? 0n),
    direction: direction(net),
    due_date: st.due_date,
    lines: views.filter((l) => !isFee(l.group) && l.corrects_period === null),
    fees: views.filter((l) => isFee(l.group)),
    adjustments: views.filter((l) => !isFee(l.group) && l.corrects_period !== null),
    totals: {
      lines_minor: Number(sum(lines.filter((l) => !isFee(l.line_group) && l.corrects_period === null))),
      fees_minor: Number(sum(lines.filter((l) => isFee(l.line_group)))),
      adjustments_minor: Number(sum(lines.filter((l) => !isFee(l.line_group) && l.corrects_period !== null))),
    },
    item_count: st.item_count ?? 0,
    csv_sha256: st.csv_sha256,
  };
}

export function contentSha256(st: StatementRow, lines: LineRow[]): string {
  return createHash("sha256").update(JSON.stringify(statementContent(st, lines)), "utf8").digest("hex");
}

export function statementView(st: StatementRow, lines: LineRow[]) {
  return {
    ...statementContent(st, lines),
    status: st.status,
    content_sha256: st.content_sha256,
    pdf_sha256: st.pdf_sha256 ?? null,
    closed_at: st.closed_at === null ? null : new Date(st.closed_at).toISOString(),
  };
}

export function statementSummary(st: StatementRow) {
  const net = BigInt(st.net_amount_minor ?? 0n);
  return {
    id: st.id,
    period: st.period,
    currency: st.currency,
    net_amount_minor: Number(net),
    direction: direction(net),
    due_date: st.due_date,
    content_sha256: st.content_sha256,
    closed_at: st.closed_at === null ? null : new Date(st.closed_at).toISOString(),
  };
}

/** What partners read: their own closed statements only; anything else is 404. */
export function createStatementsService(deps: { db: Db }) {
  const { db } = deps;

  async function closedOf(partnerId: string, statementId: string): Promise<StatementRow> {
    const st: StatementRow | undefined = await db("settlement_statements").where({ id: statementId, partner_id: partnerId, status: "closed" }).first("*");
    if (!st) throw settlementErrors.make("statement-not-found", `No statement ${statementId}.`);
    return st;
  }

  return {
    async list(partnerId: string, opts: { cursor?: string; limit?: number }) {
      const limit = Math.min(Math.max(opts.limit ?? 12, 1), 100);
      const before = opts.cursor ? decodeCursor(opts.cursor, /^\d{4}-\d{2}$/) : undefined;
      const q = db("settlement_statements").where({ partner_id: partnerId, status: "closed" });
      if (before) q.andWhere("period", "<", before);
      const rows: StatementRow[] = await q.orderBy("period", "desc").limit(limit + 1).select("*");
      const page = rows.slice(0, limit);
      return {
        items: page.map(statementSummary),
        next_cursor: rows.length > limit ? encodeCursor(page[page.length - 1]!.period) : null,
      };
    },

    async get(partnerId: string, statementId: string) {
      const st = await closedOf(partnerId, statementId);
      const lines: LineRow[] = await db("settlement_lines").where({ statement_id: st.id }).orderBy("line_no").select("*");
      return statementView(st, lines);
    },

    /** Checks the caller may read the statement, then returns its hashes for the download's headers. */
    async csvHead(partnerId: string, statementId: string) {
      const st = await closedOf(partnerId, statementId);
      return { id: st.id, period: st.period, csvSha256: st.csv_sha256!, contentSha256: st.content_sha256! };
    },

    /** The summary PDF stored when the statement was priced: the same bytes every time. */
    async pdf(partnerId: string, statementId: string): Promise<{ id: string; sha256: string; bytes: Buffer }> {
      const st = await closedOf(partnerId, statementId);
      const row: { sha256: string; bytes: Buffer | Uint8Array } | undefined = await db("settlement_statement_pdfs").where({ statement_id: st.id }).first("sha256", "bytes");
      if (!row) throw settlementErrors.make("statement-not-found", `Statement ${statementId} has no PDF summary (closed before summaries were made).`);
      return { id: st.id, sha256: row.sha256, bytes: Buffer.from(row.bytes) };
    },

    renderCsv: (statementId: string, write: (chunk: string) => void | Promise<void>) => renderCsv(db, statementId, write),
  };
}

export type StatementsService = ReturnType<typeof createStatementsService>;
