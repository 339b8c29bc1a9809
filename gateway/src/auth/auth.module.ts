import type { Request } from "express";
import type { HubDeps } from "../hub.ts";
import type { Spec } from "../http/openapi.ts";
import type { Authenticate } from "../http/router.ts";
import { createClientsService } from "./clients.service.ts";
import { createClientStates } from "./client-states.ts";
import { createKeyStore } from "./keys.ts";
import { createOAuthService } from "./oauth.service.ts";
import { createRateLimiter } from "./rate-limit.ts";

/** The scopes each audience may hold, read from the contract's security schemes. */
export function scopesFromSpec(spec: Spec): { partner: Set<string>; admin: Set<string> } {
  const of = (name: string) => new Set(Object.keys(spec.components?.securitySchemes?.[name]?.flows?.clientCredentials?.scopes ?? {}));
  return { partner: of("partner"), admin: of("admin") };
}

/** Wires the authorization server and the resource server's token check for one hub. */
export function createAuth(deps: HubDeps, spec: Spec) {
  const tokenTtlSeconds = deps.config.ACCESS_TOKEN_TTL_SECONDS;
  const knownScopes = scopesFromSpec(spec);
  const keys = createKeyStore({ db: deps.db, clock: deps.clock, log: deps.log, tokenTtlSeconds });
  const clientStates = createClientStates({ db: deps.db, log: deps.log, ttlMs: deps.config.AUTH_STATE_CACHE_MS });
  const clients = createClientsService({ db: deps.db, clock: deps.clock, knownScopes, onStateChange: () => clientStates.invalidate() });
  const limiter = createRateLimiter({ redisUrl: deps.config.REDIS_URL, log: deps.log });
  const oauth = createOAuthService({
    db: deps.db,
    clock: deps.clock,
    log: deps.log,
    keys,
    clients,
    limiter,
    clientStates,
    issuer: () => deps.config.PUBLIC_URL,
    tokenTtlSeconds,
    tokenEndpointLimitPerMinute: deps.config.TOKEN_ENDPOINT_LIMIT_PER_MINUTE,
  });

  // The resource server: each request's token, checked by oauth.verifyRequest (a 401 AppError when
  // it fails). Called directly, not through a passport strategy: that wrapper cost a few percent of
  // an earn's CPU for nothing it added.
  const authenticate: Authenticate = (req: Request) =>
    oauth.verifyRequest({
      authorization: req.headers.authorization,
      dpop: typeof req.headers.dpop === "string" ? req.headers.dpop : undefined,
      method: req.method,
      url: deps.config.PUBLIC_URL + req.originalUrl,
    });

  return { keys, clients, clientStates, oauth, limiter, authenticate, knownScopes };
}

export type Auth = ReturnType<typeof createAuth>;
