import type { HubDeps } from "../hub.ts";
import type { HandlerContext, Handlers } from "../http/router.ts";
import { authErrors } from "./auth.errors.ts";
import type { Auth } from "./auth.module.ts";
import type { NewClient, OAuthClient } from "./clients.service.ts";
import type { TokenRequest } from "./oauth.service.ts";
import type { OpBody, OpQuery } from "../http/contract-types.ts";

const NO_STORE = { "Cache-Control": "no-store", Pragma: "no-cache" };

function tokenRequest(ctx: HandlerContext, config: HubDeps["config"]): TokenRequest {
  return {
    form: (ctx.body ?? {}) as Record<string, string | undefined>,
    authorization: ctx.req.headers.authorization,
    dpop: typeof ctx.req.headers.dpop === "string" ? ctx.req.headers.dpop : undefined,
    url: config.PUBLIC_URL + ctx.req.originalUrl.split("?")[0],
    ip: ctx.req.ip ?? "unknown",
    requestId: ctx.requestId,
  };
}

export function clientView(c: OAuthClient, secrets?: Array<{ id: string; hint: string; created_at: Date; expires_at: Date | null }>) {
  return {
    client_id: c.id,
    partner_id: c.partner_id,
    audience: c.audience,
    name: c.name,
    scopes: c.scopes,
    auth_method: c.auth_method,
    jwks: c.jwks,
    allowed_algs: c.allowed_algs,
    dpop_bound: c.dpop_bound,
    status: c.status,
    rate_limit_per_minute: c.rate_limit_per_minute,
    environment: c.environment,
    created_at: new Date(c.created_at).toISOString(),
    ...(secrets
      ? { secrets: secrets.map((s) => ({ id: s.id, hint: s.hint, created_at: new Date(s.created_at).toISOString(), expires_at: s.expires_at ? new Date(s.expires_at).toISOString() : null })) }
      : {}),
  };
}

export function authRoutes(deps: HubDeps, auth: Auth): Handlers {
  const { config } = deps;
  const actor = (ctx: HandlerContext) => ({ type: "admin_client", id: ctx.principal.clientId });

  return {
    async getAuthorizationServerMetadata() {
      const scopes = [...auth.knownScopes.partner, ...auth.knownScopes.admin];
      return { status: 200, body: { ...auth.oauth.metadata(), scopes_supported: scopes } };
    },
    async getJwks() {
      return { status: 200, body: await auth.keys.jwks(), headers: { "Cache-Control": "public, max-age=60" } };
    },
    async issueToken(ctx) {
      return { status: 200, body: await auth.oauth.token(tokenRequest(ctx, config)), headers: NO_STORE };
    },
    async revokeToken(ctx) {
      await auth.oauth.revoke(tokenRequest(ctx, config));
      return { status: 200, headers: NO_STORE };
    },
    async introspectToken(ctx) {
      return { status: 200, body: await auth.oauth.introspect(tokenRequest(ctx, config)), headers: NO_STORE };
    },

    async listOAuthClients(ctx) {
      const partnerId = (ctx.query as OpQuery<"listOAuthClients">).partner_id;
      const list = await auth.clients.list(partnerId === undefined ? {} : { partnerId });
      return { status: 200, body: { items: list.map((c) => clientView(c)) } };
    },
    async createOAuthClient(ctx) {
      const b = ctx.body as OpBody<"createOAuthClient">;
      if (b.partner_id && !(await deps.db("partners").where({ id: b.partner_id }).first("id"))) {
        throw authErrors.make("invalid-client-config", `No partner ${b.partner_id}.`, { errors: [{ field: "body/partner_id", reason: "is not a partner" }] });
      }
      const { client, secret } = await auth.clients.create(
        {
          partnerId: b.partner_id ?? null,
          name: b.name,
          scopes: b.scopes,
          authMethod: b.auth_method,
          jwks: b.jwks as NewClient["jwks"],
          allowedAlgs: b.allowed_algs,
          dpopBound: b.dpop_bound,
          rateLimitPerMinute: b.rate_limit_per_minute,
          environment: b.environment,
        },
        actor(ctx),
        ctx.requestId,
      );
      return { status: 201, body: { ...clientView(client), ...(secret ? { client_secret: secret } : {}) }, headers: NO_STORE };
    },
    async getOAuthClient(ctx) {
      const c = await auth.clients.get(String(ctx.params.clientId));
      if (!c) throw authErrors.make("client-not-found", `No client ${String(ctx.params.clientId)}.`);
      return { status: 200, body: clientView(c, await auth.clients.secrets(c.id)) };
    },
    async rotateOAuthClientSecret(ctx) {
      const overlap = (ctx.body as OpBody<"rotateOAuthClientSecret"> | undefined)?.overlap_seconds ?? 86_400;
      const id = String(ctx.params.clientId);
      const r = await auth.clients.rotateSecret(id, overlap, actor(ctx), ctx.requestId);
      return { status: 201, body: { client_id: id, client_secret: r.secret, previous_secrets_expire_at: r.previousSecretsExpireAt.toISOString() }, headers: NO_STORE };
    },
    async disableOAuthClient(ctx) {
      return { status: 200, body: clientView(await auth.clients.setStatus(String(ctx.params.clientId), "disabled", actor(ctx), ctx.requestId)) };
    },
    async enableOAuthClient(ctx) {
      return { status: 200, body: clientView(await auth.clients.setStatus(String(ctx.params.clientId), "active", actor(ctx), ctx.requestId)) };
    },
    async setOAuthClientJwks(ctx) {
      return { status: 200, body: clientView(await auth.clients.setJwks(String(ctx.params.clientId), ctx.body, actor(ctx), ctx.requestId)) };
    },
    async rotateSigningKeys() {
      const r = await auth.keys.rotate();
      return { status: 200, body: { activated_kid: r.activated, retired_kid: r.retired, next_kid: r.next } };
    },
  };
}
