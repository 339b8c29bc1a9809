import { Router, type Request, type Response } from "express";
import type { PortalContext } from "../context.ts";
import { html } from "../html.ts";
import { csrfField, flash, page } from "../layout.ts";
import { requireRole } from "../web/auth.ts";
import { PageNotFound } from "../web/errors.ts";
import { field, str } from "../web/forms.ts";
import { badge, count, money } from "../console/common.ts";
import { parseAmount } from "../disputes/dispute.view.ts";
import type { CardEventType } from "../../../gateway/src/banking/card-transactions.rules.ts";
import { feedPurchases, sendFeedEvent, setUpTestBankFeed, testBankFeed } from "./test-bank.service.ts";
import { SANDBOX_TERMS } from "./sandbox.service.ts";

const TYPES: Array<[CardEventType, string]> = [
  ["auth", "Authorisation — points pending"],
  ["clearing", "Clearing — points booked"],
  ["reversal", "Reversal — cancels an authorisation"],
  ["refund", "Refund — takes points back in proportion"],
];
const CURRENCY = SANDBOX_TERMS.currency;
/** How the ingest matched the merchant, in words (the API's match.method codes). */
const MATCH_METHOD: Record<string, string> = { mid: "its MID", mcc_name: "MCC and name", manual: "hand (operator)" };

/**
 * The sandbox's test bank feed: the test cards, a form for a new purchase, and each purchase the
 * feed sent with its state and reward (as the banking feature shows it to the bank) and a form for
 * its next event. Sandbox only: the pages act on the developer's sandbox partner and nothing else.
 */
export function testBankPages(ctx: PortalContext): Router {
  const r = Router();
  r.use("/dev/test-bank", requireRole("developer"));

  function sandboxOf(req: Request): string {
    const id = req.user!.sandbox_partner_id;
    if (!id) throw new PageNotFound();
    return id;
  }

  async function render(req: Request, res: Response, opts: { status?: number; error?: string } = {}) {
    const sandboxId = sandboxOf(req);
    const feed = await testBankFeed(ctx, sandboxId);
    const intro = html`<p class="lead">Send card transactions for your sandbox's test cards, the way a bank does, and watch the points they earn: an authorisation shows them pending, a clearing books them, a reversal or a refund takes them away. The events go through the hub's own card-transactions ingest (what <code>POST /v1/bank/card-events</code> runs) — in the sandbox network only, never live.</p>`;
    if (feed === null || feed === "pending") {
      res.status(opts.status ?? 200).send(
        page(req, {
          title: "Test bank feed",
          body: html`${intro}
${feed === "pending"
  ? html`<p class="card" role="status">The test bank feed is being set up. <a href="/portal/dev/test-bank">Refresh</a> in a moment.</p>`
  : html`<form method="post" action="/portal/dev/test-bank/setup" class="card form">${csrfField(req)}
<p>Your sandbox was made before the test bank feed existed. Set it up: a test bank (or a test shop, if you are a bank) in the sandbox, a payment card for each test member.</p>
<button type="submit" class="btn btn-primary">Set up the test bank feed</button></form>`}`,
        }),
      );
      return;
    }
    const [purchases, balances] = await Promise.all([feedPurchases(ctx, feed), Promise.all(feed.cards.map((c) => ctx.services.memberBalances(c.member_id)))]);
    const byToken = new Map(feed.cards.map((c) => [c.member_id, c]));
    const cardOptions = feed.cards.map((c): [string, string] => [c.member_id, `${c.name} · ${c.masked}`]);
    res.status(opts.status ?? 200).send(
      page(req, {
        title: "Test bank feed",
        body: html`${opts.error ? html`<div class="flash flash-error" role="alert">${opts.error}</div>` : ""}${intro}
<section class="card" aria-labelledby="wiring-h"><h2 id="wiring-h">How it is wired</h2><dl class="facts">
<dt>Bank</dt><dd>${feed.bankPartnerId === feed.sandboxPartnerId ? "Your sandbox bank" : "The test bank"} <code>${feed.bankPartnerId}</code></dd>
<dt>Merchant</dt><dd>${feed.merchantName} <code>${feed.merchantPartnerId}</code></dd>
<dt>MID</dt><dd><code>${feed.mid}</code> (MCC 5411)</dd>
<dt>Earns</dt><dd>1 point per 10.00 ${CURRENCY} cleared (the sandbox contract); a card-linked offer of the merchant gives cashback or points instead</dd>
</dl></section>
<div class="table-wrap"><table><caption>Test cards</caption><thead><tr><th scope="col">Member</th><th scope="col">Member id</th><th scope="col">Payment card</th><th scope="col" class="num">Points</th><th scope="col" class="num">Held</th></tr></thead>
<tbody>${feed.cards.map((c, i) => html`<tr><th scope="row">${c.name}</th><td><code>${c.member_id}</code></td><td><code>${c.masked}</code></td><td class="num" data-figure="points-${c.member_id}">${count(balances[i]!.points)}</td><td class="num">${count(balances[i]!.held)}</td></tr>`)}</tbody></table></div>
<section class="card" aria-labelledby="new-h"><h2 id="new-h">New purchase</h2>
<form method="post" action="/portal/dev/test-bank/events" class="form">${csrfField(req)}
${field("member_id", "Test card", { options: cardOptions, required: true })}
${field("type", "First event", { options: TYPES.slice(0, 2), value: "auth", required: true })}
${field("amount", `Amount (${CURRENCY})`, { value: "123.45", required: true, attrs: html` inputmode="decimal"` })}
<button type="submit" class="btn btn-primary">Send the event</button>
</form></section>
<section aria-labelledby="purchases-h"><h2 id="purchases-h">Purchases</h2>
${purchases.length
  ? html`<div class="grid">${purchases.map((p) => {
      const card = p.member_id ? byToken.get(p.member_id) : undefined;
      const next = p.status === "authorized" ? "clearing" : "refund";
      const suggested = p.status === "authorized" ? p.authorized_minor : Math.max(p.cleared_minor - p.refunded_minor, 0);
      return html`<article class="card purchase" id="purchase-${p.purchase_id}" aria-labelledby="purchase-${p.purchase_id}-h">
<h3 id="purchase-${p.purchase_id}-h"><code>${p.purchase_id}</code> ${badge(p.status)}</h3>
<dl class="facts">
<dt>Card</dt><dd>${card ? `${card.name} · ${card.masked}` : "—"}</dd>
<dt>Authorised</dt><dd>${money(p.authorized_minor, p.currency)}</dd>
<dt>Cleared</dt><dd>${money(p.cleared_minor, p.currency)}</dd>
<dt>Refunded</dt><dd>${money(p.refunded_minor, p.currency)}</dd>
<dt>Pending</dt><dd data-figure="pending">${count(p.reward.pending_points)} points${p.reward.pending_cashback_minor ? html`, ${money(p.reward.pending_cashback_minor, p.currency)} cashback` : ""}</dd>
<dt>Booked</dt><dd data-figure="booked">${count(p.reward.points)} points${p.reward.cashback_minor ? html`, ${money(p.reward.cashback_minor, p.currency)} cashback` : ""}</dd>
<dt>Matched</dt><dd>${p.match ? html`${p.match.partner_id === feed.merchantPartnerId ? html`${feed.merchantName} ` : ""}<code>${p.match.partner_id}</code> by ${MATCH_METHOD[p.match.method ?? ""] ?? p.match.method}` : "no merchant"}</dd>
</dl>
<form method="post" action="/portal/dev/test-bank/events" class="form">${csrfField(req)}
<input type="hidden" name="purchase" value="${p.purchase_id}">
${field("type", "Next event", { options: TYPES, value: next, required: true, id: `f-type-${p.purchase_id}` })}
${field("amount", `Amount (${CURRENCY})`, { value: money(suggested, null).replace(/,/g, ""), required: true, id: `f-amount-${p.purchase_id}`, attrs: html` inputmode="decimal"` })}
<button type="submit" class="btn">Send the event</button>
</form></article>`;
    })}</div>`
  : html`<p class="muted">No purchase yet: send one above.</p>`}
</section>`,
      }),
    );
  }

  r.get("/dev/test-bank", async (req, res) => {
    await render(req, res);
  });

  r.post("/dev/test-bank/setup", async (req, res) => {
    const sandboxId = sandboxOf(req);
    const done = await setUpTestBankFeed(ctx, req.user!.id, sandboxId);
    flash(req, "ok", done ? "Test bank feed set up: send your first card transaction." : "The test bank feed is already set up.");
    res.redirect(303, "/portal/dev/test-bank");
  });

  r.post("/dev/test-bank/events", async (req, res) => {
    const sandboxId = sandboxOf(req);
    const feed = await testBankFeed(ctx, sandboxId);
    if (feed === null || feed === "pending") return render(req, res, { status: 409, error: "Set up the test bank feed first." });
    const type = str(req.body, "type", 16) as CardEventType;
    const purchaseRef = str(req.body, "purchase", 128);
    const memberId = str(req.body, "member_id", 64);
    const amount = parseAmount(str(req.body, "amount", 40), CURRENCY);
    if (!TYPES.some(([t]) => t === type)) return render(req, res, { status: 422, error: "Choose the kind of event." });
    if (typeof amount !== "number" || amount <= 0) return render(req, res, { status: 422, error: `Give an amount above zero, like 123.45 (${CURRENCY}, two decimals at most).` });
    const r2 = await sendFeedEvent(ctx, feed, { type, amountMinor: amount, ...(purchaseRef ? { purchaseRef } : { memberId }) });
    if (r2.outcome === "not-found") throw new PageNotFound();
    const what = `${TYPES.find(([t]) => t === type)![1].split(" — ")[0]} of ${money(amount, CURRENCY)} for ${r2.purchaseRef}`;
    if (r2.outcome === "rejected") flash(req, "error", `${what} was refused: ${r2.reason}.`);
    else flash(req, "ok", `${what}: ${r2.outcome === "accepted" ? "applied" : "a duplicate, nothing changed"}.`);
    res.redirect(303, `/portal/dev/test-bank#purchase-${r2.purchaseRef}`);
  });

  return r;
}
