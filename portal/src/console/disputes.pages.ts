import { Router, type Request, type Response } from "express";
import type { PortalContext } from "../context.ts";
import { html } from "../html.ts";
import { csrfField, flash, page } from "../layout.ts";
import { field, str } from "../web/forms.ts";
import { PageNotFound } from "../web/errors.ts";
import { disputeCard, parseAmount } from "../disputes/dispute.view.ts";
import { badge, errorBanner, money, operatorActor, refusal, table, when } from "./common.ts";

const STATUSES: Array<[string, string]> = [
  ["open", "Open"],
  ["accepted", "Accepted"],
  ["rejected", "Rejected"],
  ["", "All"],
];

/**
 * Disputes of statement lines, as the partners opened them (from the API or the developer portal):
 * the list by status, one dispute with its trail, a note, and the resolution — rejected, or accepted
 * with an adjustment the disputes service books into the next open month (the closed statement
 * never changes). Both sides read the same trail. Resolutions are also written to the audit log.
 */
export function disputesPages(ctx: PortalContext): Router {
  const r = Router();
  const { disputes } = ctx.services;
  const { audit } = ctx.services.console;
  const actorId = (req: Request) => `portal:${req.user!.id}`;

  async function partnerNames(): Promise<Map<string, string>> {
    return new Map((await ctx.services.partners.listPartners({})).map((p) => [p.id, p.name]));
  }

  async function load(id: string) {
    try {
      return await disputes.getForOperator(id);
    } catch (err) {
      if (refusal(err)?.status === 404) throw new PageNotFound();
      throw err;
    }
  }

  r.get("/console/disputes", async (req, res) => {
    const status = STATUSES.some(([v]) => v === req.query.status) ? String(req.query.status) : "open";
    const cursor = typeof req.query.cursor === "string" ? req.query.cursor : undefined;
    const list = await disputes.listForOperator({ ...(status ? { status } : {}), ...(cursor ? { cursor } : {}), limit: 50 });
    const names = await partnerNames();
    const rows = list.items.map(
      (d) =>
        html`<tr><th scope="row"><a href="/portal/console/disputes/${d.id}">${d.period} · line ${d.line.line_no}</a></th><td>${names.get(d.partner_id ?? "") ?? d.partner_id}</td><td>${d.line.description}</td><td class="num">${d.amount_claimed_minor === null ? "—" : money(d.amount_claimed_minor, d.currency)}</td><td>${badge(d.status)}</td><td>${when(d.opened_at)}</td></tr>`,
    );
    res.send(
      page(req, {
        title: "Statement disputes",
        body: html`<p class="lead">Partners dispute lines of their closed statements. A closed statement never changes: accepting a dispute books an adjustment into the next open month, which that month's statement carries.</p>
<nav aria-label="Filter by status" class="filters"><ul class="actions">${STATUSES.map(
          ([v, l]) => html`<li><a class="btn btn-small" href="/portal/console/disputes${v ? `?status=${v}` : "?status="}"${v === status ? html` aria-current="true"` : ""}>${l}</a></li>`,
        )}</ul></nav>
${table("Disputes, newest first", ["Statement line", "Partner", "Line", ["Claimed", "num"], "Status", "Opened"], rows, status === "open" ? "No open dispute." : "None.")}
${list.next_cursor ? html`<p><a href="/portal/console/disputes?status=${status}&cursor=${list.next_cursor}">Older disputes</a></p>` : ""}`,
      }),
    );
  });

  async function renderDispute(req: Request, res: Response, id: string, opts: { status?: number; error?: string; values?: Record<string, string>; errors?: Record<string, string> } = {}) {
    const d = await load(id);
    const names = await partnerNames();
    const v = opts.values ?? {};
    const e = opts.errors ?? {};
    res.status(opts.status ?? 200).send(
      page(req, {
        title: `Dispute · ${names.get(d.partner_id ?? "") ?? d.partner_id} · ${d.period}`,
        body: html`${errorBanner(opts.error)}
<p><a href="/portal/console/disputes">← Disputes</a></p>
<p>Partner: <a href="/portal/console/partners/${d.partner_id}">${names.get(d.partner_id ?? "") ?? d.partner_id}</a> · statement <code>${d.statement_id}</code></p>
${disputeCard(req, d, { reader: "operator", commentAction: `/portal/console/disputes/${d.id}/notes`, headingLevel: 2 })}
${d.status === "open"
  ? html`<section class="card" aria-labelledby="resolve-h"><h2 id="resolve-h">Resolve</h2>
<form method="post" action="/portal/console/disputes/${d.id}/resolve" class="form" data-confirm="Resolve this dispute? A resolution is final.">
${csrfField(req)}
${field("outcome", "Outcome", { value: v.outcome ?? "accepted", error: e.outcome, required: true, options: [["accepted", "Accept: book an adjustment"], ["rejected", "Reject: book nothing"]] })}
${field("adjustment", `Adjustment (${d.currency}), from the partner's side`, {
  value: v.adjustment,
  error: e.adjustment,
  attrs: html` inputmode="decimal"`,
  hint: `Positive: the operator owes the partner; negative: the partner owes. Empty: the amount claimed${d.amount_claimed_minor === null ? " — this dispute claims none, so give one to accept" : ` (${money(d.amount_claimed_minor, d.currency)})`}. Booked into the next open month.`,
})}
${field("note", "Note to the partner", { type: "textarea", rows: 3, required: true, value: v.note, error: e.note })}
<button type="submit" class="btn btn-primary">Resolve the dispute</button>
</form></section>`
  : ""}`,
      }),
    );
  }

  r.get("/console/disputes/:id", async (req, res) => {
    await renderDispute(req, res, String(req.params.id));
  });

  r.post("/console/disputes/:id/resolve", async (req, res) => {
    const d = await load(String(req.params.id));
    const values = { outcome: str(req.body, "outcome", 16), adjustment: str(req.body, "adjustment", 40), note: str(req.body, "note", 2000) };
    const errors: Record<string, string> = {};
    if (values.outcome !== "accepted" && values.outcome !== "rejected") errors.outcome = "Choose accept or reject.";
    if (!values.note) errors.note = "Tell the partner why.";
    const adjustment = parseAmount(values.adjustment, d.currency);
    if (adjustment === null) errors.adjustment = "Give an amount other than zero, like 12.50 or −3.00, or leave it empty.";
    if (Object.keys(errors).length) return renderDispute(req, res, d.id, { status: 422, error: "Check the form.", values, errors });
    const input = { outcome: values.outcome as "accepted" | "rejected", note: values.note, ...(typeof adjustment === "number" ? { adjustment_minor: adjustment } : {}) };
    try {
      const done = await ctx.db.transaction((trx) => disputes.resolve(trx, d.id, actorId(req), input));
      const adj = done.resolution?.adjustment ?? null;
      await audit.record(operatorActor(req), {
        action: `settlement_dispute.${done.status}`,
        objectType: "settlement_dispute",
        objectId: d.id,
        before: { status: "open" },
        after: { status: done.status, adjustment: adj ? { id: adj.id, amount_minor: adj.amount_minor, currency: d.currency, booked_period: adj.booked_period } : null },
        reason: values.note,
      });
      flash(req, "ok", adj ? `Dispute accepted: ${money(adj.amount_minor, d.currency)} booked into ${adj.booked_period}.` : `Dispute ${done.status}.`);
      res.redirect(303, `/portal/console/disputes/${d.id}`);
    } catch (err) {
      const e = refusal(err);
      if (!e) throw err;
      return renderDispute(req, res, d.id, { status: e.status, error: e.detail ?? e.title, values, errors: e.status === 422 ? { adjustment: e.detail ?? e.title } : {} });
    }
  });

  r.post("/console/disputes/:id/notes", async (req, res) => {
    const d = await load(String(req.params.id));
    const note = str(req.body, "note", 2000);
    if (!note) return renderDispute(req, res, d.id, { status: 422, error: "Write the note before sending it." });
    await disputes.comment(d.id, { actor: "operator", clientId: actorId(req) }, note);
    flash(req, "ok", "Note added to the dispute's trail.");
    res.redirect(303, `/portal/console/disputes/${d.id}`);
  });

  return r;
}
