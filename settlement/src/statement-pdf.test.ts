import { PDFParse } from "pdf-parse";
import { describe, expect, it } from "vitest";
import { renderStatementPdf, sha256Hex } from "./statement-pdf.ts";
import { statementContent, type LineRow, type StatementRow } from "./statements.service.ts";

const st: StatementRow = {
  id: "stm_202605_ptn_x",
  run_id: "run_2026-05",
  partner_id: "ptn_x",
  period: "2026-05",
  status: "open",
  step: "render",
  currency: "EUR",
  opening_position_minor: -10_134n,
  net_amount_minor: -11_932n,
  closing_position_minor: -22_066n,
  due_date: "2026-06-15",
  content_sha256: "c".repeat(64),
  csv_sha256: "a".repeat(64),
  item_count: 3,
  attempts: 0,
  failure: null,
  created_at: "2026-06-01T01:00:00Z",
  closed_at: null,
};

const line = (line_no: number, over: Partial<LineRow>): LineRow => ({
  statement_id: st.id,
  line_no,
  line_group: "issuance",
  contract_version_id: "ctr_1",
  contract_version: 1,
  corrects_period: null,
  points: 118n,
  item_count: 2,
  transaction_count: 0,
  price_micros: 10_500n,
  fee_minor: null,
  share_bps: null,
  exact_amount: "1.239000",
  amount_minor: -124n,
  rounding: "half-even",
  description: "Points issued to members (you pay the issuance price)",
  ...over,
});

const lines: LineRow[] = [
  line(1, {}),
  line(2, { line_group: "monthly_fee", points: 0n, price_micros: null, fee_minor: 12_000n, exact_amount: "120.00", amount_minor: -12_000n, description: "Monthly platform fee" }),
  line(3, {
    line_group: "adjustment",
    contract_version_id: null,
    contract_version: null,
    corrects_period: "2026-04",
    points: 0n,
    price_micros: null,
    exact_amount: "1.29",
    amount_minor: 129n,
    description: "Dispute dsp_1 accepted: correction of statement stm_202604_ptn_x, line 1",
    adjustment_id: "adj_1",
    corrects_statement_id: "stm_202604_ptn_x",
    corrects_line_no: 1,
  }),
];

const render = (partnerName: string) => renderStatementPdf({ content: statementContent(st, lines), contentSha256: st.content_sha256!, partnerName });

// Font subsetting takes a second or two on a loaded 2-core machine.
describe("the statement PDF", { timeout: 30_000 }, () => {
  it("is the same bytes on every render, whatever the time of rendering", async () => {
    const a = await render("Rīgas Piens");
    await new Promise((r) => setTimeout(r, 1_100));
    const b = await render("Rīgas Piens");
    expect(sha256Hex(b)).toBe(sha256Hex(a));
    // Anything printed changes the bytes.
    expect(sha256Hex(await render("Rīgas Piens 2"))).not.toBe(sha256Hex(a));
  });

  it("prints names in any European script, the figures and both hashes", async () => {
    const parser = new PDFParse({ data: new Uint8Array(await render("Rīgas Piens — Молоко SIA")) });
    const text = (await parser.getText()).text;
    await parser.destroy();
    for (const s of ["Rīgas Piens — Молоко SIA (ptn_x)", "2026-05: 2026-05-01 to 2026-05-31 (UTC)", "-101.34 EUR", "-119.32 EUR", "+1.29", "-120.00", "a".repeat(64), "c".repeat(64)]) {
      expect(text, s).toContain(s);
    }
  });
});
