import type { Request } from "express";
import type { DisputesService } from "../../../settlement/src/disputes.service.ts";
import { minorExponent } from "../../../settlement/src/money.ts";
import { html, type Html } from "../html.ts";
import { csrfField } from "../layout.ts";
import { field } from "../web/forms.ts";
import { badge, money, parseDecimal, when } from "../console/common.ts";

/** A dispute as the disputes service shows it to a partner (the operator's view adds partner and client ids). */
export type DisputeView = Awaited<ReturnType<DisputesService["getForPartner"]>>;

const KIND_WORDS: Record<string, string> = { opened: "opened the dispute", comment: "added a note", accepted: "accepted it", rejected: "rejected it" };

/**
 * An amount typed into a dispute form, in the currency's minor units, exactly (no float, no silent
 * rounding: more decimals than the currency has is an error). "" → undefined; malformed or zero → null.
 */
export function parseAmount(input: string, currency: string): number | undefined | null {
  if (input.trim() === "") return undefined;
  const v = parseDecimal(input.replace(/[\s\u2212]/g, (c) => (c === "\u2212" ? "-" : "")), minorExponent(currency));
  if (v === null || v === 0n || v > BigInt(Number.MAX_SAFE_INTEGER) || -v > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return Number(v);
}

/**
 * One dispute with its resolution and its whole trail, the same for both sides; `who` names the
 * sides from the reader's point of view. `commentAction` adds a note form (both sides may write
 * while the conversation goes on).
 */
export function disputeCard(req: Request, d: DisputeView, opts: { reader: "partner" | "operator"; commentAction?: string; statementHref?: (statementId: string) => string | null; headingLevel?: 2 | 3 }): Html {
  const who = (actor: string) => (actor === opts.reader ? "You" : actor === "operator" ? "The operator" : "The partner");
  const h = opts.headingLevel ?? 3;
  const title = html`Line ${d.line.line_no} of ${d.period}: ${d.line.description} ${badge(d.status)}`;
  const adj = d.resolution?.adjustment ?? null;
  const carried = adj?.statement_id ? opts.statementHref?.(adj.statement_id) ?? null : null;
  return html`<article class="card dispute" id="dispute-${d.id}" aria-labelledby="dispute-${d.id}-h">
${h === 2 ? html`<h2 id="dispute-${d.id}-h">${title}</h2>` : html`<h3 id="dispute-${d.id}-h">${title}</h3>`}
<dl class="facts">
<dt>Dispute</dt><dd><code>${d.id}</code></dd>
<dt>Line amount</dt><dd>${money(d.line.amount_minor, d.currency)}</dd>
<dt>Reason</dt><dd>${d.reason}</dd>
<dt>Amount claimed</dt><dd>${d.amount_claimed_minor === null ? "—" : money(d.amount_claimed_minor, d.currency)}</dd>
<dt>Opened</dt><dd>${when(d.opened_at)}</dd>
${d.resolution
  ? html`<dt>Resolution</dt><dd>${d.resolution.outcome === "accepted" ? "Accepted" : "Rejected"} ${when(d.resolved_at)}${d.resolution.note ? html` — “${d.resolution.note}”` : ""}</dd>
<dt>Adjustment</dt><dd data-figure="adjustment">${adj
      ? html`${money(adj.amount_minor, d.currency)}, booked into ${adj.booked_period}${adj.statement_id
          ? html` — carried on ${carried ? html`<a href="${carried}">statement ${adj.booked_period}</a>` : html`statement <code>${adj.statement_id}</code>`}, line ${adj.line_no ?? "—"}`
          : html` (on that month's statement once it closes)`}`
      : "none"}</dd>`
  : ""}
</dl>
<h${h + 1} class="trail-h">Trail</h${h + 1}>
<ol class="trail">${d.trail.map(
    (t) => html`<li><span class="muted">${when(t.at)}</span> — <strong>${who(t.actor)}</strong> ${KIND_WORDS[t.kind] ?? t.kind}${t.amount_minor !== null ? html` (${money(t.amount_minor, d.currency)})` : ""}${t.note ? html`: “${t.note}”` : ""}</li>`,
  )}</ol>
${opts.commentAction
  ? html`<form method="post" action="${opts.commentAction}" class="form">${csrfField(req)}
${field("note", "Add a note", { type: "textarea", rows: 2, required: true, id: `f-note-${d.id}` })}
<button type="submit" class="btn">Add the note</button></form>`
  : ""}
</article>`;
}
