import { Router, type Request, type Response } from "express";
import type { PortalContext } from "../context.ts";
import { html, type Html } from "../html.ts";
import { csrfField, flash, page } from "../layout.ts";
import { field, str } from "../web/forms.ts";
import { PageNotFound } from "../web/errors.ts";
import { runView } from "../../../settlement/src/settlement.routes.ts";
import { periodOf } from "../../../settlement/src/period.ts";
import { actorNames, badge, count, errorBanner, money, operatorActor, refusal, table, when } from "./common.ts";
import type { ObligationLike, ReconItemLike } from "./services.ts";
import type { NetworkReport } from "../../../settlement/src/clearing.service.ts";

type RunView = ReturnType<typeof runView>;

const DIRECTION: Record<string, string> = { payable_to_partner: "operator pays", receivable_from_partner: "partner pays", nil: "nothing due" };
const REVENUE_WORDS: Record<string, string> = {
  issuance: "Issuance (points sold)",
  issuance_reversal: "Issuance reversed by refunds",
  redemption: "Redemptions (points bought back)",
  redemption_reversal: "Redemptions reversed by refunds",
  breakage_share: "Breakage shares paid",
  transaction_fee: "Transaction fees",
  monthly_fee: "Monthly fees",
  adjustment: "Adjustments",
  cashback_funding: "Cashback funded by partners",
  cashback_funding_reversal: "Cashback funding taken back",
  roundup_match_funding: "Round-up matches funded by partners",
  cashback_payout: "Cashback paid out by banks (owed to them)",
  roundup_match_credited: "Round-up matches credited by banks (owed to them)",
  operator_funded_issuance: "Operator-funded points issued (at issuance price)",
  operator_funded_reversal: "Operator-funded points taken back",
  operator_funded_promotion: "Operator's promotions (their cost)",
};

/** The month before the one `now` is in: the one usually cleared next. */
function previousPeriod(now: Date): string {
  return periodOf(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1)));
}

/**
 * Settlement runs: start a month, watch its steps, read each partner's statement and the network
 * report, approve the closed month and issue its payments (the pain.001 credit-transfer file on
 * main; payment obligations and reconciliation when those services are wired in). Every write goes
 * through the clearing and credit-transfer services; approvals are recorded in the audit log.
 */
export function settlementPages(ctx: PortalContext): Router {
  const r = Router();
  const { clearing, statements, creditTransfers, runs, audit } = ctx.services.console;

  async function partnerNames(): Promise<Map<string, string>> {
    return new Map((await ctx.services.partners.listPartners({})).map((p) => [p.id, p.name]));
  }

  async function loadRun(id: string): Promise<RunView> {
    try {
      const { run, statements: rows } = await clearing.getRun(id);
      return runView(run, rows);
    } catch (err) {
      if (refusal(err)?.status === 404) throw new PageNotFound();
      throw err;
    }
  }

  async function approvalOf(runId: string) {
    const { items } = await audit.list({ objectType: "settlement_run", objectId: runId, limit: 50 });
    return { approval: items.find((a) => a.action === "settlement_run.approved") ?? null, trail: items };
  }

  async function renderIndex(req: Request, res: Response, opts: { status?: number; error?: string; period?: string } = {}) {
    const list = await runs.list();
    const rows = list.map(
      (x) => html`<tr><th scope="row"><a href="/portal/console/settlement/runs/${x.id}">${x.period}</a></th><td>${badge(x.status)}</td><td>${x.step}</td><td class="num">${x.statements}${x.statements_failed ? html` <span class="badge badge-failed">${x.statements_failed} failed</span>` : ""}</td><td class="num">${x.attempts}</td><td>${when(x.created_at)}</td><td>${when(x.closed_at)}</td></tr>`,
    );
    res.status(opts.status ?? 200).send(
      page(req, {
        title: "Settlement",
        body: html`${errorBanner(opts.error)}
<section class="card" aria-labelledby="start-h"><h2 id="start-h">Start a run</h2>
<p>Clearing a month computes every partner's statement from the ledger, checks that the network sums to zero and closes the month. Months close in order and only once they have ended; starting a running month again resumes it.</p>
<form method="post" action="/portal/console/settlement/runs" class="form">
${csrfField(req)}
${field("period", "Month (YYYY-MM, UTC)", { value: opts.period ?? previousPeriod(ctx.clock.now()), required: true, attrs: html` pattern="[0-9]{4}-[0-9]{2}" inputmode="numeric"` })}
<button type="submit" class="btn btn-primary">Start the run</button>
</form></section>
${table("Runs, newest month first", ["Month", "Status", "Step", ["Statements", "num"], ["Attempts", "num"], "Started", "Closed"], rows, "No run yet.")}`,
      }),
    );
  }

  r.get("/console/settlement", async (req, res) => {
    await renderIndex(req, res);
  });

  r.post("/console/settlement/runs", async (req, res) => {
    const period = str(req.body, "period", 7);
    if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(period)) return renderIndex(req, res, { status: 422, error: "Give the month as YYYY-MM.", period });
    try {
      const { run, created } = await clearing.startRun(period);
      await audit.record(operatorActor(req), { action: created ? "settlement_run.started" : "settlement_run.resumed", objectType: "settlement_run", objectId: run.id, after: { period, status: run.status } });
      flash(req, "ok", created ? `Run for ${period} started. The workers clear each partner's statement; this page shows the progress.` : `Run for ${period} is ${run.status}; ${run.status === "closed" ? "a closed month never changes" : "it resumes where it stopped"}.`);
      res.redirect(303, `/portal/console/settlement/runs/${run.id}`);
    } catch (err) {
      const e = refusal(err);
      if (!e) throw err;
      return renderIndex(req, res, { status: e.status, error: e.detail ?? e.title, period });
    }
  });

  function reportSection(rep: NetworkReport, names: Map<string, string>, runId: string): Html {
    return html`<section aria-labelledby="net-h"><h2 id="net-h">Network report</h2>
<dl class="figures" aria-label="Points in the month">
<div><dt>Points issued</dt><dd>${count(rep.points.issued)}</dd></div>
<div><dt>Points redeemed</dt><dd>${count(rep.points.redeemed)}</dd></div>
<div><dt>Points expired (breakage)</dt><dd>${count(rep.points.expired)}</dd></div>
<div><dt>Clawed back / restored</dt><dd>${count(rep.points.clawed_back)} / ${count(rep.points.restored)}</dd></div>
<div><dt>Members' balances moved</dt><dd>${count(rep.points.members_change)}</dd></div>
<div><dt>Liability outstanding at month end</dt><dd data-figure="liability">${count(rep.points.liability_outstanding)} pts</dd></div>
</dl>
${rep.currencies.map(
  (c) => html`<h3>${c.currency}</h3>
${table(
  `Net positions in ${c.currency}`,
  ["Partner", "Direction", ["Net", "num"]],
  c.partners.map(
    (p) => html`<tr><td><a href="/portal/console/settlement/runs/${runId}/statements/${p.statement_id}">${names.get(p.partner_id) ?? p.partner_id}</a></td><td>${DIRECTION[p.direction] ?? p.direction}</td><td class="num">${money(p.net_amount_minor, c.currency)}</td></tr>`,
  ),
)}
${table(
  `Operator revenue in ${c.currency}, by source`,
  ["Source", ["Amount", "num"]],
  Object.entries(c.operator_revenue_minor).map(([k, v]) => html`<tr><td>${REVENUE_WORDS[k] ?? k}</td><td class="num">${money(v, c.currency)}</td></tr>`),
)}
<dl class="facts"><dt>Partners' nets</dt><dd>${money(c.partners_net_total_minor, c.currency)}</dd><dt>Operator revenue</dt><dd>${money(c.operator_revenue_total_minor, c.currency)}</dd>
<dt>Network sum</dt><dd data-figure="network-sum-${c.currency}">${money(c.network_sum_minor, c.currency)} ${c.network_sum_minor === 0 ? html`<span class="badge badge-closed">balances</span>` : html`<span class="badge badge-failed">does not balance</span>`}</dd></dl>`,
)}
</section>`;
  }

  async function renderRun(req: Request, res: Response, id: string, opts: { status?: number; error?: string; payee?: Record<string, string>; payeeErrors?: Record<string, string> } = {}) {
    const run = await loadRun(id);
    const [names, { approval, trail }] = await Promise.all([partnerNames(), approvalOf(run.id)]);
    const actors = await actorNames(ctx.users, trail.map((a) => a.actor.id));
    const by = (id: string) => actors.get(id) ?? id;
    const report = run.report as NetworkReport | null;
    const stRows = run.statements.map(
      (s) => html`<tr><td>${s.status === "closed" ? html`<a href="/portal/console/settlement/runs/${run.id}/statements/${s.id}">${names.get(s.partner_id) ?? s.partner_id}</a>` : names.get(s.partner_id) ?? s.partner_id}</td><td>${badge(s.status)}</td><td>${s.step}</td><td class="num">${money(s.net_amount_minor, s.currency)}</td><td>${s.failure ?? ""}</td></tr>`,
    );
    const balanced = report !== null && report.currencies.every((c) => c.network_sum_minor === 0);
    const creditors = run.statements.filter((s) => s.status === "closed" && (s.net_amount_minor ?? 0) > 0);
    const payments = ctx.services.console.payments;
    let obligations: ObligationLike[] | null = null;
    if (payments && run.status === "closed") obligations = (await payments.listForRun(run.id)).items;
    const pv = opts.payee ?? {};
    const pe = opts.payeeErrors ?? {};
    res.status(opts.status ?? 200).send(
      page(req, {
        title: `Settlement ${run.period}`,
        body: html`${errorBanner(opts.error)}
<p><a href="/portal/console/settlement">← All runs</a></p>
<section class="card" aria-labelledby="run-h"><h2 id="run-h">Run ${badge(run.status)}</h2>
<dl class="facts"><dt>Id</dt><dd><code>${run.id}</code></dd><dt>Period</dt><dd>${when(run.period_start)} → ${when(run.period_end)}</dd><dt>Step</dt><dd data-figure="step">${run.step}</dd><dt>Attempts</dt><dd>${run.attempts}</dd>
<dt>Started</dt><dd>${when(run.created_at)}</dd><dt>Closed</dt><dd>${when(run.closed_at)}</dd>${run.failure ? html`<dt>Failure</dt><dd class="error">${run.failure}</dd>` : ""}</dl>
${run.status === "running" ? html`<p class="hint">The workers are clearing the month. <a href="/portal/console/settlement/runs/${run.id}">Refresh</a> to see the progress.</p>` : ""}
${run.status === "failed" ? html`<form method="post" action="/portal/console/settlement/runs" class="inline">${csrfField(req)}<input type="hidden" name="period" value="${run.period}"><button class="btn btn-primary" type="submit">Restart the run</button></form>` : ""}
</section>
${table("Statements, one per partner", ["Partner", "Status", "Step", ["Net (+ operator pays)", "num"], "Failure"], stRows, "No statements yet.")}
${report ? reportSection(report, names, run.id) : ""}
<section aria-labelledby="appr-h"><h2 id="appr-h">Approval and payment</h2>
${run.status !== "closed"
  ? html`<p>A month is approved once it is closed.</p>`
  : approval
    ? html`<p class="flash flash-ok" role="status">Approved by ${by(approval.actor.id)} at ${when(approval.at)}${approval.reason ? html` — “${approval.reason}”` : ""}.</p>`
    : html`<form method="post" action="/portal/console/settlement/runs/${run.id}/approve" class="form card" data-confirm="Approve ${run.period} for payment?">${csrfField(req)}
<p>Approving says the finance team checked the statements and the network report${balanced ? " (the network balances)" : ""}; payments are issued only for an approved month.</p>
${field("note", "Note (optional)", { type: "textarea", rows: 2, hint: "Kept in the audit log." })}
<button type="submit" class="btn btn-primary"${balanced ? "" : html` disabled`}>Approve for payment</button></form>`}
${approval
  ? html`<div class="grid">
<form method="post" action="/portal/console/settlement/runs/${run.id}/credit-transfers" class="form card">${csrfField(req)}
<h3>Pay creditors by bank (pain.001)</h3>
<p>${creditors.length} partner(s) are owed money. The file is built from the closed statements, so it is the same every time.</p>
${field("debtor_name", "Operator account holder", { required: true, value: pv.debtor_name, error: pe.debtor_name })}
${field("debtor_iban", "Operator IBAN", { required: true, value: pv.debtor_iban, error: pe.debtor_iban })}
${field("debtor_bic", "Operator BIC", { required: true, value: pv.debtor_bic, error: pe.debtor_bic })}
<button type="submit" class="btn btn-primary">Download the credit-transfer file</button></form>
<form method="post" action="/portal/console/settlement/runs/${run.id}/payee" class="form card">${csrfField(req)}
<h3>A creditor's payee account</h3>
${field("partner_id", "Partner", { value: pv.partner_id, error: pe.partner_id, options: creditors.map((s): [string, string] => [s.partner_id, names.get(s.partner_id) ?? s.partner_id]) })}
${field("account_holder", "Account holder", { value: pv.account_holder, error: pe.account_holder })}
${field("iban", "IBAN", { value: pv.iban, error: pe.iban })}
${field("bic", "BIC", { value: pv.bic, error: pe.bic })}
<button type="submit" class="btn">Save the payee account</button></form>
</div>`
  : ""}
${run.status === "closed" ? paymentsSection(obligations, names) : ""}
<p><a href="/portal/console/settlement/runs/${run.id}/reconciliation">Reconciliation exceptions</a></p>
</section>
<section aria-labelledby="trail-h"><h2 id="trail-h">Trail</h2>
${table("What the console did to this run", ["When", "Action", "By", "Note"], trail.map((a) => html`<tr><td>${when(a.at)}</td><td><code>${a.action}</code></td><td>${by(a.actor.id)}</td><td>${a.reason ?? ""}</td></tr>`))}
</section>`,
      }),
    );
  }

  function paymentsSection(obligations: ObligationLike[] | null, names: Map<string, string>): Html {
    if (obligations === null) return html`<p class="hint">Payment tracking (Stripe and bank rails, payment obligations) is not wired into this hub: creditors are paid with the pain.001 credit-transfer file once the month is approved.</p>`;
    return table(
      "Payment obligations",
      ["Partner", "Direction", ["Due", "num"], ["Paid", "num"], "Status", "Rail", "Due date"],
      obligations.map(
        (o) => html`<tr><td>${names.get(o.partner_id) ?? o.partner_id}</td><td>${DIRECTION[o.direction] ?? o.direction}</td><td class="num">${money(o.amount_due_minor, o.currency)}</td><td class="num">${money(o.amount_paid_minor, o.currency)}</td><td>${badge(o.status)}</td><td>${o.rail ?? "—"}</td><td>${o.due_date ?? "—"}</td></tr>`,
      ),
      "No obligations for this month.",
    );
  }

  r.get("/console/settlement/runs/:id", async (req, res) => {
    await renderRun(req, res, req.params.id);
  });

  r.post("/console/settlement/runs/:id/approve", async (req, res) => {
    const run = await loadRun(req.params.id);
    const note = str(req.body, "note", 1000);
    const report = run.report as NetworkReport | null;
    if (run.status !== "closed" || !report) return renderRun(req, res, run.id, { status: 409, error: `The run is ${run.status}; only a closed month is approved.` });
    if (!report.currencies.every((c) => c.network_sum_minor === 0)) return renderRun(req, res, run.id, { status: 409, error: "The network report does not balance; it cannot be approved." });
    if ((await approvalOf(run.id)).approval) return renderRun(req, res, run.id, { status: 409, error: "This month is already approved." });
    await audit.record(operatorActor(req), {
      action: "settlement_run.approved",
      objectType: "settlement_run",
      objectId: run.id,
      after: { period: run.period, nets: report.currencies.map((c) => ({ currency: c.currency, partners_net_total_minor: c.partners_net_total_minor, operator_revenue_total_minor: c.operator_revenue_total_minor })) },
      reason: note || null,
    });
    flash(req, "ok", `${run.period} approved for payment.`);
    res.redirect(303, `/portal/console/settlement/runs/${run.id}`);
  });

  r.post("/console/settlement/runs/:id/credit-transfers", async (req, res) => {
    const run = await loadRun(req.params.id);
    const debtor = { name: str(req.body, "debtor_name", 140), iban: str(req.body, "debtor_iban", 40), bic: str(req.body, "debtor_bic", 11) };
    const values = { debtor_name: debtor.name, debtor_iban: debtor.iban, debtor_bic: debtor.bic };
    if (!(await approvalOf(run.id)).approval) return renderRun(req, res, run.id, { status: 409, error: "Approve the month before paying it." });
    if (!debtor.name) return renderRun(req, res, run.id, { status: 422, error: "Name the operator's account holder.", payee: values, payeeErrors: { debtor_name: "Required." } });
    try {
      const file = await creditTransfers.creditTransferFile(run.id, debtor);
      await audit.record(operatorActor(req), { action: "settlement_run.credit_transfers_issued", objectType: "settlement_run", objectId: run.id, after: { sha256: file.sha256 } });
      res.setHeader("Content-Type", "application/xml; charset=utf-8");
      res.setHeader("Content-Disposition", `attachment; filename="pain001-${run.id}.xml"`);
      res.setHeader("ETag", `"${file.sha256}"`);
      res.send(file.xml);
    } catch (err) {
      const e = refusal(err);
      if (!e) throw err;
      return renderRun(req, res, run.id, { status: e.status, error: e.detail ?? e.title, payee: values });
    }
  });

  r.post("/console/settlement/runs/:id/payee", async (req, res) => {
    const run = await loadRun(req.params.id);
    const input = { partner_id: str(req.body, "partner_id", 64), account_holder: str(req.body, "account_holder", 140), iban: str(req.body, "iban", 40), bic: str(req.body, "bic", 11) };
    if (!run.statements.some((s) => s.partner_id === input.partner_id)) return renderRun(req, res, run.id, { status: 422, error: "Choose a partner of this run.", payee: input, payeeErrors: { partner_id: "Choose a partner of this run." } });
    if (!input.account_holder) return renderRun(req, res, run.id, { status: 422, error: "Name the account holder.", payee: input, payeeErrors: { account_holder: "Required." } });
    try {
      const saved = await creditTransfers.setPayeeAccount(input.partner_id, { account_holder: input.account_holder, iban: input.iban, bic: input.bic });
      await audit.record(operatorActor(req), { action: "partner.payee_account_set", objectType: "partner", objectId: input.partner_id, after: saved });
    } catch (err) {
      const e = refusal(err);
      if (!e) throw err;
      return renderRun(req, res, run.id, { status: e.status, error: e.detail ?? e.title, payee: input, payeeErrors: { iban: e.detail ?? e.title } });
    }
    flash(req, "ok", "Payee account saved.");
    res.redirect(303, `/portal/console/settlement/runs/${run.id}`);
  });

  async function statementOf(runId: string, statementId: string) {
    const run = await loadRun(runId);
    const st = run.statements.find((s) => s.id === statementId);
    if (!st || st.status !== "closed") throw new PageNotFound();
    return { run, statement: await statements.get(st.partner_id, st.id) };
  }

  r.get("/console/settlement/runs/:id/statements/:sid.csv", async (req, res) => {
    const { statement: s } = await statementOf(req.params.id, req.params.sid);
    res.setHeader("Content-Type", "text/csv; charset=utf-8; header=present");
    res.setHeader("Content-Disposition", `attachment; filename="${s.id}.csv"`);
    if (s.csv_sha256) res.setHeader("ETag", `"${s.csv_sha256}"`);
    await statements.renderCsv(s.id, async (chunk) => {
      if (!res.write(chunk)) await new Promise<void>((resolve) => res.once("drain", () => resolve()));
    });
    res.end();
  });

  r.get("/console/settlement/runs/:id/statements/:sid", async (req, res) => {
    const { run, statement: s } = await statementOf(req.params.id, req.params.sid);
    const names = await partnerNames();
    // The partner's disputes of this statement's lines (resolved in the Disputes section).
    const disputed = (await ctx.services.disputes.listForOperator({ partnerId: s.partner_id, limit: 100 })).items.filter((d) => d.statement_id === s.id);
    const cur = s.currency ?? "EUR";
    const lineRows = (ls: typeof s.lines) =>
      ls.map(
        (l) => html`<tr><td class="num">${l.line_no}</td><td>${l.description}${l.corrects_period ? html` <span class="muted">(corrects ${l.corrects_period})</span>` : ""}</td><td class="num">${l.contract_version === null ? "—" : `v${l.contract_version}`}</td><td class="num">${count(l.points)}</td><td class="num">${count(l.transactions)}</td><td class="num">${l.exact_amount ?? "—"}</td><td class="num">${money(l.amount_minor, cur)}</td></tr>`,
      );
    const head: Array<string | [string, "num"]> = [["#", "num"], "Line", ["Contract", "num"], ["Points", "num"], ["Transactions", "num"], ["Exact", "num"], ["Amount", "num"]];
    res.send(
      page(req, {
        title: `${names.get(s.partner_id) ?? s.partner_id} · ${s.period}`,
        body: html`<p><a href="/portal/console/settlement/runs/${run.id}">← Settlement ${run.period}</a></p>
<dl class="figures"><div><dt>Net</dt><dd data-figure="net">${money(s.net_amount_minor, cur)}</dd></div><div><dt>Direction</dt><dd>${DIRECTION[s.direction] ?? s.direction}</dd></div><div><dt>Due</dt><dd>${s.due_date ?? "—"}</dd></div><div><dt>Opening → closing</dt><dd>${money(s.opening_position_minor, cur)} → ${money(s.closing_position_minor, cur)}</dd></div></dl>
${table("Lines", head, lineRows(s.lines), "No activity.")}
${table("Fees", head, lineRows(s.fees), "No fees.")}
${s.adjustments.length ? table("Adjustments to earlier periods", head, lineRows(s.adjustments)) : ""}
<dl class="facts"><dt>Lines</dt><dd>${money(s.totals.lines_minor, cur)}</dd><dt>Fees</dt><dd>${money(s.totals.fees_minor, cur)}</dd><dt>Adjustments</dt><dd>${money(s.totals.adjustments_minor, cur)}</dd>
<dt>Content SHA-256</dt><dd><code>${s.content_sha256 ?? ""}</code></dd><dt>CSV SHA-256</dt><dd><code>${s.csv_sha256 ?? ""}</code></dd></dl>
<p><a class="btn" href="/portal/console/settlement/runs/${run.id}/statements/${s.id}.csv" download>Download the CSV</a></p>
${disputed.length
  ? table(
      "Disputes of this statement",
      [["Line", "num"], "Reason", ["Claimed", "num"], "Status", "Opened"],
      disputed.map((d) => html`<tr><td class="num"><a href="/portal/console/disputes/${d.id}">${d.line.line_no}</a></td><td>${d.reason}</td><td class="num">${d.amount_claimed_minor === null ? "—" : money(d.amount_claimed_minor, d.currency)}</td><td>${badge(d.status)}</td><td>${when(d.opened_at)}</td></tr>`),
    )
  : ""}`,
      }),
    );
  });

  r.get("/console/settlement/runs/:id/reconciliation", async (req, res) => {
    const run = await loadRun(req.params.id);
    const names = await partnerNames();
    const recon = ctx.services.console.reconciliation;
    let body: Html;
    if (!recon) {
      body = html`<p>Reconciliation (matching bank statements, camt.053 and Stripe balances against the month's statements) is not wired into this hub yet. When it is, this page lists what was short, over, missing or unexpected.</p>`;
    } else if (run.status !== "closed") {
      body = html`<p>The month is ${run.status}; reconciliation starts once it is closed.</p>`;
    } else {
      const rep = await recon.report(run.id);
      const itemRows = (items: ReconItemLike[]) =>
        items.map(
          (i) => html`<tr><td>${i.booking_date ?? "—"}</td><td>${i.partner_id ? names.get(i.partner_id) ?? i.partner_id : "—"}</td><td>${i.reference ?? ""}</td><td>${i.counterparty ?? ""}</td><td class="num">${money(i.amount_minor, i.currency)}</td><td>${badge(i.outcome)}</td></tr>`,
        );
      const head: Array<string | [string, "num"]> = ["Booked", "Partner", "Reference", "Counterparty", ["Amount", "num"], "Outcome"];
      body = html`${table(
        "Totals",
        ["Currency", ["Receivable due", "num"], ["Received", "num"], ["Payable due", "num"], ["Paid", "num"]],
        rep.totals.map((t) => html`<tr><td>${t.currency}</td><td class="num">${money(t.receivable_due_minor, t.currency)}</td><td class="num">${money(t.receivable_received_minor, t.currency)}</td><td class="num">${money(t.payable_due_minor, t.currency)}</td><td class="num">${money(t.payable_paid_minor, t.currency)}</td></tr>`),
      )}
${table("Short payments", head, itemRows(rep.short), "None.")}
${table("Overpayments", head, itemRows(rep.over), "None.")}
${table("Statements nothing was received or paid for", ["Partner", "Direction", ["Due", "num"], "Status"], rep.missing.map((o) => html`<tr><td>${names.get(o.partner_id) ?? o.partner_id}</td><td>${DIRECTION[o.direction] ?? o.direction}</td><td class="num">${money(o.amount_due_minor, o.currency)}</td><td>${badge(o.status)}</td></tr>`), "None.")}
${table("Entries that match no statement", head, itemRows(rep.unexpected), "None.")}
<p class="muted">${rep.matched.length} entries matched exactly.</p>`;
    }
    res.send(page(req, { title: `Reconciliation exceptions · ${run.period}`, body: html`<p><a href="/portal/console/settlement/runs/${run.id}">← Settlement ${run.period}</a></p>${body}` }));
  });

  return r;
}
