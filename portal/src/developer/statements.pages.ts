import { Router, type Request } from "express";
import type { PortalContext } from "../context.ts";
import { AppError } from "../../../gateway/src/http/problem.ts";
import { html } from "../html.ts";
import { page } from "../layout.ts";
import { requireRole } from "../web/auth.ts";
import { PageNotFound } from "../web/errors.ts";
import { envOf, type Environment } from "./developer.guard.ts";

/** Minor units as a decimal string, by integer arithmetic (2 decimals: the statements' EUR). */
export function money(minor: number | bigint, currency: string | null): string {
  const v = BigInt(minor);
  const neg = v < 0n;
  const a = neg ? -v : v;
  const whole = (a / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${neg ? "−" : ""}${whole}.${(a % 100n).toString().padStart(2, "0")} ${currency ?? ""}`.trim();
}

const DIRECTION: Record<string, string> = { partner_pays: "You pay the operator", operator_pays: "The operator pays you", nil: "Nothing to pay" };

/**
 * Settlement statements through the statements service (closed statements of the developer's own
 * partner only; another partner's is 404): the list, one statement's lines, the CSV download.
 * PDF and disputes belong to the settlement feature; when it serves them, link them here (see the
 * seam below).
 */
export function statementsPages(ctx: PortalContext): Router {
  const r = Router();
  const { statements } = ctx.services;
  r.use("/dev/statements", requireRole("developer"));

  function partnerOf(req: Request, env: Environment): string {
    const id = env === "live" ? req.user!.partner_id : req.user!.sandbox_partner_id;
    if (!id) throw new PageNotFound();
    return id;
  }
  const envFrom = (req: Request): Environment => envOf(req.query.env ?? "live");
  const notFound = (e: unknown) => {
    throw e instanceof AppError && e.status === 404 ? new PageNotFound() : e;
  };

  r.get("/dev/statements", async (req, res) => {
    const env = envFrom(req);
    const list = await statements.list(partnerOf(req, env), { limit: 24, ...(typeof req.query.cursor === "string" ? { cursor: req.query.cursor } : {}) }).catch(notFound);
    res.send(
      page(req, {
        title: "Settlement statements",
        body: html`<p class="lead">One statement per closed period: what you owe the operator or it owes you, line by line, tied to the ledger. The CSV's SHA-256 is on each statement.</p>
<nav aria-label="Environment" class="actions"><span>Showing</span>${(["live", "sandbox"] as const).map((e) => html`<a class="btn btn-small${e === env ? " btn-primary" : ""}" href="/portal/dev/statements?env=${e}"${e === env ? html` aria-current="true"` : ""}>${e}</a>`)}</nav>
${list.items.length
  ? html`<div class="table-wrap"><table><caption>Closed statements</caption><thead><tr><th scope="col">Period</th><th scope="col" class="num">Net</th><th scope="col">Direction</th><th scope="col">Due</th><th scope="col">Download</th></tr></thead>
<tbody>${list.items.map((s) => html`<tr><th scope="row"><a href="/portal/dev/statements/${s.id}?env=${env}">${s.period}</a></th><td class="num">${money(s.net_amount_minor, s.currency)}</td><td>${DIRECTION[s.direction] ?? s.direction}</td><td>${s.due_date ?? "—"}</td><td><a href="/portal/dev/statements/${s.id}/lines.csv?env=${env}" download>CSV</a></td></tr>`)}</tbody></table></div>
${list.next_cursor ? html`<p><a href="/portal/dev/statements?env=${env}&cursor=${list.next_cursor}">Older statements</a></p>` : ""}`
  : html`<p class="card">No closed statement yet. The first one comes after your first settlement period closes.</p>`}`,
      }),
    );
  });

  r.get("/dev/statements/:id", async (req, res) => {
    const env = envFrom(req);
    const st = await statements.get(partnerOf(req, env), String(req.params.id)).catch(notFound);
    const row = (l: (typeof st.lines)[number]) =>
      html`<tr><td>${l.line_no}</td><td>${l.description}${l.corrects_period ? html` <span class="muted">(corrects ${l.corrects_period})</span>` : ""}</td><td class="num">${l.points || ""}</td><td class="num">${l.transactions ?? ""}</td><td class="num">${money(l.amount_minor, st.currency)}</td><td class="muted">${l.rounding ?? ""}</td></tr>`;
    const section = (caption: string, lines: typeof st.lines) =>
      lines.length
        ? html`<div class="table-wrap"><table><caption>${caption}</caption><thead><tr><th scope="col">#</th><th scope="col">Line</th><th scope="col" class="num">Points</th><th scope="col" class="num">Transactions</th><th scope="col" class="num">Amount</th><th scope="col">Rounding</th></tr></thead><tbody>${lines.map(row)}</tbody></table></div>`
        : "";
    res.send(
      page(req, {
        title: `Statement ${st.period}`,
        body: html`<p><a href="/portal/dev/statements?env=${env}">← Statements</a></p>
<section class="card" aria-label="Summary"><dl class="facts">
<dt>Period</dt><dd>${st.period_start.slice(0, 10)} – ${st.period_end.slice(0, 10)}</dd>
<dt>Opening position</dt><dd>${money(st.opening_position_minor, st.currency)}</dd>
<dt>Net for the period</dt><dd><strong>${money(st.net_amount_minor, st.currency)}</strong> — ${DIRECTION[st.direction] ?? st.direction}</dd>
<dt>Closing position</dt><dd>${money(st.closing_position_minor, st.currency)}</dd>
<dt>Due</dt><dd>${st.due_date ?? "—"}</dd>
<dt>CSV SHA-256</dt><dd><code>${st.csv_sha256 ?? ""}</code></dd>
</dl>
<p class="actions"><a class="btn" href="/portal/dev/statements/${st.id}/lines.csv?env=${env}" download>Download CSV</a>
<!-- Seam: the PDF download and "dispute a line" are the settlement feature's (issue 9); link them here when it serves them. --></p></section>
${section("Lines", st.lines)}${section("Fees", st.fees)}${section("Adjustments from earlier periods", st.adjustments)}`,
      }),
    );
  });

  /** The same bytes as GET /v1/settlements/{id}/lines.csv: streamed, hashing to csv_sha256. */
  r.get("/dev/statements/:id/lines.csv", async (req, res) => {
    const env = envFrom(req);
    const head = await statements.csvHead(partnerOf(req, env), String(req.params.id)).catch(notFound);
    res.status(200);
    res.setHeader("Content-Type", "text/csv; charset=utf-8; header=present");
    res.setHeader("Content-Disposition", `attachment; filename="${head.id}.csv"`);
    res.setHeader("Repr-Digest", `sha-256=:${Buffer.from(head.csvSha256, "hex").toString("base64")}:`);
    await statements.renderCsv(head.id, async (chunk) => {
      if (!res.write(chunk)) await new Promise<void>((resolve) => res.once("drain", () => resolve()));
    });
    res.end();
  });

  return r;
}
