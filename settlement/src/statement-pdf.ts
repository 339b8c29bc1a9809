import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import * as fontkit from "fontkit";
import PDFDocument from "pdfkit";
import type { DbOrTrx } from "../../gateway/src/infra/db.ts";
import { decimal, minorExponent } from "./money.ts";
import { parsePeriod } from "./period.ts";
import { statementContent, type LineRow, type StatementRow } from "./statements.service.ts";

/**
 * The statement's summary as a PDF a finance team can file (PDF/A-2b: fonts embedded, an sRGB
 * output intent, XMP metadata).
 *
 * Byte-identical for the same statement: everything printed comes from the statement's stored
 * content; the document's dates are the period's end (not the time of rendering); pdfkit derives
 * the trailer's /ID from those dates and the other info fields, and its font subsets are named from
 * the font's place in the document, never at random. The bytes are stored when the statement is
 * priced (`settlement_statement_pdfs`), so a later version of the renderer never changes a filed
 * document.
 *
 * DejaVu Sans is embedded (subset) so partners' names in any European script print as they are.
 */

const require = createRequire(import.meta.url);
const FONT_FILES = {
  regular: require.resolve("dejavu-fonts-ttf/ttf/DejaVuSans.ttf"),
  bold: require.resolve("dejavu-fonts-ttf/ttf/DejaVuSans-Bold.ttf"),
  mono: require.resolve("dejavu-fonts-ttf/ttf/DejaVuSansMono.ttf"),
};

/**
 * The fonts parsed once per process, not once per document: parsing the three fonts' tables was most
 * of a PDF's time (a month renders one per partner). pdfkit embeds a parsed font exactly as it
 * embeds the file it would parse (each document takes its own subset), so the bytes are the same.
 */
let parsedFonts: Record<keyof typeof FONT_FILES, fontkit.Font> | undefined;
function fonts(): Record<keyof typeof FONT_FILES, fontkit.Font> {
  parsedFonts ??= {
    regular: fontkit.create(readFileSync(FONT_FILES.regular)),
    bold: fontkit.create(readFileSync(FONT_FILES.bold)),
    mono: fontkit.create(readFileSync(FONT_FILES.mono)),
  };
  return parsedFonts;
}

type Content = ReturnType<typeof statementContent>;
type LineView = Content["lines"][number];

export interface PdfInput {
  content: Content;
  contentSha256: string;
  partnerName: string;
}

const MARGIN = 48;
const PAGE = { width: 595.28, height: 841.89 };
const BOTTOM = PAGE.height - MARGIN - 24;

const DIRECTION: Record<string, string> = {
  payable_to_partner: "payable to the partner by the operator",
  receivable_from_partner: "due from the partner to the operator",
  nil: "nothing to settle",
};

function money(minor: number, currency: string): string {
  const s = decimal(BigInt(minor), minorExponent(currency));
  return minor > 0 ? `+${s}` : s;
}

function rate(l: LineView, currency: string): string {
  if (l.fee_minor !== null) return `${decimal(BigInt(l.fee_minor), minorExponent(currency))} each`;
  if (l.price_micros === null) return "";
  const price = decimal(BigInt(l.price_micros), 6);
  return l.share_bps === null ? `${price}/pt` : `${price}/pt × ${decimal(BigInt(l.share_bps), 2)}%`;
}

function describe(l: LineView): string {
  const parts = [l.description];
  // An adjustment line's description already names the statement and line it corrects.
  if (l.corrects_period && !l.adjustment) parts.push(`(entries of ${l.corrects_period})`);
  return parts.join(" ");
}

/** Renders the summary; the same input always gives the same bytes. */
export async function renderStatementPdf(input: PdfInput): Promise<Buffer> {
  const { content: c } = input;
  const currency = c.currency ?? "EUR";
  const date = parsePeriod(c.period).end;
  const doc = new PDFDocument({
    size: "A4",
    margin: MARGIN,
    pdfVersion: "1.7",
    subset: "PDF/A-2b",
    tagged: false,
    autoFirstPage: true,
    info: {
      Title: `Settlement statement ${c.id}`,
      Author: "Coalition loyalty hub",
      Subject: `Settlement ${c.period} for ${c.partner_id}`,
      Creator: "coalition-loyalty-hub settlement",
      Producer: "coalition-loyalty-hub (pdfkit)",
      CreationDate: date,
      ModDate: date,
    },
  });
  const chunks: Buffer[] = [];
  doc.on("data", (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise<void>((resolve, reject) => {
    doc.on("end", () => resolve());
    doc.on("error", reject);
  });
  // pdfkit takes a parsed (fontkit) font where its types only name files and bytes.
  const f = fonts() as unknown as Record<keyof typeof FONT_FILES, Buffer>;
  doc.registerFont("regular", f.regular);
  doc.registerFont("bold", f.bold);
  doc.registerFont("mono", f.mono);

  const width = PAGE.width - 2 * MARGIN;
  let y = MARGIN;
  const ensure = (h: number) => {
    if (y + h > BOTTOM) {
      doc.addPage();
      y = MARGIN;
    }
  };
  const text = (s: string, x: number, opts: { font?: string; size?: number; width?: number; align?: "left" | "right" } = {}) => {
    doc.font(opts.font ?? "regular").fontSize(opts.size ?? 9);
    doc.text(s, x, y, { width: opts.width ?? width - (x - MARGIN), align: opts.align ?? "left", lineBreak: true });
  };

  // Heading
  text("Settlement statement", MARGIN, { font: "bold", size: 18 });
  y += 26;
  text(c.id, MARGIN, { font: "mono", size: 9 });
  y += 20;

  const facts: Array<[string, string]> = [
    ["Partner", `${input.partnerName} (${c.partner_id})`],
    ["Period", `${c.period}: ${c.period_start.slice(0, 10)} to ${new Date(new Date(c.period_end).getTime() - 1).toISOString().slice(0, 10)} (UTC)`],
    ["Currency", currency],
    ["Due date", c.due_date ?? "—"],
  ];
  for (const [k, v] of facts) {
    text(k, MARGIN, { font: "bold", width: 110 });
    text(v, MARGIN + 110, { width: width - 110 });
    y += 14;
  }
  y += 10;

  // Summary
  text("Summary", MARGIN, { font: "bold", size: 12 });
  y += 18;
  const summary: Array<[string, number, boolean]> = [
    ["Opening position (earlier statements, cleared to date)", c.opening_position_minor, false],
    ["Points lines of the month", c.totals.lines_minor, false],
    ["Fees", c.totals.fees_minor, false],
    ["Adjustments", c.totals.adjustments_minor, false],
    ["Net amount of this statement", c.net_amount_minor, true],
    ["Closing position", c.closing_position_minor, false],
  ];
  for (const [label, amount, strong] of summary) {
    const font = strong ? "bold" : "regular";
    text(label, MARGIN, { font, width: width - 140 });
    text(`${money(amount, currency)} ${currency}`, MARGIN + width - 140, { font, width: 140, align: "right" });
    y += 14;
  }
  text(`The net amount is ${DIRECTION[c.direction] ?? c.direction}${c.direction === "nil" ? "" : `, due on ${c.due_date ?? "—"}`}.`, MARGIN);
  y += 22;

  // Line tables
  const cols = [
    { title: "No.", w: 28, align: "left" as const },
    { title: "Description", w: 205, align: "left" as const },
    { title: "Ver.", w: 28, align: "right" as const },
    { title: "Points", w: 52, align: "right" as const },
    { title: "Rate", w: 70, align: "right" as const },
    { title: "Exact", w: 56, align: "right" as const },
    { title: "Amount", w: width - 28 - 205 - 28 - 52 - 70 - 56, align: "right" as const },
  ];
  const row = (cells: string[], font: string) => {
    doc.font(font).fontSize(8);
    const h = Math.max(...cells.map((cell, i) => doc.heightOfString(cell, { width: cols[i]!.w - 4 }))) + 4;
    ensure(h);
    let x = MARGIN;
    cells.forEach((cell, i) => {
      doc.font(font).fontSize(8).text(cell, x, y, { width: cols[i]!.w - 4, align: cols[i]!.align });
      x += cols[i]!.w;
    });
    y += h;
  };
  const table = (title: string, lines: LineView[], total: number) => {
    ensure(40);
    text(title, MARGIN, { font: "bold", size: 12 });
    y += 18;
    if (lines.length === 0) {
      text("None.", MARGIN);
      y += 18;
      return;
    }
    row(cols.map((col) => col.title), "bold");
    for (const l of lines) {
      row(
        [
          String(l.line_no),
          describe(l),
          l.contract_version === null ? "" : String(l.contract_version),
          ["transaction_fee", "monthly_fee", "adjustment"].includes(l.group) ? "" : String(l.points),
          rate(l, currency),
          l.exact_amount ?? "",
          money(l.amount_minor, currency),
        ],
        "regular",
      );
    }
    row(["", `Total ${title.toLowerCase()}`, "", "", "", "", money(total, currency)], "bold");
    y += 12;
  };
  table("Lines", c.lines, c.totals.lines_minor);
  table("Fees", c.fees, c.totals.fees_minor);
  table("Adjustments", c.adjustments, c.totals.adjustments_minor);

  // Integrity
  ensure(120);
  text("Integrity", MARGIN, { font: "bold", size: 12 });
  y += 18;
  const hashes: Array<[string, string]> = [
    ["Line items CSV (lines.csv), SHA-256", c.csv_sha256 ?? "—"],
    ["Statement content, SHA-256", input.contentSha256],
  ];
  for (const [k, v] of hashes) {
    text(k, MARGIN);
    y += 12;
    text(v, MARGIN, { font: "mono", size: 8 });
    y += 16;
  }
  y += 6;
  text(
    `${c.item_count} line items. Amounts in ${currency}, signed from the partner's side: positive, the operator owes the partner; negative, the partner owes the operator. ` +
      "Each line is computed exactly and rounded once, half to even. A closed statement never changes: corrections appear on a later statement as adjustments. " +
      "See docs/settlement.md for what each line means and how to reconcile it with the CSV.",
    MARGIN,
    { size: 8 },
  );

  doc.end();
  await ended;
  return Buffer.concat(chunks);
}

export function sha256Hex(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Renders the statement's PDF from its stored row and lines (inside the run's transaction). */
export async function renderStatementPdfOf(conn: DbOrTrx, st: StatementRow, lines: LineRow[]): Promise<{ bytes: Buffer; sha256: string }> {
  const partner: { name: string } | undefined = await conn("partners").where({ id: st.partner_id }).first("name");
  const bytes = await renderStatementPdf({ content: statementContent(st, lines), contentSha256: st.content_sha256 ?? "", partnerName: partner?.name ?? st.partner_id });
  return { bytes, sha256: sha256Hex(bytes) };
}

/** Stores the statement's PDF (replacing one an unverified earlier attempt left) and returns its hash. */
export async function storeStatementPdf(conn: DbOrTrx, st: StatementRow, lines: LineRow[]): Promise<string> {
  const pdf = await renderStatementPdfOf(conn, st, lines);
  await conn("settlement_statement_pdfs")
    .insert({ statement_id: st.id, sha256: pdf.sha256, size: pdf.bytes.length, bytes: pdf.bytes })
    .onConflict("statement_id")
    .merge();
  return pdf.sha256;
}
