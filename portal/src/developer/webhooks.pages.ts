import { Router, type Request, type Response } from "express";
import type { PortalContext } from "../context.ts";
import { EVENT_TYPES } from "../../../gateway/src/events/events.service.ts";
import { AppError } from "../../../gateway/src/http/problem.ts";
import { html, type Html } from "../html.ts";
import { csrfField, flash, page, secretBlock } from "../layout.ts";
import { requireRole } from "../web/auth.ts";
import { field, list, str } from "../web/forms.ts";
import { PageNotFound } from "../web/errors.ts";
import { envOf, type Environment } from "./developer.guard.ts";

const when = (v: string | null | undefined) => (v ? v.replace("T", " ").slice(0, 19) : "—");

/**
 * Webhooks through the webhooks service, for the environment chosen (?env=sandbox|live): endpoints
 * and their event types, secret rotation (shown once), the delivery log with each attempt, replay.
 * The service answers 404 for another partner's endpoint or delivery, so the portal does too.
 */
export function webhooksPages(ctx: PortalContext): Router {
  const r = Router();
  const { webhooks } = ctx.services;
  r.use("/dev/webhooks", requireRole("developer"));

  function envFrom(req: Request): Environment {
    return envOf(req.query.env ?? (req.body as Record<string, unknown> | undefined)?.env ?? "sandbox");
  }
  function partnerOf(req: Request, env: Environment): string {
    const id = env === "live" ? req.user!.partner_id : req.user!.sandbox_partner_id;
    if (!id) throw new PageNotFound();
    return id;
  }
  const base = (env: Environment) => `/portal/dev/webhooks?env=${env}`;

  async function render(req: Request, env: Environment, notice?: Html) {
    const endpoints = await webhooks.listEndpoints(partnerOf(req, env));
    return page(req, {
      title: "Webhooks",
      ...(notice ? { notice } : {}),
      body: html`<p class="lead">Events are signed (Standard Webhooks) and retried for about three days. Each endpoint has its own secret.</p>
<nav aria-label="Environment" class="actions"><span>Showing</span>${(["sandbox", "live"] as const).map((e) => html`<a class="btn btn-small${e === env ? " btn-primary" : ""}" href="${base(e)}"${e === env ? html` aria-current="true"` : ""}>${e}</a>`)}</nav>
${endpoints.length
  ? endpoints.map(
      (e) => html`<article class="card" aria-labelledby="ep-${e.id}"><h2 id="ep-${e.id}"><code>${e.url}</code> <span class="badge badge-${e.enabled ? "active" : "disabled"}">${e.enabled ? "enabled" : "disabled"}</span></h2>
<dl class="facts"><dt>Endpoint id</dt><dd><code>${e.id}</code></dd><dt>Events</dt><dd>${e.event_types.map((t) => html`<code>${t}</code> `)}</dd>
${e.disabled_reason ? html`<dt>Disabled because</dt><dd>${e.disabled_reason}</dd>` : ""}
${e.previous_secret_expires_at ? html`<dt>Previous secret valid until</dt><dd>${when(e.previous_secret_expires_at)}</dd>` : ""}</dl>
<div class="actions">
<a class="btn btn-small" href="/portal/dev/webhooks/${e.id}?env=${env}">Delivery log</a>
<form method="post" action="/portal/dev/webhooks/${e.id}/rotate" class="inline">${csrfField(req)}<input type="hidden" name="env" value="${env}"><button type="submit" class="btn btn-small">Rotate secret</button></form>
<form method="post" action="/portal/dev/webhooks/${e.id}/toggle" class="inline">${csrfField(req)}<input type="hidden" name="env" value="${env}"><input type="hidden" name="enabled" value="${e.enabled ? "false" : "true"}"><button type="submit" class="btn btn-small">${e.enabled ? "Disable" : "Enable"}</button></form>
<form method="post" action="/portal/dev/webhooks/${e.id}/delete" class="inline" data-confirm="Delete this endpoint?">${csrfField(req)}<input type="hidden" name="env" value="${env}"><button type="submit" class="btn btn-small btn-danger">Delete</button></form>
</div></article>`,
    )
  : html`<p class="card">No ${env} endpoint yet.</p>`}
<section aria-labelledby="new-h"><h2 id="new-h">New ${env} endpoint</h2>
<form method="post" action="/portal/dev/webhooks" class="form">${csrfField(req)}<input type="hidden" name="env" value="${env}">
${field("url", "URL", { type: "url", required: true, hint: "https, publicly reachable; no credentials in the URL." })}
${field("description", "Description (optional)")}
<fieldset><legend>Event types</legend><div class="checks">${EVENT_TYPES.map((t) => html`<label><input type="checkbox" name="event_types" value="${t}"> <code>${t}</code></label>`)}</div></fieldset>
<button type="submit" class="btn btn-primary">Add endpoint</button></form></section>`,
    });
  }

  async function act(req: Request, res: Response, env: Environment, fn: () => Promise<Html | void>, back = base(env)) {
    try {
      const notice = await fn();
      if (notice) {
        res.send(await render(req, env, notice));
        return;
      }
      res.redirect(303, back);
    } catch (err) {
      if (!(err instanceof AppError) || err.status >= 500) throw err;
      if (err.status === 404) throw new PageNotFound();
      const fields = (err.extensions.errors as Array<{ field: string; reason: string }> | undefined)?.map((f) => `${f.field.replace(/^body\//, "")} ${f.reason}`).join("; ");
      flash(req, "error", fields ? `${err.detail ?? err.title} (${fields})` : (err.detail ?? err.title));
      res.redirect(303, back);
    }
  }

  r.get("/dev/webhooks", async (req, res) => {
    res.send(await render(req, envFrom(req)));
  });

  r.post("/dev/webhooks", async (req, res) => {
    const env = envFrom(req);
    await act(req, res, env, async () => {
      const types = list(req.body, "event_types");
      if (!types.length) throw new AppError(422, "no-event-types", "No event types", "Choose at least one event type.");
      const created = await webhooks.createEndpoint(partnerOf(req, env), { url: str(req.body, "url", 2000), event_types: types, description: str(req.body, "description", 500) || null });
      return secretBlock(`Endpoint ${created.id} added. Its signing secret:`, created.secret);
    });
  });

  r.post("/dev/webhooks/:id/rotate", async (req, res) => {
    const env = envFrom(req);
    await act(req, res, env, async () => {
      const rotated = await webhooks.rotateSecret(partnerOf(req, env), String(req.params.id));
      return secretBlock(`New signing secret for ${rotated.id}. Deliveries carry both signatures until ${when(rotated.previous_secret_expires_at)}.`, rotated.secret);
    });
  });

  r.post("/dev/webhooks/:id/toggle", async (req, res) => {
    const env = envFrom(req);
    await act(req, res, env, async () => {
      await webhooks.updateEndpoint(partnerOf(req, env), String(req.params.id), { enabled: str(req.body, "enabled") === "true" });
    });
  });

  r.post("/dev/webhooks/:id/delete", async (req, res) => {
    const env = envFrom(req);
    await act(req, res, env, async () => {
      await webhooks.deleteEndpoint(partnerOf(req, env), String(req.params.id));
      flash(req, "ok", "Endpoint deleted.");
    });
  });

  r.get("/dev/webhooks/:id", async (req, res) => {
    const env = envFrom(req);
    const partnerId = partnerOf(req, env);
    const id = String(req.params.id);
    const endpoint = await webhooks.getEndpoint(partnerId, id).catch((e: unknown) => {
      throw e instanceof AppError && e.status === 404 ? new PageNotFound() : e;
    });
    const status = typeof req.query.status === "string" && ["pending", "delivered", "dead"].includes(req.query.status) ? (req.query.status as "pending" | "delivered" | "dead") : undefined;
    const deliveries = await webhooks.listDeliveries(partnerId, id, { limit: 50, ...(status ? { status } : {}), ...(typeof req.query.cursor === "string" ? { cursor: req.query.cursor } : {}) });
    res.send(
      page(req, {
        title: "Delivery log",
        body: html`<p><a href="${base(env)}">← Webhooks</a> · <code>${endpoint.url}</code></p>
<p class="actions">Filter: ${[undefined, "pending", "delivered", "dead"].map((s) => html`<a class="btn btn-small${s === status ? " btn-primary" : ""}" href="/portal/dev/webhooks/${id}?env=${env}${s ? `&status=${s}` : ""}">${s ?? "all"}</a>`)}</p>
${deliveries.items.length
  ? html`<div class="table-wrap"><table><caption>Deliveries, newest first</caption><thead><tr><th scope="col">Created</th><th scope="col">Event</th><th scope="col">Status</th><th scope="col" class="num">Attempts</th><th scope="col">Last answer</th><th scope="col">Actions</th></tr></thead>
<tbody>${deliveries.items.map((d) => html`<tr><td>${when(d.created_at)}</td><td><code>${d.event_type}</code><br><span class="muted">${d.event_id}</span></td><td><span class="badge badge-${d.status}">${d.status}</span></td><td class="num">${d.attempt_count}</td><td>${d.last_http_status ?? ""} ${d.last_error ?? ""}</td>
<td><form method="post" action="/portal/dev/webhooks/${id}/deliveries/${d.id}/replay" class="inline">${csrfField(req)}<input type="hidden" name="env" value="${env}"><button type="submit" class="btn btn-small">Replay</button></form></td></tr>`)}</tbody></table></div>
${deliveries.next_cursor ? html`<p><a href="/portal/dev/webhooks/${id}?env=${env}${status ? `&status=${status}` : ""}&cursor=${deliveries.next_cursor}">Older deliveries</a></p>` : ""}`
  : html`<p class="card">No deliveries yet.</p>`}`,
      }),
    );
  });

  r.post("/dev/webhooks/:id/deliveries/:deliveryId/replay", async (req, res) => {
    const env = envFrom(req);
    const id = String(req.params.id);
    await act(
      req,
      res,
      env,
      async () => {
        await webhooks.replayDelivery(partnerOf(req, env), id, String(req.params.deliveryId));
        flash(req, "ok", "Replay queued: the event is sent again with the same webhook-id.");
      },
      `/portal/dev/webhooks/${id}?env=${env}`,
    );
  });

  return r;
}
