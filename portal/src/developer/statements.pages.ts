import { Router, type Request, type Response } from "express";
import type { PortalContext } from "../context.ts";
import { AppError } from "../../../gateway/src/http/problem.ts";
import { html } from "../html.ts";
import { csrfField, flash, page } from "../layout.ts";
import { requireRole } from "../web/auth.ts";
import { PageNotFound } from "../web/errors.ts";
import { field, str } from "../web/forms.ts";
import { disputeCard, parseAmount } from "../disputes/dispute.view.ts";
import { envOf, type Environment } from "./developer.guard.ts";

/** Minor units as a decimal string, by integer arithmetic (2 decimals: the statements' EUR). */
export function money(minor: number | bigint, currency: string | null): string {
  const v = BigInt(minor);
  const neg = v < 0n;
  const a = neg ? -v : v;
  const whole = (a / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${neg ? "−" : ""}${whole}.${(a % 100n).toString().padStart(2, "0")} ${currency ?? ""}`.trim();
}

/** The statements' direction, from the partner's side (statements.service: payable_to_partner, receivable_from_partner, nil). */
const DIRECTION: Record<string, string> = { receivable_from_partner: "You pay the operator", payable_to_partner: "The operator pays you", nil: "Nothing to pay" };

/**
 * Settlement statements through the statements and disputes services (closed statements of the
 * developer's own partner only; another partner's is 404): the list, one statement's lines, the
 * CSV and PDF downloads, and "dispute a line" — a form per line that opens a dispute as the
 * partner, and each dispute's status, resolution and trail on the statement's page.
 */
export function statementsPages(ctx: PortalContext): Router {
  const r = Router();
  const { statements, disputes } = ctx.services;
  /** The trail names who acted: a developer acts as the partner, recorded by portal user. */
  const actorId = (req: Request) => `portal:${req.user!.id}`;
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
<tbody>${list.items.map((s) => html`<tr><th scope="row"><a href="/portal/dev/statements/${s.id}?env=${env}">${s.period}</a></th><td class="num">${money(s.net_amount_minor, s.currency)}</td><td>${DIRECTION[s.direction] ?? s.direction}</td><td>${s.due_date ?? "—"}</td><td><a href="/portal/dev/statements/${s.id}/lines.csv?env=${env}" download>CSV</a> · <a href="/portal/dev/statements/${s.id}/statement.pdf?env=${env}" download>PDF</a></td></tr>`)}</tbody></table></div>
${list.next_cursor ? html`<p><a href="/portal/dev/statements?env=${env}&cursor=${list.next_cursor}">Older statements</a></p>` : ""}`
  : html`<p class="card">No closed statement yet. The first one comes after your first settlement period closes.</p>`}`,
      }),
    );
  });

  async function renderStatement(req: Request, res: Response, id: string, opts: { status?: number; error?: string } = {}) {
    const env = envFrom(req);
    const partnerId = partnerOf(req, env);
    const st = await statements.get(partnerId, id).catch(notFound);
    const mine = await disputes.listForPartner(partnerId, { statementId: st.id, limit: 100 });
    const openOn = new Map(mine.items.filter((d) => d.status === "open").map((d) => [d.line.line_no, d.id]));
    const row = (l: (typeof st.lines)[number]) => {
      const open = openOn.get(l.line_no);
      const action = open
        ? html`<a href="#dispute-${open}">Disputed</a>`
        : html`<a href="/portal/dev/statements/${st.id}/lines/${l.line_no}/dispute?env=${env}" aria-label="Dispute line ${l.line_no}">Dispute</a>`;
      return html`<tr><td>${l.line_no}</td><td>${l.description}${l.corrects_period ? html` <span class="muted">(corrects ${l.corrects_period})</span>` : ""}</td><td class="num">${l.points || ""}</td><td class="num">${l.transactions ?? ""}</td><td class="num">${money(l.amount_minor, st.currency)}</td><td class="muted">${l.rounding ?? ""}</td><td>${action}</td></tr>`;
    };
    const section = (caption: string, lines: typeof st.lines) =>
      lines.length
        ? html`<div class="table-wrap"><table><caption>${caption}</caption><thead><tr><th scope="col">#</th><th scope="col">Line</th><th scope="col" class="num">Points</th><th scope="col" class="num">Transactions</th><th scope="col" class="num">Amount</th><th scope="col">Rounding</th><th scope="col">Dispute</th></tr></thead><tbody>${lines.map(row)}</tbody></table></div>`
        : "";
    res.status(opts.status ?? 200).send(
      page(req, {
        title: `Statement ${st.period}`,
        body: html`${opts.error ? html`<div class="flash flash-error" role="alert">${opts.error}</div>` : ""}<p><a href="/portal/dev/statements?env=${env}">← Statements</a></p>
<section class="card" aria-label="Summary"><dl class="facts">
<dt>Period</dt><dd>${st.period_start.slice(0, 10)} – ${st.period_end.slice(0, 10)}</dd>
<dt>Opening position</dt><dd>${money(st.opening_position_minor, st.currency)}</dd>
<dt>Net for the period</dt><dd><strong>${money(st.net_amount_minor, st.currency)}</strong> — ${DIRECTION[st.direction] ?? st.direction}</dd>
<dt>Closing position</dt><dd>${money(st.closing_position_minor, st.currency)}</dd>
<dt>Due</dt><dd>${st.due_date ?? "—"}</dd>
<dt>CSV SHA-256</dt><dd><code>${st.csv_sha256 ?? ""}</code></dd>
${st.pdf_sha256 ? html`<dt>PDF SHA-256</dt><dd><code>${st.pdf_sha256}</code></dd>` : ""}
</dl>
<p class="actions"><a class="btn" href="/portal/dev/statements/${st.id}/lines.csv?env=${env}" download>Download CSV</a>
${st.pdf_sha256 ? html`<a class="btn" href="/portal/dev/statements/${st.id}/statement.pdf?env=${env}" download>Download PDF</a>` : ""}</p></section>
<p class="hint">A line you think is wrong: choose <strong>Dispute</strong> on it. The statement itself never changes; if the operator accepts, the correction comes as an adjustment on a later statement.</p>
${section("Lines", st.lines)}${section("Fees", st.fees)}${section("Adjustments from earlier periods", st.adjustments)}
<section aria-labelledby="disputes-h"><h2 id="disputes-h">Disputes</h2>
${mine.items.length
  ? mine.items.map((d) =>
      disputeCard(req, d, {
        reader: "partner",
        commentAction: `/portal/dev/statements/${st.id}/disputes/${d.id}/notes?env=${env}`,
        statementHref: (sid) => `/portal/dev/statements/${sid}?env=${env}`,
      }),
    )
  : html`<p class="muted">No line of this statement is disputed.</p>`}
</section>`,
      }),
    );
  }

  r.get("/dev/statements/:id", async (req, res) => {
    await renderStatement(req, res, String(req.params.id));
  });

  /** The summary PDF stored when the statement was priced: the bytes of GET /v1/settlements/{id}/statement.pdf. */
  r.get("/dev/statements/:id/statement.pdf", async (req, res) => {
    const env = envFrom(req);
    const pdf = await statements.pdf(partnerOf(req, env), String(req.params.id)).catch(notFound);
    res.setHeader("Content-Type", "application/pdf");
    res.setHeader("Content-Disposition", `attachment; filename="${pdf.id}.pdf"`);
    res.setHeader("ETag", `"${pdf.sha256}"`);
    res.setHeader("Repr-Digest", `sha-256=:${Buffer.from(pdf.sha256, "hex").toString("base64")}:`);
    res.send(pdf.bytes);
  });

  async function lineOf(req: Request) {
    const env = envFrom(req);
    const partnerId = partnerOf(req, env);
    const st = await statements.get(partnerId, String(req.params.id)).catch(notFound);
    const line = [...st.lines, ...st.fees, ...st.adjustments].find((l) => String(l.line_no) === String(req.params.no));
    if (!line) throw new PageNotFound();
    return { env, partnerId, st, line };
  }

  async function renderDisputeForm(req: Request, res: Response, opts: { status?: number; error?: string; values?: Record<string, string>; errors?: Record<string, string> } = {}) {
    const { env, st, line } = await lineOf(req);
    const v = opts.values ?? {};
    const e = opts.errors ?? {};
    res.status(opts.status ?? 200).send(
      page(req, {
        title: `Dispute line ${line.line_no} of ${st.period}`,
        body: html`${opts.error ? html`<div class="flash flash-error" role="alert">${opts.error}</div>` : ""}<p><a href="/portal/dev/statements/${st.id}?env=${env}">← Statement ${st.period}</a></p>
<section class="card" aria-label="The line"><dl class="facts">
<dt>Line</dt><dd>${line.line_no}: ${line.description}</dd>
<dt>Amount</dt><dd>${money(line.amount_minor, st.currency)}</dd>
${line.points ? html`<dt>Points</dt><dd>${line.points}</dd>` : ""}
${line.transactions !== null && line.transactions !== undefined ? html`<dt>Transactions</dt><dd>${line.transactions}</dd>` : ""}
</dl></section>
<form method="post" action="/portal/dev/statements/${st.id}/lines/${line.line_no}/dispute?env=${env}" class="form">
${csrfField(req)}
${field("reason", "Why is this line wrong?", { type: "textarea", rows: 4, required: true, value: v.reason, error: e.reason, hint: "The operator reads this; name the transactions or the terms in question." })}
${field("amount_claimed", `Amount you claim (${st.currency ?? "EUR"}, optional)`, { value: v.amount_claimed, error: e.amount_claimed, attrs: html` inputmode="decimal"`, hint: "The correction you ask for, from your side: positive if the operator owes you more, negative (−) if you owe more. Leave it empty if you do not know." })}
<button type="submit" class="btn btn-primary">Open the dispute</button>
</form>`,
      }),
    );
  }

  r.get("/dev/statements/:id/lines/:no/dispute", async (req, res) => {
    await renderDisputeForm(req, res);
  });

  r.post("/dev/statements/:id/lines/:no/dispute", async (req, res) => {
    const { env, partnerId, st, line } = await lineOf(req);
    const values = { reason: str(req.body, "reason", 2000), amount_claimed: str(req.body, "amount_claimed", 40) };
    const errors: Record<string, string> = {};
    if (values.reason.length < 3) errors.reason = "Say why the line is wrong.";
    const claimed = parseAmount(values.amount_claimed, st.currency ?? "EUR");
    if (claimed === null) errors.amount_claimed = "Give an amount other than zero, like 12.50 or −3.00, or leave it empty.";
    if (Object.keys(errors).length) return renderDisputeForm(req, res, { status: 422, values, errors });
    try {
      const d = await ctx.db.transaction((trx) =>
        disputes.open(trx, partnerId, actorId(req), st.id, { line_no: line.line_no, reason: values.reason, ...(typeof claimed === "number" ? { amount_claimed_minor: claimed } : {}) }),
      );
      flash(req, "ok", `Dispute opened on line ${line.line_no}. The operator is notified; its answer appears here.`);
      res.redirect(303, `/portal/dev/statements/${st.id}?env=${env}#dispute-${d.id}`);
    } catch (err) {
      if (!(err instanceof AppError) || err.status >= 500) throw err;
      if (err.status === 404) throw new PageNotFound();
      return renderDisputeForm(req, res, { status: err.status, error: err.detail ?? err.title, values });
    }
  });

  r.post("/dev/statements/:id/disputes/:did/notes", async (req, res) => {
    const env = envFrom(req);
    const partnerId = partnerOf(req, env);
    const st = await statements.get(partnerId, String(req.params.id)).catch(notFound);
    const note = str(req.body, "note", 2000);
    if (!note) return renderStatement(req, res, st.id, { status: 422, error: "Write the note before sending it." });
    const found = await disputes.getForPartner(partnerId, String(req.params.did)).catch(notFound);
    if (found.statement_id !== st.id) throw new PageNotFound();
    const d = await disputes.comment(found.id, { actor: "partner", clientId: actorId(req), partnerId }, note);
    flash(req, "ok", "Note added to the dispute's trail.");
    res.redirect(303, `/portal/dev/statements/${st.id}?env=${env}#dispute-${d.id}`);
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
