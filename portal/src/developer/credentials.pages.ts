import { Router, type Request, type Response } from "express";
import type { PortalContext } from "../context.ts";
import type { OAuthClient } from "../../../gateway/src/auth/clients.service.ts";
import { AppError } from "../../../gateway/src/http/problem.ts";
import { html, type Html } from "../html.ts";
import { csrfField, flash, page, secretBlock } from "../layout.ts";
import { requireRole } from "../web/auth.ts";
import { field, list, str } from "../web/forms.ts";
import { actorOf, envOf, liveAllowed, ownClient, partnerFor, type Environment } from "./developer.guard.ts";
import { sandboxMembers } from "./sandbox.service.ts";

const BANK_ONLY = new Set(["card-transactions:write"]);

function scopeDescriptions(ctx: PortalContext): Record<string, string> {
  const schemes = ctx.spec.components?.securitySchemes as Record<string, { flows?: { clientCredentials?: { scopes?: Record<string, string> } } }> | undefined;
  return schemes?.partner?.flows?.clientCredentials?.scopes ?? {};
}

/** Credentials: OAuth clients of the developer's sandbox and live partners, through the clients service. */
export function credentialsPages(ctx: PortalContext): Router {
  const r = Router();
  r.use("/dev/credentials", requireRole("developer"));

  async function clientCard(req: Request, c: OAuthClient): Promise<Html> {
    const secrets = c.auth_method === "private_key_jwt" ? [] : await ctx.services.clients.secrets(c.id);
    const base = `/portal/dev/credentials/${encodeURIComponent(c.id)}`;
    return html`<article class="card client" aria-labelledby="c-${c.id}">
<h3 id="c-${c.id}">${c.name} <span class="badge badge-${c.environment}">${c.environment}</span> <span class="badge badge-${c.status}">${c.status === "disabled" ? "revoked" : c.status}</span></h3>
<dl class="facts">
<dt>Client id</dt><dd><code id="cid-${c.id}">${c.id}</code> <button type="button" class="btn btn-small" data-copy="#cid-${c.id}">Copy</button></dd>
<dt>Authentication</dt><dd>${c.auth_method}</dd>
<dt>Scopes</dt><dd>${c.scopes.map((s) => html`<code>${s}</code> `)}</dd>
${secrets.length ? html`<dt>Secrets</dt><dd><ul class="plain">${secrets.map((s) => html`<li><code>${s.hint}</code> created ${new Date(s.created_at).toISOString().slice(0, 16).replace("T", " ")}${s.expires_at ? html` · <strong>expires ${new Date(s.expires_at).toISOString().slice(0, 16).replace("T", " ")}</strong>` : ""}</li>`)}</ul></dd>` : ""}
${c.jwks ? html`<dt>JWKS</dt><dd>${c.jwks.keys.length} public key(s): ${c.jwks.keys.map((k) => html`<code>${String(k.kid ?? k.kty)}</code> `)}</dd>` : ""}
</dl>
<div class="actions">
${c.auth_method !== "private_key_jwt" && c.status === "active"
  ? html`<form method="post" action="${base}/rotate" class="inline">${csrfField(req)}
<label for="ov-${c.id}">Old secret works for</label>
<select id="ov-${c.id}" name="overlap_seconds"><option value="0">0 (stop now)</option><option value="3600">1 hour</option><option value="86400" selected>24 hours</option></select>
<button type="submit" class="btn btn-small">Rotate secret</button></form>`
  : ""}
${c.status === "active"
  ? html`<form method="post" action="${base}/status" class="inline" data-confirm="Revoke ${c.id}? Its tokens stop working at their next request.">${csrfField(req)}<input type="hidden" name="status" value="disabled"><button type="submit" class="btn btn-small btn-danger">Revoke</button></form>`
  : html`<form method="post" action="${base}/status" class="inline">${csrfField(req)}<input type="hidden" name="status" value="active"><button type="submit" class="btn btn-small">Re-enable</button></form>`}
</div>
<details><summary>Register a public JWKS (for private_key_jwt)</summary>
<form method="post" action="${base}/jwks" class="form">${csrfField(req)}
${field(`jwks`, "Public JWK Set (JSON)", { type: "textarea", rows: 5, id: `f-jwks-${c.id}`, hint: "Public keys only (EC P-256, RSA or OKP); never a private key. Used to verify your client assertions.", attrs: html` spellcheck="false"` })}
<button type="submit" class="btn btn-small">Save JWKS</button></form></details>
</article>`;
  }

  function createForm(req: Request, env: Environment, kind: string): Html {
    const desc = scopeDescriptions(ctx);
    const scopes = [...ctx.services.knownScopes.partner].filter((s) => kind === "bank" || !BANK_ONLY.has(s));
    return html`<details${env === "sandbox" ? html` open` : ""}><summary>New ${env} client</summary>
<form method="post" action="/portal/dev/credentials" class="form">${csrfField(req)}
<input type="hidden" name="environment" value="${env}">
${field(`name`, "Name", { value: env === "sandbox" ? "Sandbox client" : "Production server", required: true, hint: "For you: which system uses it.", id: `f-name-${env}` })}
<fieldset><legend>Scopes</legend><div class="checks">
${scopes.map((s) => html`<label><input type="checkbox" name="scopes" value="${s}" checked data-env="${env}"> <span><code>${s}</code> <span class="muted">${desc[s] ?? ""}</span></span></label>`)}
</div></fieldset>
${field("auth_method", "Authentication", { options: [["client_secret_basic", "Client secret (HTTP Basic)"], ["client_secret_post", "Client secret (form body)"], ["private_key_jwt", "private_key_jwt (your key pair; give the public JWKS)"]], value: "client_secret_basic", id: `f-auth-${env}` })}
${field("jwks", "Public JWK Set (only for private_key_jwt)", { type: "textarea", rows: 4, id: `f-jwks-${env}` })}
<button type="submit" class="btn btn-primary">Create ${env} client</button>
</form></details>`;
  }

  async function render(req: Request, notice?: Html) {
    const u = req.user!;
    const live = await liveAllowed(ctx, req);
    const partner = await ctx.services.partners.getPartner(u.partner_id!);
    const sandboxClients = u.sandbox_partner_id ? await ctx.services.clients.list({ partnerId: u.sandbox_partner_id }) : [];
    const liveClients = await ctx.services.clients.list({ partnerId: u.partner_id! });
    const testMembers = u.sandbox_partner_id ? await sandboxMembers(ctx, u.sandbox_partner_id) : [];
    const kind = partner.kind as string;
    return page(req, {
      title: "Credentials",
      ...(notice ? { notice } : {}),
      body: html`<p class="lead">OAuth 2.0 clients for the client credentials grant. A client's secret is shown once, when it is made or rotated.</p>
<section aria-labelledby="sandbox-h">
<h2 id="sandbox-h">Sandbox <span class="badge badge-sandbox">sandbox</span></h2>
<p>Your sandbox partner <code>${u.sandbox_partner_id ?? "—"}</code> is active in the sandbox network: test members and cards, nothing real moves, apart from live data.</p>
${testMembers.length
  ? html`<div class="table-wrap"><table><caption>Test members</caption><thead><tr><th scope="col">Name</th><th scope="col">Member id</th><th scope="col">Card number</th></tr></thead>
<tbody>${testMembers.map((m) => html`<tr><td>${m.name}</td><td><code>${m.member_id}</code></td><td><code>${m.card_number}</code></td></tr>`)}</tbody></table></div>`
  : ""}
${await Promise.all(sandboxClients.map((c) => clientCard(req, c)))}
${u.sandbox_partner_id ? createForm(req, "sandbox", kind) : ""}
</section>
<section aria-labelledby="live-h">
<h2 id="live-h">Live <span class="badge badge-live">live</span></h2>
${live.allowed
  ? html`${await Promise.all(liveClients.map((c) => clientCard(req, c)))}${createForm(req, "live", kind)}`
  : html`<p class="card card-pending">Live credentials come when the operator approves your application (now: <strong>${live.status}</strong>).</p>`}
</section>`,
    });
  }

  r.get("/dev/credentials", async (req, res) => {
    res.send(await render(req));
  });

  async function act(req: Request, res: Response, fn: () => Promise<Html | void>) {
    try {
      const notice = await fn();
      if (notice) {
        res.setHeader("Cache-Control", "no-store");
        res.send(await render(req, notice));
        return;
      }
      res.redirect(303, "/portal/dev/credentials");
    } catch (err) {
      if (!(err instanceof AppError) || err.status >= 500) throw err;
      flash(req, "error", err.detail ?? err.title);
      res.redirect(303, "/portal/dev/credentials");
    }
  }

  r.post("/dev/credentials", async (req, res) => {
    await act(req, res, async () => {
      const env = envOf(str(req.body, "environment"));
      if (env === "live" && !(await liveAllowed(ctx, req)).allowed) throw new AppError(403, "live-not-allowed", "Not approved yet", "Live credentials come when the operator approves your application.");
      const partnerId = partnerFor(req, env);
      const partner = await ctx.services.partners.getPartner(req.user!.partner_id!);
      const scopes = list(req.body, "scopes");
      if (scopes.length === 0) throw new AppError(422, "no-scopes", "No scopes", "Choose at least one scope.");
      if (partner.kind !== "bank" && scopes.some((s) => BANK_ONLY.has(s))) throw new AppError(422, "bank-only-scope", "Bank scope", "card-transactions:write is for banks.");
      const method = str(req.body, "auth_method");
      const authMethod = (["client_secret_basic", "client_secret_post", "private_key_jwt"].includes(method) ? method : "client_secret_basic") as OAuthClient["auth_method"];
      const jwksText = str(req.body, "jwks", 20_000);
      let jwks: unknown;
      if (jwksText) {
        try {
          jwks = JSON.parse(jwksText);
        } catch {
          throw new AppError(422, "invalid-client-config", "Invalid JWKS", "The JWKS is not valid JSON.");
        }
      }
      const { client, secret } = await ctx.services.clients.create(
        { partnerId, name: str(req.body, "name", 100) || `${env} client`, scopes, authMethod, environment: env, ...(jwks ? { jwks: jwks as never } : {}) },
        actorOf(req),
        String(res.locals.requestId),
      );
      if (secret) return secretBlock(`Client ${client.id} created. Its secret:`, secret);
      flash(req, "ok", `Client ${client.id} created; it authenticates with your private key.`);
    });
  });

  r.post("/dev/credentials/:id/rotate", async (req, res) => {
    await act(req, res, async () => {
      const c = await ownClient(ctx, req, String(req.params.id));
      const overlap = Math.min(86_400, Math.max(0, Number(str(req.body, "overlap_seconds")) || 0));
      const { secret, previousSecretsExpireAt } = await ctx.services.clients.rotateSecret(c.id, overlap, actorOf(req), String(res.locals.requestId));
      return secretBlock(`New secret for ${c.id}. The previous one works until ${previousSecretsExpireAt.toISOString()}.`, secret);
    });
  });

  r.post("/dev/credentials/:id/status", async (req, res) => {
    await act(req, res, async () => {
      const c = await ownClient(ctx, req, String(req.params.id));
      const status = str(req.body, "status") === "active" ? "active" : "disabled";
      await ctx.services.clients.setStatus(c.id, status, actorOf(req), String(res.locals.requestId));
      flash(req, "ok", status === "disabled" ? `Client ${c.id} revoked: its tokens stop working at their next request.` : `Client ${c.id} enabled again.`);
    });
  });

  r.post("/dev/credentials/:id/jwks", async (req, res) => {
    await act(req, res, async () => {
      const c = await ownClient(ctx, req, String(req.params.id));
      let jwks: unknown;
      try {
        jwks = JSON.parse(str(req.body, "jwks", 20_000));
      } catch {
        throw new AppError(422, "invalid-client-config", "Invalid JWKS", "The JWKS is not valid JSON.");
      }
      await ctx.services.clients.setJwks(c.id, jwks, actorOf(req), String(res.locals.requestId));
      flash(req, "ok", `JWKS saved for ${c.id}.`);
    });
  });

  return r;
}
