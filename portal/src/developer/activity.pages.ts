import { Router, type Request } from "express";
import type { PortalContext } from "../context.ts";
import { html, type Html } from "../html.ts";
import { page } from "../layout.ts";
import { requireRole } from "../web/auth.ts";
import { lastDays } from "../charts/svg.ts";
import { barChart } from "../charts/console-charts.ts";
import { REQUEST_LOG_CAP, type RequestLog } from "../request-log/request-log.ts";
import { envOf, type Environment } from "./developer.guard.ts";

/** Which partner a page shows: ?env=live|sandbox; sandbox until the application is approved. */
function envFor(req: Request): Environment {
  const u = req.user!;
  if (req.query.env === "live" || req.query.env === "sandbox") return envOf(req.query.env);
  return u.sandbox_partner_id ? "sandbox" : "live";
}

function envSwitch(req: Request, path: string, env: Environment): Html {
  return html`<nav aria-label="Environment" class="actions"><span>Showing</span>
${(["sandbox", "live"] as const).map((e) => html`<a class="btn btn-small${e === env ? " btn-primary" : ""}" href="${path}?env=${e}"${e === env ? html` aria-current="true"` : ""}>${e}</a>`)}</nav>`;
}

/** Calls the requests page shows, newest first, of the REQUEST_LOG_CAP kept. */
const SHOWN = 200;

/** The request log (recent calls) and the usage charts (calls, points issued and redeemed per day). */
export function activityPages(ctx: PortalContext, requestLog: RequestLog): Router {
  const r = Router();
  r.use(["/dev/requests", "/dev/usage"], requireRole("developer"));

  r.get("/dev/requests", async (req, res) => {
    const env = envFor(req);
    const partnerId = env === "sandbox" ? req.user!.sandbox_partner_id : req.user!.partner_id;
    const errorsOnly = req.query.status === "errors";
    const calls = partnerId ? await requestLog.recent(partnerId, { limit: SHOWN, ...(errorsOnly ? { status: "errors" as const } : {}) }) : [];
    res.send(
      page(req, {
        title: "Requests",
        body: html`<p class="lead">The latest API calls made with your ${env} credentials: up to ${SHOWN} shown, of the last ${REQUEST_LOG_CAP.toLocaleString("en")} kept. Quote the request id when you ask the operator about a call.</p>
${envSwitch(req, "/portal/dev/requests", env)}
<p><a href="/portal/dev/requests?env=${env}${errorsOnly ? "" : "&status=errors"}">${errorsOnly ? "Show all calls" : "Show errors only"}</a></p>
${calls.length
  ? html`<div class="table-wrap"><table><caption>Recent calls${errorsOnly ? " (errors)" : ""}</caption>
<thead><tr><th scope="col">Time (UTC)</th><th scope="col">Method</th><th scope="col">Route</th><th scope="col" class="num">Status</th><th scope="col" class="num">Latency</th><th scope="col">Request id</th><th scope="col">Client</th></tr></thead>
<tbody>${calls.map((c) => html`<tr><td>${new Date(c.at).toISOString().replace("T", " ").slice(0, 19)}</td><td>${c.method}</td><td><code>${c.route}</code></td><td class="num"><span class="badge ${c.status >= 400 ? "badge-failed" : "badge-active"}">${c.status}</span></td><td class="num">${c.latency_ms} ms</td><td><code>${c.request_id}</code></td><td><code>${c.client_id}</code></td></tr>`)}</tbody></table></div>`
  : html`<p class="card">No calls yet. The <a href="/portal/dev/quickstart">quick start</a> makes your first one.</p>`}`,
      }),
    );
  });

  r.get("/dev/usage", async (req, res) => {
    const env = envFor(req);
    const partnerId = env === "sandbox" ? req.user!.sandbox_partner_id : req.user!.partner_id;
    const days = lastDays(ctx.clock.now(), 30);
    const from = days[0]!;
    const calls = partnerId ? await requestLog.callsPerDay(partnerId, from) : [];
    const points = partnerId ? await ctx.services.pointsPerDay(partnerId, new Date(`${from}T00:00:00Z`)) : [];
    const byDay = <T extends { day: string }>(rows: T[]) => new Map(rows.map((r) => [String(r.day).slice(0, 10), r]));
    const c = byDay(calls.map((x) => ({ ...x, day: typeof x.day === "string" ? x.day : new Date(x.day).toISOString() })));
    const p = byDay(points);
    const callsOk = days.map((d) => (c.get(d)?.calls ?? 0) - (c.get(d)?.errors ?? 0));
    const callsErr = days.map((d) => c.get(d)?.errors ?? 0);
    const issued = days.map((d) => Number(p.get(d)?.issued ?? 0n));
    const redeemed = days.map((d) => Number(p.get(d)?.redeemed ?? 0n));
    const total = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    const label = (d: string) => d.slice(5);
    res.send(
      page(req, {
        title: "Usage",
        body: html`${envSwitch(req, "/portal/dev/usage", env)}
<section aria-labelledby="calls-h" class="card"><h2 id="calls-h">API calls per day</h2>
${barChart({ id: "calls", title: "API calls per day, last 30 days", desc: `${total(callsOk)} calls succeeded and ${total(callsErr)} failed (4xx/5xx) in 30 days.`, labels: days.map(label), labelHeader: "Day", series: [{ name: "Succeeded", values: callsOk }, { name: "Failed (4xx/5xx)", values: callsErr }] })}</section>
<section aria-labelledby="points-h" class="card"><h2 id="points-h">Points issued and redeemed per day</h2>
${barChart({ id: "points", title: "Points issued and redeemed per day, last 30 days", desc: `${total(issued)} points issued and ${total(redeemed)} redeemed in 30 days.`, labels: days.map(label), labelHeader: "Day", series: [{ name: "Issued", values: issued }, { name: "Redeemed", values: redeemed }] })}</section>`,
      }),
    );
  });

  return r;
}
