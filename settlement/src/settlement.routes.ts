import type { HandlerContext, Handlers } from "../../gateway/src/http/router.ts";
import { httpErrors } from "../../gateway/src/http/problem.ts";
import type { ClearingService, RunRow } from "./clearing.service.ts";
import type { StatementRow, StatementsService } from "./statements.service.ts";
import type { CreditTransfers, PayeeAccountInput } from "./credit-transfers.service.ts";
import type { BankAccount } from "./pain001.ts";

function partnerOf(ctx: HandlerContext): string {
  const id = ctx.principal?.partnerId;
  if (!id) throw httpErrors.make("forbidden", "Only a partner's token reads statements.");
  return id;
}

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

export function runView(run: RunRow, statements: StatementRow[]) {
  return {
    id: run.id,
    period: run.period,
    period_start: iso(run.period_start)!,
    period_end: iso(run.period_end)!,
    status: run.status,
    step: run.step,
    attempts: run.attempts,
    failure: run.failure,
    created_at: iso(run.created_at)!,
    closed_at: iso(run.closed_at),
    statements: statements.map((s) => ({
      id: s.id,
      partner_id: s.partner_id,
      status: s.status,
      step: s.step,
      currency: s.currency,
      net_amount_minor: s.net_amount_minor === null ? null : Number(s.net_amount_minor),
      failure: s.failure,
    })),
    report: (typeof run.report === "string" ? JSON.parse(run.report) : run.report) ?? null,
  };
}

/** Thin handlers: partners read their own statements; the operator starts and watches runs. */
export function settlementRoutes(deps: { clearing: ClearingService; statements: StatementsService; creditTransfers: CreditTransfers }): Handlers {
  const { clearing, statements, creditTransfers } = deps;
  return {
    async listSettlementStatements(ctx) {
      const q = ctx.query as { cursor?: string; limit?: number };
      return { status: 200, body: await statements.list(partnerOf(ctx), { ...(q.cursor ? { cursor: q.cursor } : {}), ...(q.limit ? { limit: q.limit } : {}) }) };
    },

    async getSettlementStatement(ctx) {
      return { status: 200, body: await statements.get(partnerOf(ctx), String(ctx.params.statementId)) };
    },

    /** Streams the CSV page by page; the bytes hash to the statement's csv_sha256. */
    async getSettlementStatementLines(ctx) {
      const head = await statements.csvHead(partnerOf(ctx), String(ctx.params.statementId));
      const res = ctx.res;
      res.status(200);
      res.setHeader("Content-Type", "text/csv; charset=utf-8; header=present");
      res.setHeader("Content-Disposition", `attachment; filename="${head.id}.csv"`);
      res.setHeader("ETag", `"${head.csvSha256}"`);
      res.setHeader("Repr-Digest", `sha-256=:${Buffer.from(head.csvSha256, "hex").toString("base64")}:`);
      res.setHeader("Cache-Control", "private, max-age=0");
      await statements.renderCsv(head.id, async (chunk) => {
        if (!res.write(chunk)) await new Promise<void>((resolve) => res.once("drain", () => resolve()));
      });
      res.end();
      return { status: 200 };
    },

    /** The summary PDF stored when the statement was priced; its bytes hash to pdf_sha256. */
    async getSettlementStatementPdf(ctx) {
      const pdf = await statements.pdf(partnerOf(ctx), String(ctx.params.statementId));
      return {
        status: 200,
        headers: {
          ETag: `"${pdf.sha256}"`,
          "Repr-Digest": `sha-256=:${Buffer.from(pdf.sha256, "hex").toString("base64")}:`,
          "Content-Disposition": `attachment; filename="${pdf.id}.pdf"`,
          "Cache-Control": "private, max-age=0",
        },
        raw: { contentType: "application/pdf", data: pdf.bytes },
      };
    },

    async startSettlementRun(ctx) {
      const { period } = ctx.body as { period: string };
      const { run } = await clearing.startRun(period);
      const { statements: rows } = await clearing.getRun(run.id);
      return { status: 202, body: runView(run, rows) };
    },

    async createSettlementCreditTransfers(ctx) {
      const { debtor } = ctx.body as { debtor: BankAccount };
      const file = await creditTransfers.creditTransferFile(String(ctx.params.runId), debtor);
      return {
        status: 200,
        headers: { ETag: `"${file.sha256}"`, "Content-Disposition": `attachment; filename="pain001-${String(ctx.params.runId)}.xml"` },
        raw: { contentType: "application/xml; charset=utf-8", data: file.xml },
      };
    },

    async setSettlementPayeeAccount(ctx) {
      return { status: 200, body: await creditTransfers.setPayeeAccount(String(ctx.params.partnerId), ctx.body as PayeeAccountInput) };
    },

    async getSettlementRun(ctx) {
      const { run, statements: rows } = await clearing.getRun(String(ctx.params.runId));
      return { status: 200, body: runView(run, rows) };
    },
  };
}
