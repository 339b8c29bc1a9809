import { Router, type Request, type Response } from "express";
import type { PortalContext } from "../context.ts";
import { html, type Html } from "../html.ts";
import { csrfField, flash, page } from "../layout.ts";
import { field, str } from "../web/forms.ts";
import { PageNotFound } from "../web/errors.ts";
import { PARTNER_TRANSITIONS, type ContractTerms } from "../../../gateway/src/partners/partners.service.ts";
import type { PartnerStatus } from "../../../gateway/src/partners/partners.dal.ts";
import { decimal, minorExponent } from "../../../settlement/src/money.ts";
import { actorNames, badge, bps, count, errorBanner, micros, money, operatorActor, parseDecimal, parseWhole, refusal, table, when } from "./common.ts";

type Partner = Awaited<ReturnType<PortalContext["services"]["partners"]["getPartner"]>>;
type Contract = Awaited<ReturnType<PortalContext["services"]["partners"]["listContractVersions"]>>[number];

/** Statuses that hold a place in a sector (non-compete): admitted and not terminated. */
const HOLDS_SECTOR: PartnerStatus[] = ["approved", "active", "suspended"];

/** What each lifecycle move is called on a button, and whether it must say why. */
const MOVES: Record<string, { label: string; reasonRequired: boolean; danger?: boolean; confirm?: string }> = {
  "applied>approved": { label: "Approve application", reasonRequired: false },
  "applied>terminated": { label: "Reject application", reasonRequired: true, danger: true, confirm: "Reject this application? It cannot be undone." },
  "approved>active": { label: "Activate in the live network", reasonRequired: false },
  "approved>terminated": { label: "Terminate", reasonRequired: true, danger: true, confirm: "Terminate this partner? It cannot be undone." },
  "active>suspended": { label: "Suspend", reasonRequired: true, danger: true, confirm: "Suspend this partner? Its live calls will be refused." },
  "active>terminated": { label: "Terminate", reasonRequired: true, danger: true, confirm: "Terminate this partner? It cannot be undone." },
  "suspended>active": { label: "Reactivate", reasonRequired: false },
  "suspended>terminated": { label: "Terminate", reasonRequired: true, danger: true, confirm: "Terminate this partner? It cannot be undone." },
};

const STATUS_FILTERS: Array<[string, string]> = [
  ["", "All"],
  ["applied", "Applications"],
  ["approved", "Approved"],
  ["active", "Active"],
  ["suspended", "Suspended"],
  ["terminated", "Terminated"],
];

function partnerLink(p: { id: string; name: string }): Html {
  return html`<a href="/portal/console/partners/${p.id}">${p.name}</a>`;
}

/**
 * Partners: applications and approvals with the non-compete view by sector, a partner's detail
 * (its lifecycle, contracts and audit trail), contract versions. Every change goes through the
 * partners service, which keeps the lifecycle, the non-compete rule and the audit log.
 */
export function partnersPages(ctx: PortalContext): Router {
  const r = Router();
  const svc = ctx.services.partners;

  r.get("/console/partners", async (req, res) => {
    const status = typeof req.query.status === "string" && STATUS_FILTERS.some(([v]) => v === req.query.status) ? req.query.status : "";
    const [list, all, sectors] = await Promise.all([svc.listPartners(status ? { status } : {}), svc.listPartners({}), svc.listSectors()]);
    const sectorName = new Map(sectors.map((s) => [s.code, s.name]));
    const holders = new Map<string, typeof all>();
    for (const p of all) if (HOLDS_SECTOR.includes(p.status as PartnerStatus)) holders.set(p.sector, [...(holders.get(p.sector) ?? []), p]);
    const rows = list.map((p) => {
      const rivals = (holders.get(p.sector) ?? []).filter((h) => h.id !== p.id);
      const conflict = p.status === "applied" && rivals.length > 0;
      return html`<tr><td>${partnerLink(p)}</td><td>${p.kind}</td><td><a href="/portal/console/sectors#sector-${p.sector}">${sectorName.get(p.sector) ?? p.sector}</a></td><td>${badge(p.status)}</td>
<td>${conflict ? html`<span class="badge badge-failed">sector taken</span> by ${rivals.map((x, i) => html`${i ? ", " : ""}${partnerLink(x)}`)}` : p.non_compete_override ? html`<span class="badge badge-pending">override</span>` : html`<span class="muted">—</span>`}</td>
<td>${when(p.created_at)}</td></tr>`;
    });
    res.send(
      page(req, {
        title: "Partners",
        body: html`<nav aria-label="Filter by status" class="filters"><ul class="actions">${STATUS_FILTERS.map(
          ([v, l]) => html`<li><a class="btn btn-small" href="/portal/console/partners${v ? `?status=${v}` : ""}"${v === status ? html` aria-current="true"` : ""}>${l}</a></li>`,
        )}</ul></nav>
<p><a href="/portal/console/sectors">Non-compete view by sector</a></p>
${table(`${STATUS_FILTERS.find(([v]) => v === status)![1]} (${list.length})`, ["Partner", "Kind", "Sector", "Status", "Non-compete", "Applied"], rows, "No partners with this status.")}`,
      }),
    );
  });

  r.get("/console/sectors", async (req, res) => {
    const [sectors, all] = await Promise.all([svc.listSectors(), svc.listPartners({})]);
    const rows = sectors.map((s) => {
      const inSector = all.filter((p) => p.sector === s.code);
      const admitted = inSector.filter((p) => HOLDS_SECTOR.includes(p.status as PartnerStatus));
      const waiting = inSector.filter((p) => p.status === "applied");
      const overrides = admitted.filter((p) => p.non_compete_override);
      const state = admitted.length === 0 ? html`<span class="badge badge-open">free</span>` : admitted.length === 1 ? html`<span class="badge badge-active">taken</span>` : html`<span class="badge badge-pending">shared by override</span>`;
      return html`<tr id="sector-${s.code}"><th scope="row">${s.name} <code>${s.code}</code>${s.active ? "" : html` <span class="muted">(retired)</span>`}</th>
<td>${state}</td>
<td>${admitted.length ? html`<ul class="plain">${admitted.map((p) => html`<li>${partnerLink(p)} ${badge(p.status)}</li>`)}</ul>` : html`<span class="muted">nobody</span>`}</td>
<td>${waiting.length ? html`<ul class="plain">${waiting.map((p) => html`<li>${partnerLink(p)}</li>`)}</ul>` : html`<span class="muted">—</span>`}</td>
<td>${overrides.length ? html`<ul class="plain">${overrides.map((p) => html`<li>${p.name}: “${p.non_compete_override!.reason}” <span class="muted">(${p.non_compete_override!.by}, ${when(p.non_compete_override!.at)})</span></li>`)}</ul>` : html`<span class="muted">—</span>`}</td></tr>`;
    });
    res.send(
      page(req, {
        title: "Sectors (non-compete)",
        body: html`<p class="lead">The coalition admits one partner per sector. A second one is admitted only by an override whose reason is recorded on the partner and in the audit log.</p>
<div class="table-wrap"><table>
<caption>Who holds each sector</caption>
<thead><tr><th scope="col">Sector</th><th scope="col">State</th><th scope="col">Admitted (approved, active, suspended)</th><th scope="col">Applications waiting</th><th scope="col">Overrides and their reasons</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="5" class="muted">No sectors yet.</td></tr>`}</tbody>
</table></div>`,
      }),
    );
  });

  async function loadPartner(id: string): Promise<Partner> {
    try {
      return await svc.getPartner(id);
    } catch (err) {
      if (refusal(err)?.status === 404) throw new PageNotFound();
      throw err;
    }
  }

  interface DetailState {
    status?: number;
    error?: string;
    /** The move that needs a non-compete override, with the partners in the way. */
    override?: { to: string; rivals: Array<{ id: string; name: string; status: string }>; reason?: string; error?: string };
    reasonError?: { to: string; text: string };
  }

  async function renderDetail(req: Request, res: Response, id: string, state: DetailState = {}) {
    const p = await loadPartner(id);
    const [contracts, audit, sectorPeers] = await Promise.all([svc.listContractVersions(id), svc.listAudit({ objectType: "partner", objectId: id, limit: 25 }), svc.listPartners({ sector: p.sector })]);
    const sectorName = (await svc.listSectors()).find((s) => s.code === p.sector)?.name ?? p.sector;
    const rivals = sectorPeers.filter((x) => x.id !== id && HOLDS_SECTOR.includes(x.status as PartnerStatus));
    const now = ctx.clock.now().getTime();
    const inForce = [...contracts].reverse().find((c) => new Date(c.effective_from as string).getTime() <= now);
    const moves = PARTNER_TRANSITIONS[p.status as PartnerStatus];
    const admitting = (to: string) => (p.status === "applied" && to === "approved") || (p.status === "approved" && to === "active" && !p.non_compete_override);

    const actionForm = (to: string) => {
      const m = MOVES[`${p.status}>${to}`]!;
      const needsOverride = admitting(to) && rivals.length > 0;
      const ov = state.override?.to === to ? state.override : undefined;
      const reasonErr = state.reasonError?.to === to ? state.reasonError.text : undefined;
      return html`<form method="post" action="/portal/console/partners/${p.id}/status" class="card action-form"${m.confirm ? html` data-confirm="${m.confirm}"` : ""}>
${csrfField(req)}<input type="hidden" name="status" value="${to}">
<h3>${m.label}</h3>
${needsOverride || ov
  ? html`<p class="warn" role="note">Sector <code>${p.sector}</code> is already held by ${(ov?.rivals ?? rivals).map((x, i) => html`${i ? ", " : ""}${x.name} (${x.status})`)}. Admitting this partner overrides the non-compete rule.</p>
${reasonField(to, "override_reason", "Reason for the non-compete override", { required: true, value: ov?.reason, error: ov?.error, hint: "Recorded on the partner and in the audit log." })}`
  : reasonField(to, "reason", m.reasonRequired ? "Reason" : "Note (optional)", { required: m.reasonRequired, error: reasonErr, hint: "Recorded in the audit log." })}
<button type="submit" class="btn ${m.danger ? "btn-danger" : "btn-primary"}">${m.label}</button>
</form>`;
    };

    const contractRows = contracts.map(
      (c) => html`<tr><td>v${String(c.version)}${c.id === inForce?.id ? html` <span class="badge badge-active">in force</span>` : new Date(c.effective_from as string).getTime() > now ? html` <span class="badge badge-pending">future</span>` : ""}</td>
<td>${when(c.effective_from as string)}</td><td>${c.currency as string}</td><td class="num">${micros(c.issuance_price_micros as number)}</td><td class="num">${micros(c.redemption_price_micros as number)}</td>
<td class="num">${count(c.earn_points as number)} per ${money(c.earn_per_minor as number, c.currency as string)}</td><td class="num">${money(c.transaction_fee_minor as number, c.currency as string)}</td><td class="num">${money(c.monthly_fee_minor as number, c.currency as string)}</td><td class="num">${bps(c.breakage_share_bps as number | null)}</td></tr>`,
    );
    const actors = await actorNames(ctx.users, audit.items.map((a) => a.actor.id));
    const auditRows = audit.items.map(
      (a) => html`<tr><td>${when(a.at)}</td><td><code>${a.action}</code></td><td>${a.actor.type}: ${actors.get(a.actor.id) ?? a.actor.id}</td><td>${a.reason ?? html`<span class="muted">—</span>`}</td></tr>`,
    );
    res.status(state.status ?? 200).send(
      page(req, {
        title: p.name,
        body: html`${errorBanner(state.error)}
<section class="card" aria-labelledby="facts-h"><h2 id="facts-h">Partner ${badge(p.status)}</h2>
<dl class="facts"><dt>Id</dt><dd><code>${p.id}</code></dd><dt>Kind</dt><dd>${p.kind}</dd><dt>Sector</dt><dd><a href="/portal/console/sectors#sector-${p.sector}">${sectorName}</a></dd>
<dt>Others in the sector</dt><dd>${rivals.length ? rivals.map((x, i) => html`${i ? ", " : ""}${partnerLink(x)} (${x.status})`) : "none"}</dd>
${p.non_compete_override ? html`<dt>Non-compete override</dt><dd>“${p.non_compete_override.reason}” — ${p.non_compete_override.by}, ${when(p.non_compete_override.at)}</dd>` : ""}
<dt>Applied</dt><dd>${when(p.created_at)}</dd><dt>Locations</dt><dd>${p.locations.length ? p.locations.map((l, i) => html`${i ? ", " : ""}${l.name} <code>${l.mid}</code>`) : "none"}</dd></dl>
</section>
<section aria-labelledby="life-h"><h2 id="life-h">Lifecycle</h2>
${moves.length ? html`<div class="grid">${moves.map(actionForm)}</div>` : html`<p>Terminated: no further moves.</p>`}
</section>
<section aria-labelledby="ctr-h"><h2 id="ctr-h">Contract versions</h2>
${table("Versions (a version in force is never edited; new terms are a new version)", ["Version", "From", "Currency", ["Issuance price", "num"], ["Redemption price", "num"], ["Base earn", "num"], ["Fee per transaction", "num"], ["Monthly fee", "num"], ["Breakage share", "num"]], contractRows, "No contract yet: the partner cannot earn or burn until one is in force.")}
${p.status === "terminated" ? "" : html`<p><a class="btn" href="/portal/console/partners/${p.id}/contracts/new">Add a contract version</a></p>`}
</section>
<section aria-labelledby="audit-h"><h2 id="audit-h">Audit trail</h2>
${table("The latest changes to this partner", ["When", "Action", "By", "Reason"], auditRows)}
</section>`,
      }),
    );
  }

  r.get("/console/partners/:id", async (req, res) => {
    await renderDetail(req, res, req.params.id);
  });

  r.post("/console/partners/:id/status", async (req, res) => {
    const id = req.params.id;
    const p = await loadPartner(id);
    const to = str(req.body, "status", 20);
    const reason = str(req.body, "reason", 1000);
    const overrideReason = str(req.body, "override_reason", 1000);
    const move = MOVES[`${p.status}>${to}`];
    if (!move) {
      return renderDetail(req, res, id, { status: 409, error: `A partner cannot go from ${p.status} to ${to || "nothing"}. The page shows the moves that exist now.` });
    }
    if (move.reasonRequired && !reason) {
      return renderDetail(req, res, id, { status: 422, error: "Say why: the reason is kept in the audit log.", reasonError: { to, text: "Give a reason." } });
    }
    try {
      await svc.changeStatus(operatorActor(req), id, {
        status: to as PartnerStatus,
        ...(reason ? { reason } : {}),
        ...(overrideReason ? { override: { reason: overrideReason } } : {}),
      });
    } catch (err) {
      const e = refusal(err);
      if (!e) throw err;
      if (e.code === "non-compete-conflict") {
        const rivals = (e.extensions.conflicting_partners as Array<{ id: string; name: string; status: string }>) ?? [];
        return renderDetail(req, res, id, {
          status: 409,
          error: `${e.detail ?? e.title}`,
          override: { to, rivals, error: "To admit this partner anyway, give the reason for the override." },
        });
      }
      return renderDetail(req, res, id, { status: e.status, error: e.detail ?? e.title });
    }
    flash(req, "ok", `${p.name}: ${move.label.toLowerCase()} — done.${overrideReason ? " The non-compete override and its reason are recorded." : ""}`);
    res.redirect(303, `/portal/console/partners/${id}`);
  });

  // ---- contract versions --------------------------------------------------------------------

  type ContractForm = Record<string, string>;

  function contractDefaults(c: Contract | undefined, nowIso: string): ContractForm {
    const cur = (c?.currency as string | undefined) ?? "EUR";
    const exp = minorExponent(cur);
    const asMajor = (v: unknown) => (v === null || v === undefined ? "" : decimal(BigInt(v as number), exp));
    return {
      effective_from: nowIso,
      currency: cur,
      issuance_price: c ? micros(c.issuance_price_micros as number) : "0.010000",
      redemption_price: c ? micros(c.redemption_price_micros as number) : "0.008000",
      earn_points: String(c?.earn_points ?? 1),
      earn_per: c ? asMajor(c.earn_per_minor) : "10.00",
      points_validity_days: c?.points_validity_days === null || c?.points_validity_days === undefined ? "730" : String(c.points_validity_days as number),
      refund_policy: (c?.refund_policy as string | undefined) ?? "negative_balance",
      negative_floor: c?.negative_floor === null || c?.negative_floor === undefined ? "0" : String(c.negative_floor as number),
      transaction_fee: c ? asMajor(c.transaction_fee_minor ?? 0) : "0.00",
      monthly_fee: c ? asMajor(c.monthly_fee_minor ?? 0) : "0.00",
      breakage_share: c ? bps(c.breakage_share_bps as number).replace(" %", "") : "0.00",
      cashback_funding: c ? bps(c.cashback_funding_bps as number).replace(" %", "").replace("—", "0.00") : "0.00",
      roundup_match: c ? bps(c.roundup_match_bps as number).replace(" %", "").replace("—", "0.00") : "0.00",
      settlement_period: (c?.settlement_period as string | undefined) ?? "monthly",
    };
  }

  function contractForm(req: Request, p: Partner, values: ContractForm, errors: Record<string, string> = {}, banner?: string): string {
    return page(req, {
      title: `New contract version · ${p.name}`,
      body: html`${errorBanner(banner)}
<p><a href="/portal/console/partners/${p.id}">← Back to ${p.name}</a></p>
<p class="lead">A new version starts now or later and never changes the past: every transaction is priced by the version in force when it happened. Prices are per point in the contract's currency; amounts are typed as decimals and kept exactly.</p>
<form method="post" action="/portal/console/partners/${p.id}/contracts" class="form" novalidate>
${csrfField(req)}
<fieldset><legend>When and in what currency</legend>
${field("effective_from", "In force from (UTC)", { type: "datetime-local", value: values.effective_from, error: errors.effective_from, required: true, hint: "Now or later." })}
${field("currency", "Settlement currency (ISO 4217)", { value: values.currency, error: errors.currency, required: true, attrs: html` maxlength="3" autocapitalize="characters"` })}
</fieldset>
<fieldset><legend>Points prices</legend>
${field("issuance_price", "Issuance price per point", { value: values.issuance_price, error: errors.issuance_price, required: true, hint: "What the partner pays per point issued, up to 6 decimals (0.0105).", attrs: html` inputmode="decimal"` })}
${field("redemption_price", "Redemption price per point", { value: values.redemption_price, error: errors.redemption_price, required: true, hint: "What the operator pays per point redeemed at the partner.", attrs: html` inputmode="decimal"` })}
</fieldset>
<fieldset><legend>Base earn rate</legend>
${field("earn_points", "Points", { value: values.earn_points, error: errors.earn_points, required: true, attrs: html` inputmode="numeric"` })}
${field("earn_per", "…per this amount spent", { value: values.earn_per, error: errors.earn_per, required: true, hint: "Rounded down per purchase.", attrs: html` inputmode="decimal"` })}
${field("points_validity_days", "Points valid for (days)", { value: values.points_validity_days, error: errors.points_validity_days, attrs: html` inputmode="numeric"` })}
${field("refund_policy", "Refund of spent points", { value: values.refund_policy, error: errors.refund_policy, options: [["negative_balance", "Negative balance (member owes points)"], ["recovery_entry", "Recovery entry (partner bears it)"]] })}
${field("negative_floor", "Negative floor (points, 0 or below)", { value: values.negative_floor, error: errors.negative_floor, attrs: html` inputmode="numeric"` })}
</fieldset>
<fieldset><legend>Fees and shares</legend>
${field("transaction_fee", "Fee per transaction", { value: values.transaction_fee, error: errors.transaction_fee, attrs: html` inputmode="decimal"` })}
${field("monthly_fee", "Monthly platform fee", { value: values.monthly_fee, error: errors.monthly_fee, attrs: html` inputmode="decimal"` })}
${field("breakage_share", "Partner's share of breakage (%)", { value: values.breakage_share, error: errors.breakage_share, attrs: html` inputmode="decimal"` })}
${field("cashback_funding", "Cashback the partner funds (%)", { value: values.cashback_funding, error: errors.cashback_funding, attrs: html` inputmode="decimal"` })}
${field("roundup_match", "Round-up match (%)", { value: values.roundup_match, error: errors.roundup_match, attrs: html` inputmode="decimal"` })}
${field("settlement_period", "Settlement period", { value: values.settlement_period, error: errors.settlement_period, options: [["monthly", "Monthly"], ["weekly", "Weekly"], ["daily", "Daily"]] })}
</fieldset>
<button type="submit" class="btn btn-primary">Add the version</button>
</form>`,
    });
  }

  function nowLocal(): string {
    return new Date(ctx.clock.now().getTime() + 60_000).toISOString().slice(0, 16);
  }

  r.get("/console/partners/:id/contracts/new", async (req, res) => {
    const p = await loadPartner(req.params.id);
    if (p.status === "terminated") throw new PageNotFound();
    const contracts = await svc.listContractVersions(p.id);
    res.send(contractForm(req, p, contractDefaults(contracts[contracts.length - 1], nowLocal())));
  });

  r.post("/console/partners/:id/contracts", async (req, res) => {
    const p = await loadPartner(req.params.id);
    const b = req.body as unknown;
    const names = ["effective_from", "currency", "issuance_price", "redemption_price", "earn_points", "earn_per", "points_validity_days", "refund_policy", "negative_floor", "transaction_fee", "monthly_fee", "breakage_share", "cashback_funding", "roundup_match", "settlement_period"];
    const v: ContractForm = Object.fromEntries(names.map((n) => [n, str(b, n, 64)]));
    const { terms, errors } = readContract(v);
    if (!terms) return res.status(422).send(contractForm(req, p, v, errors, "Some fields need attention; nothing was saved."));
    try {
      const created = await svc.createContractVersion(operatorActor(req), p.id, terms);
      flash(req, "ok", `Contract version ${String(created.version)} added; in force from ${when(created.effective_from as string)}.`);
      res.redirect(303, `/portal/console/partners/${p.id}`);
    } catch (err) {
      const e = refusal(err);
      if (!e) throw err;
      const fieldName = e.code.startsWith("contract-start") ? "effective_from" : undefined;
      res.status(e.status).send(contractForm(req, p, v, fieldName ? { [fieldName]: e.detail ?? e.title } : {}, e.detail ?? e.title));
    }
  });

  return r;
}

/**
 * A textarea with an id unique on the page (several action forms share one page), its label, hint
 * and error tied to it as field() does.
 */
function reasonField(form: string, name: string, label: string, o: { required?: boolean; error?: string | undefined; hint?: string; value?: string | undefined }): Html {
  const id = `f-${form}-${name}`;
  const described = [o.hint ? `${id}-hint` : "", o.error ? `${id}-error` : ""].filter(Boolean).join(" ");
  return html`<div class="field${o.error ? " field-error" : ""}">
<label for="${id}">${label}${o.required ? html` <span class="req" aria-hidden="true">*</span>` : ""}</label>
${o.hint ? html`<p class="hint" id="${id}-hint">${o.hint}</p>` : ""}
<textarea id="${id}" name="${name}" rows="2"${o.required ? html` required` : ""}${described ? html` aria-describedby="${described}"` : ""}${o.error ? html` aria-invalid="true"` : ""}>${o.value ?? ""}</textarea>
${o.error ? html`<p class="error" id="${id}-error">${o.error}</p>` : ""}
</div>`;
}

/** The contract form → the service's terms, exactly (decimals parsed as scaled integers), or the errors by field. */
export function readContract(v: Record<string, string>): { terms: (ContractTerms & { effective_from: string }) | null; errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  const currency = v.currency!.toUpperCase();
  if (!/^[A-Z]{3}$/.test(currency)) errors.currency = "Three letters, ISO 4217 (EUR).";
  const exp = minorExponent(/^[A-Z]{3}$/.test(currency) ? currency : "EUR");
  const from = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(v.effective_from!) ? new Date(`${v.effective_from}${v.effective_from!.length === 16 ? ":00" : ""}Z`) : null;
  if (!from || Number.isNaN(from.getTime())) errors.effective_from = "A date and time (UTC).";
  const price = (name: string) => {
    const x = parseDecimal(v[name]!, 6);
    if (x === null || x < 0n) {
      errors[name] = "A non-negative price with at most 6 decimals.";
      return 0;
    }
    return Number(x);
  };
  const amount = (name: string, min: bigint) => {
    if (v[name] === "") return undefined;
    const x = parseDecimal(v[name]!, exp);
    if (x === null || x < min) {
      errors[name] = `An amount of at least ${money(min, currency || "EUR")} with at most ${exp} decimals.`;
      return 0;
    }
    return Number(x);
  };
  const share = (name: string) => {
    if (v[name] === "") return undefined;
    const x = parseDecimal(v[name]!, 2);
    if (x === null || x < 0n || x > 10_000n) {
      errors[name] = "A percentage between 0 and 100, at most 2 decimals.";
      return 0;
    }
    return Number(x);
  };
  const issuance = price("issuance_price");
  const redemption = price("redemption_price");
  const earnPoints = parseWhole(v.earn_points!, 0, 1_000_000);
  if (earnPoints === null) errors.earn_points = "A whole number of points, 0 or more.";
  const earnPer = amount("earn_per", 1n);
  if (earnPer === undefined) errors.earn_per = "Required: the amount that earns the points.";
  const validity = v.points_validity_days === "" ? undefined : parseWhole(v.points_validity_days!, 1, 36_500);
  if (validity === null) errors.points_validity_days = "Between 1 and 36,500 days.";
  const floor = v.negative_floor === "" ? undefined : parseWhole(v.negative_floor!, -1_000_000_000, 0);
  if (floor === null) errors.negative_floor = "A whole number of points, 0 or below.";
  if (v.refund_policy && !["negative_balance", "recovery_entry"].includes(v.refund_policy)) errors.refund_policy = "Choose one of the listed policies.";
  if (v.settlement_period && !["monthly", "weekly", "daily"].includes(v.settlement_period)) errors.settlement_period = "Choose one of the listed periods.";
  const txFee = amount("transaction_fee", 0n);
  const monthlyFee = amount("monthly_fee", 0n);
  const breakage = share("breakage_share");
  const cashback = share("cashback_funding");
  const roundup = share("roundup_match");
  if (Object.keys(errors).length) return { terms: null, errors };
  return {
    errors,
    terms: {
      effective_from: from!.toISOString(),
      currency,
      issuance_price_micros: issuance,
      redemption_price_micros: redemption,
      earn_points: earnPoints!,
      earn_per_minor: earnPer!,
      ...(validity !== undefined ? { points_validity_days: validity! } : {}),
      ...(v.refund_policy ? { refund_policy: v.refund_policy as "negative_balance" | "recovery_entry" } : {}),
      ...(floor !== undefined ? { negative_floor: floor! } : {}),
      ...(txFee !== undefined ? { transaction_fee_minor: txFee } : {}),
      ...(monthlyFee !== undefined ? { monthly_fee_minor: monthlyFee } : {}),
      ...(breakage !== undefined ? { breakage_share_bps: breakage } : {}),
      ...(cashback !== undefined ? { cashback_funding_bps: cashback } : {}),
      ...(roundup !== undefined ? { roundup_match_bps: roundup } : {}),
      ...(v.settlement_period ? { settlement_period: v.settlement_period as "monthly" | "weekly" | "daily" } : {}),
    },
  };
}
