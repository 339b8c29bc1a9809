import { Router, type Request, type Response } from "express";
import type { PortalContext } from "../context.ts";
import { html, type Html } from "../html.ts";
import { csrfField, flash, page } from "../layout.ts";
import { field, list, str } from "../web/forms.ts";
import { PageNotFound } from "../web/errors.ts";
import { RULE_TYPES, type CapPeriod, type RuleType } from "../../../gateway/src/rules/rules.engine.ts";
import { REQUIRED_PARAMS, type RuleInput } from "../../../gateway/src/rules/rules.service.ts";
import type { LadderInput } from "../../../gateway/src/rules/tiers.service.ts";
import { actorNames, badge, count, errorBanner, money, operatorActor, parseDecimal, parseWhole, refusal, table, when } from "./common.ts";

type Rule = Awaited<ReturnType<PortalContext["services"]["console"]["rules"]["getRule"]>>;
type Simulation = Awaited<ReturnType<PortalContext["services"]["console"]["rules"]["simulate"]>>;

const TYPE_LABELS: Record<RuleType, string> = {
  base_rate: "Base rate (points per amount spent)",
  multiplier: "Multiplier (double points in a category)",
  nth_purchase: "Every n-th purchase (percent back as points)",
  first_purchase: "First purchase bonus",
  birthday: "Birthday bonus",
  referral: "Referral bonus (both sides)",
  custom_event: "Custom event (a review, a share)",
  fixed_bonus: "Fixed bonus per qualifying purchase",
};

/** The params each type reads (the service checks the required ones; the form sends only these). */
const TYPE_PARAMS: Record<RuleType, string[]> = {
  base_rate: ["points", "per_minor", "min_amount_minor"],
  multiplier: ["multiplier_bp", "categories", "skus"],
  nth_purchase: ["every", "percent_bp", "point_value_minor", "period"],
  first_purchase: ["points", "min_amount_minor"],
  birthday: ["points", "on"],
  referral: ["referrer_points", "referred_points", "clear_after_days"],
  custom_event: ["event", "points"],
  fixed_bonus: ["points", "min_amount_minor"],
};

const PERIODS: Array<[string, string]> = [
  ["", "—"],
  ["rule", "The rule's whole validity"],
  ["day", "Day"],
  ["week", "Week"],
  ["month", "Month"],
  ["year", "Year"],
];

/** The simulation window the console runs before activation unless the operator picks another. */
const DEFAULT_SIM_DAYS = 30;

const ruleLink = (r: { id: string; name: string }) => html`<a href="/portal/console/rules/${r.id}">${r.name}</a>`;

function owner(r: Rule): Html {
  return r.owner.kind === "operator" ? html`operator` : html`partner <a href="/portal/console/partners/${r.owner.partner_id!}"><code>${r.owner.partner_id!}</code></a>`;
}

/** The figures of a simulation, as a definition list of cards. */
export function simulationFigures(s: Simulation): Html {
  return html`<dl class="figures" aria-label="Simulation results">
<div><dt>Points it would have given</dt><dd data-figure="points">${count(s.points)}</dd></div>
${s.cost.length ? s.cost.map((c) => html`<div><dt>Cost at issuance price (${c.currency})</dt><dd data-figure="cost-${c.currency}">${money(c.cost_minor, c.currency)}</dd></div>`) : html`<div><dt>Cost at issuance price</dt><dd data-figure="cost">0</dd></div>`}
<div><dt>Members touched</dt><dd data-figure="members">${count(s.members_touched)}</dd></div>
<div><dt>Purchases rewarded / examined</dt><dd data-figure="transactions">${count(s.transactions_rewarded)} / ${count(s.transactions_examined)}</dd></div>
</dl>
<p class="hint">Window ${when(s.from)} → ${when(s.to)} (${s.days} days). ${s.rounding}. ${s.notes}</p>`;
}

/**
 * Rules, campaigns and the tier ladder: list, a draft from a form, the simulation over real past
 * purchases (its figures are kept in the audit log), activation only after a simulation, pause and
 * archive; the ladder. Every change goes through the rules and tiers services.
 */
export function rulesPages(ctx: PortalContext): Router {
  const r = Router();
  const { rules, tiers, audit } = ctx.services.console;

  async function loadRule(id: string): Promise<Rule> {
    try {
      return await rules.getRule(id);
    } catch (err) {
      if (refusal(err)?.status === 404) throw new PageNotFound();
      throw err;
    }
  }

  r.get("/console/rules", async (req, res) => {
    const status = typeof req.query.status === "string" && ["draft", "active", "paused", "archived"].includes(req.query.status) ? req.query.status : undefined;
    const { items } = await rules.listRules(undefined, status);
    const rows = items.map(
      (x) => html`<tr><td>${ruleLink(x)}</td><td>${x.type}</td><td>${badge(x.status)}</td><td>${x.owner.kind === "operator" ? "operator" : html`<code>${x.owner.partner_id!}</code>`}</td><td class="num">${x.priority}</td><td>${when(x.valid_from)} → ${x.valid_until ? when(x.valid_until) : "open"}</td></tr>`,
    );
    res.send(
      page(req, {
        title: "Rules and campaigns",
        body: html`<p class="actions"><a class="btn btn-primary" href="/portal/console/rules/new">New draft rule</a> <a class="btn" href="/portal/console/tiers">Tier ladder</a></p>
<nav aria-label="Filter by status" class="filters"><ul class="actions">${[["", "All"], ["draft", "Drafts"], ["active", "Active"], ["paused", "Paused"], ["archived", "Archived"]].map(
          ([v, l]) => html`<li><a class="btn btn-small" href="/portal/console/rules${v ? `?status=${v}` : ""}"${(status ?? "") === v ? html` aria-current="true"` : ""}>${l}</a></li>`,
        )}</ul></nav>
${table(`Rules (${items.length}), in the order the engine applies them`, ["Rule", "Type", "Status", "Funded by", ["Priority", "num"], "Valid"], rows, "No rules yet.")}`,
      }),
    );
  });

  // ---- a draft from a form ------------------------------------------------------------------

  const FORM_FIELDS = [
    "name", "type", "priority", "stack_group", "valid_from", "valid_until", "target_kind", "target_values",
    "points", "per_minor", "min_amount_minor", "multiplier", "categories", "skus", "every", "percent", "point_value_minor", "period",
    "on", "referrer_points", "referred_points", "clear_after_days", "event",
    "cap_period", "cap_member_points", "cap_member_times", "cap_total_points",
  ];

  async function ruleForm(req: Request, v: Record<string, string>, partnerIds: string[], errors: Record<string, string> = {}, banner?: string): Promise<string> {
    const active = await ctx.services.partners.listPartners({ status: "active" });
    return page(req, {
      title: "New draft rule",
      body: html`${errorBanner(banner)}
<p class="lead">A rule is created as a draft. Simulate it over real past purchases, then activate it from its page. Amounts are in minor units of the purchase's currency (1000 = 10.00 EUR).</p>
<form method="post" action="/portal/console/rules" class="form" novalidate>
${csrfField(req)}
<fieldset><legend>The rule</legend>
${field("name", "Name", { value: v.name, error: errors.name, required: true, hint: "Members may see it on their receipts: “Double points on fresh food”." })}
${field("type", "Type", { value: v.type ?? "multiplier", error: errors.type, required: true, options: RULE_TYPES.map((t): [string, string] => [t, TYPE_LABELS[t]]) })}
${field("priority", "Priority", { value: v.priority ?? "100", error: errors.priority, hint: "Lower runs first; ties by id.", attrs: html` inputmode="numeric"` })}
${field("stack_group", "Stacking group (optional)", { value: v.stack_group, error: errors.stack_group, hint: "Within one group only the first rule that gives points counts." })}
${field("valid_from", "Valid from (UTC)", { type: "datetime-local", value: v.valid_from, error: errors.valid_from, required: true })}
${field("valid_until", "Valid until (UTC, optional)", { type: "datetime-local", value: v.valid_until, error: errors.valid_until })}
</fieldset>
<fieldset><legend>Who and where</legend>
${field("target_kind", "Members", { value: v.target_kind ?? "all", error: errors.target_kind, options: [["all", "Every member"], ["tier", "Members in these tiers"], ["segment", "Members in these segments"]] })}
${field("target_values", "Tiers or segments (comma-separated)", { value: v.target_values, error: errors.target_values, hint: "For a tier or segment target: gold, platinum" })}
<div class="field"><span class="label" id="partners-l">At partners (none ticked: every partner)</span>
<div class="checks" role="group" aria-labelledby="partners-l">${active.map((p) => html`<label><input type="checkbox" name="partner_ids" value="${p.id}"${partnerIds.includes(p.id) ? html` checked` : ""}> ${p.name}</label>`)}</div>
${errors.partner_ids ? html`<p class="error">${errors.partner_ids}</p>` : ""}</div>
</fieldset>
<fieldset><legend>What it gives (fill what the type uses)</legend>
${field("points", "Points", { value: v.points, error: errors.points, hint: "Base rate, first purchase, birthday, custom event, fixed bonus.", attrs: html` inputmode="numeric"` })}
${field("per_minor", "…per amount spent (minor units)", { value: v.per_minor, error: errors.per_minor, hint: "Base rate.", attrs: html` inputmode="numeric"` })}
${field("min_amount_minor", "Minimum purchase (minor units)", { value: v.min_amount_minor, error: errors.min_amount_minor, hint: "Base rate, first purchase, fixed bonus.", attrs: html` inputmode="numeric"` })}
${field("multiplier", "Multiplier (×)", { value: v.multiplier, error: errors.multiplier, hint: "Multiplier: 2 for double points, 1.5 for half again. Above 1, at most 4 decimals.", attrs: html` inputmode="decimal"` })}
${field("categories", "Categories (comma-separated)", { value: v.categories, error: errors.categories, hint: "Multiplier: basket line categories it counts (none: the whole basket)." })}
${field("skus", "SKUs (comma-separated)", { value: v.skus, error: errors.skus, hint: "Multiplier." })}
${field("every", "Every n-th purchase", { value: v.every, error: errors.every, attrs: html` inputmode="numeric"` })}
${field("percent", "Percent back as points (%)", { value: v.percent, error: errors.percent, hint: "Every n-th purchase: 15 for 15 %.", attrs: html` inputmode="decimal"` })}
${field("point_value_minor", "Value of one point (minor units)", { value: v.point_value_minor, error: errors.point_value_minor, attrs: html` inputmode="numeric"` })}
${field("period", "Counting period", { value: v.period, error: errors.period, options: PERIODS.filter(([p]) => p !== "rule") })}
${field("on", "Birthday bonus on", { value: v.on ?? "month", options: [["month", "Any purchase in the birthday month"], ["day", "The birthday itself"]] })}
${field("referrer_points", "Referrer's points", { value: v.referrer_points, error: errors.referrer_points, attrs: html` inputmode="numeric"` })}
${field("referred_points", "Referred member's points", { value: v.referred_points, error: errors.referred_points, attrs: html` inputmode="numeric"` })}
${field("clear_after_days", "Clears after (days)", { value: v.clear_after_days, error: errors.clear_after_days, attrs: html` inputmode="numeric"` })}
${field("event", "Event name", { value: v.event, error: errors.event, hint: "Custom event: review, share." })}
</fieldset>
<fieldset><legend>Caps (optional)</legend>
${field("cap_period", "Cap period", { value: v.cap_period, error: errors.cap_period, options: PERIODS })}
${field("cap_member_points", "Points per member per period", { value: v.cap_member_points, error: errors.cap_member_points, attrs: html` inputmode="numeric"` })}
${field("cap_member_times", "Times per member per period", { value: v.cap_member_times, error: errors.cap_member_times, attrs: html` inputmode="numeric"` })}
${field("cap_total_points", "Points for the whole rule per period", { value: v.cap_total_points, error: errors.cap_total_points, attrs: html` inputmode="numeric"` })}
</fieldset>
<button type="submit" class="btn btn-primary">Create the draft</button>
</form>`,
    });
  }

  r.get("/console/rules/new", async (req, res) => {
    res.send(await ruleForm(req, { valid_from: new Date(ctx.clock.now().getTime() + 3_600_000).toISOString().slice(0, 14) + "00" }, []));
  });

  r.post("/console/rules", async (req, res) => {
    const b = req.body as unknown;
    const v = Object.fromEntries(FORM_FIELDS.map((n) => [n, str(b, n, 200)]));
    const partnerIds = list(b, "partner_ids").slice(0, 200);
    const { input, errors } = readRule(v, partnerIds);
    if (!input) return res.status(422).send(await ruleForm(req, v, partnerIds, errors, "Some fields need attention; nothing was saved."));
    try {
      const created = await rules.createRule(null, input);
      await audit.record(operatorActor(req), { action: "rule.created", objectType: "rule", objectId: created.id, after: created });
      flash(req, "ok", `Draft “${created.name}” created. Simulate it before you activate it.`);
      res.redirect(303, `/portal/console/rules/${created.id}`);
    } catch (err) {
      const e = refusal(err);
      if (!e) throw err;
      res.status(e.status).send(await ruleForm(req, v, partnerIds, {}, e.detail ?? e.title));
    }
  });

  // ---- a rule: simulate, activate, pause --------------------------------------------------------

  async function lastSimulation(id: string) {
    const { items } = await audit.list({ objectType: "rule", objectId: id, limit: 50 });
    return items.find((a) => a.action === "rule.simulated") ?? null;
  }

  async function renderRule(req: Request, res: Response, id: string, opts: { status?: number; error?: string; simulation?: Simulation } = {}) {
    const rule = await loadRule(id);
    const [sim, trail] = await Promise.all([lastSimulation(id), audit.list({ objectType: "rule", objectId: id, limit: 20 })]);
    const shown = opts.simulation ?? (sim?.after as Simulation | null) ?? null;
    const canActivate = rule.status === "paused" || (rule.status === "draft" && sim !== null);
    const actors = await actorNames(ctx.users, trail.items.map((a) => a.actor.id));
    const by = (id: string) => actors.get(id) ?? id;
    const move = (to: string, label: string, cls = "btn") =>
      html`<form method="post" action="/portal/console/rules/${rule.id}/status" class="inline">${csrfField(req)}<input type="hidden" name="status" value="${to}"><button type="submit" class="${cls}">${label}</button></form>`;
    res.status(opts.status ?? 200).send(
      page(req, {
        title: rule.name,
        body: html`${errorBanner(opts.error)}
<p><a href="/portal/console/rules">← All rules</a></p>
<section class="card" aria-labelledby="rule-h"><h2 id="rule-h">${TYPE_LABELS[rule.type as RuleType] ?? rule.type} ${badge(rule.status)}</h2>
<dl class="facts"><dt>Id</dt><dd><code>${rule.id}</code></dd><dt>Funded by</dt><dd>${owner(rule)}</dd><dt>Priority</dt><dd>${rule.priority}${rule.stack_group ? html` · stacking group <code>${rule.stack_group}</code>` : ""}</dd>
<dt>Valid</dt><dd>${when(rule.valid_from)} → ${rule.valid_until ? when(rule.valid_until) : "open"}</dd>
<dt>Members</dt><dd>${rule.target.kind === "all" ? "every member" : rule.target.kind === "tier" ? `tiers ${rule.target.tiers.join(", ")}` : `segments ${rule.target.segments.join(", ")}`}</dd>
<dt>Partners</dt><dd>${rule.partner_ids?.length ? rule.partner_ids.map((p, i) => html`${i ? ", " : ""}<a href="/portal/console/partners/${p}"><code>${p}</code></a>`) : "every partner"}</dd>
<dt>Params</dt><dd><code>${JSON.stringify(rule.params)}</code></dd><dt>Caps</dt><dd><code>${JSON.stringify(rule.caps)}</code></dd></dl>
</section>
<section aria-labelledby="sim-h"><h2 id="sim-h">Simulation</h2>
${shown ? html`${opts.simulation ? "" : html`<p class="hint">Last run ${when(sim!.at)} by ${by(sim!.actor.id)}.</p>`}${simulationFigures(shown)}` : html`<p>Not simulated yet. ${rule.status === "draft" ? "A draft is activated only after a simulation." : ""}</p>`}
<form method="post" action="/portal/console/rules/${rule.id}/simulate" class="form">
${csrfField(req)}
${field("days", "Over the last … days of purchases", { value: String(shown?.days ?? DEFAULT_SIM_DAYS), attrs: html` inputmode="numeric"` })}
<button type="submit" class="btn">Run the simulation</button>
</form>
</section>
<section aria-labelledby="act-h"><h2 id="act-h">Status</h2>
<div class="actions">
${rule.status === "draft" || rule.status === "paused" ? (canActivate ? move("active", "Activate", "btn btn-primary") : html`<p class="warn">Run the simulation first: the figures are the operator's check before the rule gives points.</p>`) : ""}
${rule.status === "active" ? move("paused", "Pause") : ""}
${rule.status !== "archived" ? move("archived", "Archive", "btn btn-danger") : html`<p>Archived: it gives no points and cannot come back.</p>`}
</div>
</section>
<section aria-labelledby="trail-h"><h2 id="trail-h">Trail</h2>
${table("What was done to this rule from the console", ["When", "Action", "By"], trail.items.map((a) => html`<tr><td>${when(a.at)}</td><td><code>${a.action}</code></td><td>${by(a.actor.id)}</td></tr>`))}
</section>`,
      }),
    );
  }

  r.get("/console/rules/:id", async (req, res) => {
    await renderRule(req, res, req.params.id);
  });

  r.post("/console/rules/:id/simulate", async (req, res) => {
    const rule = await loadRule(req.params.id);
    const days = parseWhole(str(req.body, "days", 10), 1, 366);
    if (days === null) return renderRule(req, res, rule.id, { status: 422, error: "Simulate over 1 to 366 days." });
    const sim = await rules.simulate(rule.id, days);
    await audit.record(operatorActor(req), { action: "rule.simulated", objectType: "rule", objectId: rule.id, after: sim });
    await renderRule(req, res, rule.id, { simulation: sim });
  });

  r.post("/console/rules/:id/status", async (req, res) => {
    const rule = await loadRule(req.params.id);
    const to = str(req.body, "status", 20);
    if (!["active", "paused", "archived"].includes(to)) return renderRule(req, res, rule.id, { status: 422, error: "Choose activate, pause or archive." });
    if (to === "active" && rule.status === "draft" && !(await lastSimulation(rule.id))) {
      return renderRule(req, res, rule.id, { status: 409, error: "Run the simulation before activating a draft." });
    }
    try {
      const after = await rules.setStatus(rule.id, to as "active" | "paused" | "archived");
      await audit.record(operatorActor(req), { action: `rule.${to}`, objectType: "rule", objectId: rule.id, before: { status: rule.status }, after: { status: after.status } });
    } catch (err) {
      const e = refusal(err);
      if (!e) throw err;
      return renderRule(req, res, rule.id, { status: e.status, error: e.detail ?? e.title });
    }
    flash(req, "ok", `“${rule.name}” is ${to} now.`);
    res.redirect(303, `/portal/console/rules/${rule.id}`);
  });

  // ---- the tier ladder ------------------------------------------------------------------------

  const TIER_ROWS = 5;

  async function renderTiers(req: Request, res: Response, opts: { status?: number; error?: string; values?: Record<string, string>; errors?: Record<string, string> } = {}) {
    let ladder: Awaited<ReturnType<typeof tiers.getLadder>> | null = null;
    try {
      ladder = await tiers.getLadder();
    } catch (err) {
      if (refusal(err)?.code !== "no-tier-ladder") throw err;
    }
    const v: Record<string, string> = opts.values ?? {
      basis: ladder?.basis ?? "spend_minor",
      window_days: String(ladder?.window_days ?? 365),
      grace_days: String(ladder?.grace_days ?? 30),
      ...Object.fromEntries(
        (ladder?.tiers ?? []).flatMap((t, i) => [
          [`code_${i}`, t.code],
          [`name_${i}`, t.name],
          [`threshold_${i}`, String(t.threshold)],
          [`multiplier_${i}`, (t.multiplier_bp / 10_000).toString()],
          [`perks_${i}`, t.perks.join(", ")],
        ]),
      ),
    };
    const e = opts.errors ?? {};
    const rows = (ladder?.tiers ?? []).map(
      (t) => html`<tr><td class="num">${t.rank}</td><th scope="row">${t.name} <code>${t.code}</code></th><td class="num">${ladder!.basis === "spend_minor" ? `${count(t.threshold)} minor units` : `${count(t.threshold)} points`}</td><td class="num">×${(t.multiplier_bp / 10_000).toString()}</td><td>${t.perks.join(", ") || html`<span class="muted">—</span>`}</td></tr>`,
    );
    const cell = (name: string, label: string, i: number, attrs: Html = html``) =>
      html`<td><label class="sr-only" for="f-${name}_${i}">${label}, tier ${i + 1}</label><input id="f-${name}_${i}" name="${name}_${i}" value="${v[`${name}_${i}`] ?? ""}"${e[`${name}_${i}`] ? html` aria-invalid="true"` : ""}${attrs}></td>`;
    res.status(opts.status ?? 200).send(
      page(req, {
        title: "Tier ladder",
        body: html`${errorBanner(opts.error)}
${ladder ? html`<p>Qualifying on <strong>${ladder.basis === "spend_minor" ? "spend" : "points earned"}</strong> in a rolling ${ladder.window_days}-day window; a member below their tier keeps it ${ladder.grace_days} days before moving down.</p>
${table("The ladder, lowest first", [["Rank", "num"], "Tier", ["Threshold", "num"], ["Earn multiplier", "num"], "Perks"], rows)}` : html`<p>No tier ladder yet.</p>`}
<h2>Replace the ladder</h2>
<form method="post" action="/portal/console/tiers" class="form form-wide" novalidate>
${csrfField(req)}
${field("basis", "Qualifying on", { value: v.basis, error: e.basis, options: [["spend_minor", "Spend (minor units) in the window"], ["points_earned", "Points earned in the window"]] })}
${field("window_days", "Window (days)", { value: v.window_days, error: e.window_days, attrs: html` inputmode="numeric"` })}
${field("grace_days", "Grace before a downgrade (days)", { value: v.grace_days, error: e.grace_days, attrs: html` inputmode="numeric"` })}
<div class="table-wrap"><table><caption>Tiers, lowest first (leave a row empty to drop it)</caption>
<thead><tr><th scope="col">Code</th><th scope="col">Name</th><th scope="col">Threshold</th><th scope="col">Multiplier (×)</th><th scope="col">Perks (comma-separated)</th></tr></thead>
<tbody>${Array.from({ length: TIER_ROWS }, (_, i) => html`<tr>${cell("code", "Code", i)}${cell("name", "Name", i)}${cell("threshold", "Threshold", i, html` inputmode="numeric"`)}${cell("multiplier", "Multiplier", i, html` inputmode="decimal"`)}${cell("perks", "Perks", i)}</tr>`)}</tbody></table></div>
${Object.entries(e).length ? html`<ul class="error">${Object.values(e).map((x) => html`<li>${x}</li>`)}</ul>` : ""}
<button type="submit" class="btn btn-primary">Save the ladder</button>
</form>`,
      }),
    );
  }

  r.get("/console/tiers", async (req, res) => {
    await renderTiers(req, res);
  });

  r.post("/console/tiers", async (req, res) => {
    const b = req.body as unknown;
    const names = ["basis", "window_days", "grace_days", ...Array.from({ length: TIER_ROWS }, (_, i) => ["code", "name", "threshold", "multiplier", "perks"].map((n) => `${n}_${i}`)).flat()];
    const v = Object.fromEntries(names.map((n) => [n, str(b, n, 200)]));
    const { input, errors } = readLadder(v, TIER_ROWS);
    if (!input) return renderTiers(req, res, { status: 422, error: "Some fields need attention; the ladder is unchanged.", values: v, errors });
    let before: unknown = null;
    try {
      before = await tiers.getLadder();
    } catch {
      before = null;
    }
    try {
      const after = await tiers.setLadder(input);
      await audit.record(operatorActor(req), { action: "tier_ladder.replaced", objectType: "tier_ladder", objectId: "1", before, after });
    } catch (err) {
      const e = refusal(err);
      if (!e) throw err;
      return renderTiers(req, res, { status: e.status, error: e.detail ?? e.title, values: v, errors: {} });
    }
    flash(req, "ok", "Tier ladder saved. Members move at their next purchase or at the daily review.");
    res.redirect(303, "/portal/console/tiers");
  });

  return r;
}

const csv = (s: string | undefined) =>
  (s ?? "")
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);

/** The rule form → the rules service's input (params only those the type reads), or errors by field. */
export function readRule(v: Record<string, string>, partnerIds: string[]): { input: RuleInput | null; errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  if (!v.name) errors.name = "Give the rule a name.";
  const type = v.type as RuleType;
  if (!RULE_TYPES.includes(type)) errors.type = "Choose one of the listed types.";
  const priority = v.priority ? parseWhole(v.priority, 0, 1_000_000) : 100;
  if (priority === null) errors.priority = "A whole number from 0.";
  const instant = (name: string, required: boolean) => {
    const s = v[name] ?? "";
    if (!s) {
      if (required) errors[name] = "A date and time (UTC).";
      return null;
    }
    const d = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(s) ? new Date(`${s}${s.length === 16 ? ":00" : ""}Z`) : null;
    if (!d || Number.isNaN(d.getTime())) {
      errors[name] = "A date and time (UTC).";
      return null;
    }
    return d.toISOString();
  };
  const from = instant("valid_from", true);
  const until = instant("valid_until", false);
  if (from && until && until <= from) errors.valid_until = "After the start.";
  const targetKind = v.target_kind || "all";
  const targetValues = csv(v.target_values);
  if (targetKind !== "all" && targetValues.length === 0) errors.target_values = "Name at least one tier or segment.";
  if (!["all", "tier", "segment"].includes(targetKind)) errors.target_kind = "Choose one of the listed targets.";

  const params: Record<string, unknown> = {};
  const wanted = RULE_TYPES.includes(type) ? TYPE_PARAMS[type] : [];
  const whole = (formName: string, param: string, min = 0) => {
    if (!wanted.includes(param) || !v[formName]) return;
    const n = parseWhole(v[formName]!, min, 1_000_000_000_000);
    if (n === null) errors[formName] = `A whole number from ${min}.`;
    else params[param] = n;
  };
  whole("points", "points");
  whole("per_minor", "per_minor", 1);
  whole("min_amount_minor", "min_amount_minor");
  whole("every", "every", 1);
  whole("point_value_minor", "point_value_minor", 1);
  whole("referrer_points", "referrer_points");
  whole("referred_points", "referred_points");
  whole("clear_after_days", "clear_after_days", 1);
  if (wanted.includes("multiplier_bp") && v.multiplier) {
    const x = parseDecimal(v.multiplier, 4);
    if (x === null || x <= 10_000n || x > 1_000_000n) errors.multiplier = "Above 1 (×2 is 2), at most 4 decimals.";
    else params.multiplier_bp = Number(x);
  }
  if (wanted.includes("percent_bp") && v.percent) {
    const x = parseDecimal(v.percent, 2);
    if (x === null || x < 0n || x > 10_000n) errors.percent = "A percentage between 0 and 100, at most 2 decimals.";
    else params.percent_bp = Number(x);
  }
  if (wanted.includes("categories") && csv(v.categories).length) params.categories = csv(v.categories);
  if (wanted.includes("skus") && csv(v.skus).length) params.skus = csv(v.skus);
  if (wanted.includes("period") && v.period) params.period = v.period;
  if (wanted.includes("on") && v.on) params.on = v.on === "day" ? "day" : "month";
  if (wanted.includes("event") && v.event) params.event = v.event;
  const missing: Record<string, [string, string]> = {
    points: ["points", "Points"],
    per_minor: ["per_minor", "The amount that earns the points"],
    multiplier_bp: ["multiplier", "The multiplier"],
    every: ["every", "Which purchase (every n-th)"],
    percent_bp: ["percent", "The percentage"],
    point_value_minor: ["point_value_minor", "The value of a point"],
    referrer_points: ["referrer_points", "The referrer's points"],
    referred_points: ["referred_points", "The referred member's points"],
    clear_after_days: ["clear_after_days", "Days before it clears"],
    event: ["event", "The event name"],
  };
  // The service's own list, so the form asks for exactly what createRule will require.
  for (const p of REQUIRED_PARAMS[type] ?? []) {
    const [formName, label] = missing[p]!;
    if (params[p] === undefined && !errors[formName]) errors[formName] = `${label} is needed for this type.`;
  }

  const caps: Record<string, unknown> = {};
  if (v.cap_period) {
    if (!PERIODS.some(([p]) => p === v.cap_period)) errors.cap_period = "Choose one of the listed periods.";
    else caps.period = v.cap_period as CapPeriod;
  }
  for (const [formName, key] of [["cap_member_points", "member_points"], ["cap_member_times", "member_times"], ["cap_total_points", "total_points"]] as const) {
    if (!v[formName]) continue;
    const n = parseWhole(v[formName]!, 1, 1_000_000_000_000);
    if (n === null) errors[formName] = "A whole number from 1.";
    else caps[key] = n;
  }
  if (Object.keys(errors).length) return { input: null, errors };
  return {
    errors,
    input: {
      name: v.name!,
      type,
      priority: priority!,
      stack_group: v.stack_group || null,
      valid_from: from!,
      valid_until: until,
      target: targetKind === "tier" ? { kind: "tier", tiers: targetValues } : targetKind === "segment" ? { kind: "segment", segments: targetValues } : { kind: "all" },
      partner_ids: partnerIds.length ? partnerIds : null,
      params,
      caps,
    },
  };
}

/** The ladder form → the tiers service's input; rows left empty are dropped; ranks follow the rows. */
export function readLadder(v: Record<string, string>, rows: number): { input: LadderInput | null; errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  const basis = v.basis === "points_earned" ? "points_earned" : v.basis === "spend_minor" ? "spend_minor" : null;
  if (!basis) errors.basis = "Choose spend or points earned.";
  const windowDays = parseWhole(v.window_days ?? "", 1, 3_650);
  if (windowDays === null) errors.window_days = "Window: 1 to 3,650 days.";
  const graceDays = parseWhole(v.grace_days ?? "", 0, 3_650);
  if (graceDays === null) errors.grace_days = "Grace: 0 to 3,650 days.";
  const tiers: LadderInput["tiers"] = [];
  for (let i = 0; i < rows; i++) {
    const code = v[`code_${i}`] ?? "";
    const name = v[`name_${i}`] ?? "";
    const threshold = v[`threshold_${i}`] ?? "";
    const multiplier = v[`multiplier_${i}`] ?? "";
    if (!code && !name && !threshold && !multiplier) continue;
    const row = `Tier ${i + 1}`;
    if (!/^[a-z0-9_-]{1,32}$/.test(code)) errors[`code_${i}`] = `${row}: a code of lowercase letters, digits, - or _.`;
    if (!name) errors[`name_${i}`] = `${row}: a name.`;
    const t = parseWhole(threshold, 0, 1_000_000_000_000);
    if (t === null) errors[`threshold_${i}`] = `${row}: a whole threshold from 0.`;
    const m = parseDecimal(multiplier || "1", 4);
    if (m === null || m < 10_000n || m > 100_000n) errors[`multiplier_${i}`] = `${row}: a multiplier from 1 to 10, at most 4 decimals.`;
    if (t !== null && m !== null) tiers.push({ code, name, rank: tiers.length + 1, threshold: t, multiplier_bp: Number(m), perks: csv(v[`perks_${i}`]) });
  }
  if (tiers.length === 0 && !Object.keys(errors).length) errors.code_0 = "A ladder needs at least one tier.";
  if (Object.keys(errors).length) return { input: null, errors };
  return { errors, input: { basis: basis!, window_days: windowDays!, grace_days: graceDays!, tiers } };
}
