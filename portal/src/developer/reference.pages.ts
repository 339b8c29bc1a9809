import express, { Router } from "express";
import swaggerUi from "swagger-ui-express";
import type { PortalContext } from "../context.ts";
import { html } from "../html.ts";
import { page } from "../layout.ts";
import { requireRole } from "../web/auth.ts";
import { csrfToken } from "../web/csrf.ts";
import { PageNotFound } from "../web/errors.ts";
import { sandboxMembers } from "./sandbox.service.ts";

/**
 * The API reference (swagger-ui-express on the same contract as /docs) with "try it" on a sandbox
 * token, and the quick start with the developer's own ids filled in.
 */
export function referencePages(ctx: PortalContext): Router {
  const r = Router();
  const jsonBody = express.json({ limit: "4kb" });
  r.use(["/dev/reference", "/dev/quickstart", "/api/sandbox-token", "/api/session"], requireRole("developer"));

  // swagger-ui loads its assets relative to the page: serve it under a trailing slash.
  r.get("/dev/reference", (req, res, next) => {
    if (req.originalUrl.split("?")[0]!.endsWith("/")) return next();
    res.redirect(301, "/portal/dev/reference/");
  });
  const opts = {
    customSiteTitle: "API reference · Loyalty Hub",
    customJs: "/portal/static/try-it.js",
    customCssUrl: "/portal/static/try-it.css",
    swaggerOptions: {
      persistAuthorization: false,
      tryItOutEnabled: false,
      displayRequestDuration: true,
      // The sandbox token that try-it.js fetched goes on every call swagger-ui makes.
      requestInterceptor: function (request: { headers: Record<string, string> }) {
        // This function runs in the browser (swagger-ui-express inlines it): globalThis is window.
        const w = globalThis as unknown as { __hubSandboxToken?: string };
        if (w.__hubSandboxToken) request.headers.Authorization = "Bearer " + w.__hubSandboxToken;
        return request;
      },
    },
  };
  r.use("/dev/reference/", swaggerUi.serveFiles(ctx.spec, opts), swaggerUi.setup(ctx.spec, opts));

  /** What try-it.js needs: the CSRF token and the developer's sandbox clients. */
  r.get("/api/session", async (req, res) => {
    const u = req.user!;
    const clients = u.sandbox_partner_id ? (await ctx.services.clients.list({ partnerId: u.sandbox_partner_id })).filter((c) => c.status === "active") : [];
    res.json({ csrf: csrfToken(req), sandbox_clients: clients.map((c) => ({ client_id: c.id, name: c.name, scopes: c.scopes })) });
  });

  /**
   * A token for one of the developer's active sandbox clients, minted by the authorization server
   * without the secret (the developer is signed in, and it is the sandbox). Never for live clients.
   */
  r.post("/api/sandbox-token", jsonBody, async (req, res) => {
    const u = req.user!;
    const wanted = (req.body as { client_id?: unknown } | undefined)?.client_id;
    const clients = u.sandbox_partner_id ? (await ctx.services.clients.list({ partnerId: u.sandbox_partner_id })).filter((c) => c.status === "active") : [];
    const client = typeof wanted === "string" ? clients.find((c) => c.id === wanted) : clients[0];
    if (!client) {
      if (typeof wanted === "string") throw new PageNotFound();
      res.status(409).type("application/problem+json").send(JSON.stringify({ type: "/problems/no-sandbox-client", title: "No sandbox client", status: 409, code: "no-sandbox-client", detail: "Create a sandbox client on the Credentials page first." }));
      return;
    }
    const token = await ctx.services.issueTokenFor(client.id, String(res.locals.requestId));
    res.setHeader("Cache-Control", "no-store");
    res.json({ client_id: client.id, ...token });
  });

  r.get("/dev/quickstart", async (req, res) => {
    const u = req.user!;
    const base = ctx.config.PUBLIC_URL;
    const sandboxClients = u.sandbox_partner_id ? (await ctx.services.clients.list({ partnerId: u.sandbox_partner_id })).filter((c) => c.status === "active") : [];
    const client = sandboxClients[0];
    const clientId = client?.id ?? "YOUR_CLIENT_ID";
    const members = u.sandbox_partner_id ? await sandboxMembers(ctx, u.sandbox_partner_id) : [];
    const card = members[0]?.card_number ?? "A_TEST_CARD_NUMBER";
    const member = members[0]?.member_id ?? "A_TEST_MEMBER_ID";
    const step1 = `export HUB=${base}
export CLIENT_ID=${clientId}
export CLIENT_SECRET='the secret shown when you created it'

TOKEN=$(curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials "$HUB/oauth/token" | sed -E 's/.*"access_token":"([^"]+)".*/\\1/')`;
    const step2 = `curl -s -X POST "$HUB/v1/earn" \\
  -H "Authorization: Bearer $TOKEN" \\
  -H "Idempotency-Key: $(cat /proc/sys/kernel/random/uuid)" \\
  -H "Content-Type: application/json" \\
  -d '{"card_number":"${card}","partner_transaction_id":"order-1001","amount_minor":12345,"currency":"EUR"}'`;
    const step3 = `curl -s "$HUB/v1/members/${member}/balance" -H "Authorization: Bearer $TOKEN"`;
    res.send(
      page(req, {
        title: "Quick start",
        body: html`<p class="lead">From nothing to your first earn call in the sandbox, in three requests. Each block is ready to paste into a shell.</p>
${client ? "" : html`<p class="card card-pending">You have no sandbox client yet: <a href="/portal/dev/credentials">create one</a>, then come back — this page fills in its id.</p>`}
<section aria-labelledby="s1"><h2 id="s1">1. Get an access token</h2>
<p>Client credentials grant with your sandbox client <code>${clientId}</code>. Tokens last ${String(ctx.config.ACCESS_TOKEN_TTL_SECONDS / 60)} minutes.</p>
<pre id="qs-1"><code>${step1}</code></pre><button type="button" class="btn btn-small" data-copy="#qs-1">Copy</button></section>
<section aria-labelledby="s2"><h2 id="s2">2. Credit points for a purchase</h2>
<p>A purchase of 123.45 EUR by the test member holding card <code>${card}</code>. The Idempotency-Key makes a retry safe: the same key never credits twice.</p>
<pre id="qs-2"><code>${step2}</code></pre><button type="button" class="btn btn-small" data-copy="#qs-2">Copy</button></section>
<section aria-labelledby="s3"><h2 id="s3">3. Read the member's balance</h2>
<pre id="qs-3"><code>${step3}</code></pre><button type="button" class="btn btn-small" data-copy="#qs-3">Copy</button></section>
<p>Then: every call you make shows in <a href="/portal/dev/requests">Requests</a>; the whole API is in the <a href="/portal/dev/reference/">reference</a>, where "Use my sandbox token" lets you try each call.</p>`,
      }),
    );
  });

  return r;
}
