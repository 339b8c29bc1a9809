import { Router } from "express";
import type { PortalContext } from "../context.ts";
import { html } from "../html.ts";
import { page } from "../layout.ts";
import { field } from "../web/forms.ts";
import { barChart, lineChart } from "../charts/console-charts.ts";
import { count, money, table } from "./common.ts";

const WINDOWS: Array<[string, string]> = [
  ["30", "Last 30 days"],
  ["90", "Last 90 days"],
  ["180", "Last 180 days"],
];

const SEGMENT_WORDS: Record<string, string> = {
  champions: "Champions (recent and frequent)",
  loyal: "Loyal",
  new: "New (recent, one purchase)",
  at_risk: "At risk (frequent, not recent)",
  lost: "Lost (neither)",
  needs_attention: "Needs attention",
};

/** Basis points as a percentage with two decimals, exactly: 935 → "9.35 %". */
export function percent(bps: number | null): string {
  if (bps === null) return "—";
  return `${Math.trunc(bps / 100)}.${String(bps % 100).padStart(2, "0")} %`;
}

/**
 * Network analytics with server-rendered SVG charts. The figures come from the analytics service
 * (set-based SQL over the ledger and the earn tables, read-only); this page only draws them.
 */
export function analyticsPages(ctx: PortalContext): Router {
  const r = Router();
  const { analytics } = ctx.services.console;

  r.get("/console/analytics", async (req, res) => {
    const days = WINDOWS.some(([d]) => d === req.query.days) ? Number(req.query.days) : 30;
    const currency = typeof req.query.currency === "string" && /^[A-Z]{3}$/.test(req.query.currency) ? req.query.currency : "EUR";
    const w = analytics.lastDays(days);
    // Monthly measures look at the last six calendar months, whatever the daily window.
    const today = new Date(w.to.getTime() - 1);
    const sixMonths = { from: new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth() - 5, 1)), to: w.to };
    const [liability, flows, rate, breakage, active, retention, rfm, top] = await Promise.all([
      analytics.liability(w),
      analytics.issuedRedeemed(w),
      analytics.redemptionRate(w),
      analytics.breakage(w),
      analytics.activeMembers(sixMonths),
      analytics.retention(sixMonths),
      analytics.rfm(w, currency),
      analytics.topFifthShare(w, currency),
    ]);
    const lastRetention = retention[retention.length - 1];
    const labelOf = (d: string) => d.slice(5);
    res.send(
      page(req, {
        title: "Network analytics",
        body: html`<form method="get" action="/portal/console/analytics" class="form inline-form">
${field("days", "Window", { value: String(days), options: WINDOWS })}
${field("currency", "Spend currency", { value: currency, attrs: html` maxlength="3"` })}
<button type="submit" class="btn">Show</button>
</form>
<p class="hint">${w.from.toISOString().slice(0, 10)} to ${new Date(w.to.getTime() - 1).toISOString().slice(0, 10)} (UTC). Ratios are floored to the basis point.</p>
<dl class="figures" aria-label="Headline figures">
<div><dt>Points liability outstanding</dt><dd data-figure="liability">${count(liability[liability.length - 1]?.points ?? 0n)}</dd></div>
<div><dt>Issued / redeemed</dt><dd data-figure="flows">${count(rate.issued)} / ${count(rate.redeemed)}</dd></div>
<div><dt>Redemption rate</dt><dd data-figure="redemption-rate">${percent(rate.rate_bps)}</dd></div>
<div><dt>Points expired</dt><dd data-figure="expired">${count(breakage.expired)}</dd></div>
<div><dt>Breakage rate (expired of due)</dt><dd data-figure="breakage">${count(breakage.expired_of_due)} of ${count(breakage.due)} · ${percent(breakage.rate_bps)}</dd></div>
<div><dt>Active members this month</dt><dd data-figure="active">${count(active[active.length - 1]?.members ?? 0)}</dd></div>
<div><dt>Retention (${lastRetention?.month ?? "—"})</dt><dd data-figure="retention">${lastRetention ? `${lastRetention.retained} of ${lastRetention.base} · ${percent(lastRetention.rate_bps)}` : "—"}</dd></div>
<div><dt>Spend from the top fifth of members</dt><dd data-figure="top-fifth">${percent(top.share_bps)}</dd></div>
</dl>
<section aria-labelledby="liab-h"><h2 id="liab-h">Points liability outstanding</h2>
${lineChart({ id: "chart-liability", title: "Points members hold, end of each day", desc: `From ${liability[0]?.points ?? 0} to ${liability[liability.length - 1]?.points ?? 0} points over the window.`, labels: liability.map((x) => labelOf(x.day)), series: [{ name: "Points outstanding", values: liability.map((x) => x.points) }] })}
</section>
<section aria-labelledby="flows-h"><h2 id="flows-h">Issued vs redeemed per day</h2>
${barChart({ id: "chart-flows", title: "Points issued and redeemed per day", desc: `${rate.issued} points issued and ${rate.redeemed} redeemed in the window (gross).`, labels: flows.map((x) => labelOf(x.day)), series: [{ name: "Issued", values: flows.map((x) => x.issued) }, { name: "Redeemed", values: flows.map((x) => x.redeemed) }] })}
</section>
<section aria-labelledby="active-h"><h2 id="active-h">Active members and retention</h2>
${barChart({ id: "chart-active", title: "Active members per month", desc: "Distinct members with any points transaction in the month.", labels: active.map((x) => x.month), labelHeader: "Month", series: [{ name: "Active members", values: active.map((x) => x.members) }] })}
${table("Month-on-month retention: members active in the month before who came back", ["Month", ["Active the month before", "num"], ["Came back", "num"], ["Retention", "num"]], retention.map((x) => html`<tr><th scope="row">${x.month}</th><td class="num">${x.base}</td><td class="num">${x.retained}</td><td class="num">${percent(x.rate_bps)}</td></tr>`))}
</section>
<section aria-labelledby="rfm-h"><h2 id="rfm-h">RFM segments (${currency})</h2>
<p class="hint">Each member who spent in the window is scored 1–3 on recency, frequency and monetary value (thirds of the members); the segment follows from recency and frequency.</p>
${barChart({ id: "chart-rfm", title: "Members per RFM segment", desc: rfm.segments.map((s) => `${s.segment}: ${s.members}`).join(", "), labels: rfm.segments.map((s) => s.segment.replace("_", " ")), labelHeader: "Segment", series: [{ name: "Members", values: rfm.segments.map((s) => s.members) }] })}
${table("Segments", ["Segment", ["Members", "num"], ["Spend", "num"]], rfm.segments.map((s) => html`<tr><th scope="row">${SEGMENT_WORDS[s.segment] ?? s.segment}</th><td class="num">${s.members}</td><td class="num">${money(s.spend, currency)}</td></tr>`))}
</section>
<section aria-labelledby="top-h"><h2 id="top-h">The top fifth (20/80)</h2>
<p>The top ${count(top.top_members)} of ${count(top.members)} spending members spent ${money(top.top_spend, currency)} of ${money(top.total_spend, currency)}: <strong>${percent(top.share_bps)}</strong> of the network's spend in ${currency}.</p>
</section>`,
      }),
    );
  });

  return r;
}
