import { randomUUID } from "node:crypto";
import { SignJWT, createLocalJWKSet, decodeJwt, decodeProtectedHeader, errors as joseErrors, importJWK, jwtVerify, type JWTPayload } from "jose";
import type { Db } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";
import type { Logger } from "../infra/logger.ts";
import type { Principal } from "../http/router.ts";
import { invalidToken, oauthError } from "./auth.errors.ts";
import { httpErrors } from "../http/problem.ts";
import type { ClientsService, OAuthClient } from "./clients.service.ts";
import { DpopError, verifyDpopProof } from "./dpop.ts";
import { SIGNING_ALG, type KeyStore } from "./keys.ts";
import type { RateLimiter } from "./rate-limit.ts";
import type { ClientStates } from "./client-states.ts";

export const ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const CLOCK_TOLERANCE_S = 60;
const MAX_ASSERTION_LIFETIME_S = 300;

export interface TokenRequest {
  form: Record<string, string | undefined>;
  authorization?: string;
  dpop?: string;
  /** The absolute URL the request was sent to (for DPoP htu). */
  url: string;
  ip: string;
  requestId?: string;
}

export interface AccessTokenClaims extends JWTPayload {
  client_id: string;
  scope: string;
  partner_id: string | null;
  cnf?: { jkt: string };
}

export interface OAuthDeps {
  db: Db;
  clock: Clock;
  log: Logger;
  keys: KeyStore;
  clients: ClientsService;
  limiter: RateLimiter;
  /** Each request's client status and token revocation (cached per process, see client-states.ts). */
  clientStates: ClientStates;
  issuer: () => string;
  tokenTtlSeconds: number;
  tokenEndpointLimitPerMinute: number;
}

export function audienceFor(issuer: string, audience: "partner" | "admin"): string {
  return audience === "admin" ? `${issuer}/admin` : `${issuer}/v1`;
}

/**
 * The authorization server (client credentials grant, RFC 6749 §4.4) and the resource server's
 * token check. Access tokens are RFC 9068 JWTs signed by the hub's rotating ES256 key.
 */
export function createOAuthService(deps: OAuthDeps) {
  const { db, clock, log, keys, clients, limiter, clientStates } = deps;

  // A kid's key never changes: import it once, not on every request.
  const verifyKeys = new Map<string, ReturnType<typeof importJWK>>();
  const verifyKey = (kid: string, jwk: Parameters<typeof importJWK>[0]) => {
    let k = verifyKeys.get(kid);
    if (!k) {
      k = importJWK(jwk, SIGNING_ALG);
      verifyKeys.set(kid, k);
    }
    return k;
  };

  // A token's signature and its fixed claims never change (nor does a kid's key): a token verified
  // once is not verified again. The cache holds what jose returned for the exact token string under
  // the issuer it was checked against, with what follows from it alone (its key id, the principal
  // it stands for); each request still checks that its key is published, its times (exp, nbf)
  // against the clock, and its client and revocation (client-states.ts).
  // Bounded: the oldest entries go first; an expired token's entry goes when it is next presented.
  interface Verified {
    issuer: string;
    kid: string;
    claims: AccessTokenClaims;
    principal: Principal;
  }
  const verified = new Map<string, Verified>();
  const VERIFIED_MAX = 10_000;
  /** The entry of a token verified before whose times are still good under this issuer; else undefined (and forgotten). */
  function verifiedBefore(token: string, issuer: string): Verified | undefined {
    const hit = verified.get(token);
    if (!hit) return undefined;
    const nowS = Math.floor(clock.now().getTime() / 1000);
    const { exp, nbf } = hit.claims;
    if (hit.issuer === issuer && typeof exp === "number" && exp > nowS - CLOCK_TOLERANCE_S && (typeof nbf !== "number" || nbf <= nowS + CLOCK_TOLERANCE_S)) return hit;
    verified.delete(token);
    return undefined;
  }
  async function verifyToken(token: string, kid: string, jwk: Parameters<typeof importJWK>[0], issuer: string): Promise<Verified> {
    // Not seen yet, times out of range, another issuer: jose decides, and says why.
    const { payload } = await jwtVerify<AccessTokenClaims>(token, await verifyKey(kid, jwk), {
      issuer,
      audience: [audienceFor(issuer, "partner"), audienceFor(issuer, "admin")],
      algorithms: [SIGNING_ALG],
      typ: "at+jwt",
      clockTolerance: CLOCK_TOLERANCE_S,
      currentDate: clock.now(),
      requiredClaims: ["iss", "aud", "sub", "exp", "iat", "jti", "client_id", "scope"],
    });
    const entry: Verified = {
      issuer,
      kid,
      claims: payload,
      principal: {
        audience: payload.aud === audienceFor(issuer, "admin") ? "admin" : "partner",
        clientId: payload.client_id,
        partnerId: payload.partner_id ?? null,
        scopes: new Set(payload.scope.split(" ").filter(Boolean)),
        tokenId: String(payload.jti),
      },
    };
    if (verified.size >= VERIFIED_MAX) verified.delete(verified.keys().next().value!);
    verified.set(token, entry);
    return entry;
  }

  async function audit(action: string, clientId: string, detail: Record<string, unknown>, requestId?: string) {
    await db("audit_log").insert({
      actor_type: "oauth_client",
      actor_id: clientId,
      action,
      object_type: "oauth_token",
      object_id: typeof detail.jti === "string" ? detail.jti : null,
      after: JSON.stringify(detail),
      request_id: requestId ?? null,
    });
  }

  async function limitTokenEndpoint(key: string) {
    const d = await limiter.hit(`token:${key}`, deps.tokenEndpointLimitPerMinute, 60);
    if (!d.allowed) throw oauthError("slow_down", "Too many token requests; wait before retrying.", { "Retry-After": String(d.retryAfter) });
  }

  /** Works out which client is calling and proves it, by exactly one of the three methods. */
  async function authenticateClient(req: TokenRequest): Promise<OAuthClient> {
    const f = req.form;
    const basic = req.authorization?.match(/^Basic\s+(.+)$/i)?.[1];
    const methods = [basic ? "basic" : null, f.client_secret ? "post" : null, f.client_assertion ? "jwt" : null].filter(Boolean);
    if (methods.length > 1) throw oauthError("invalid_request", "Use exactly one client authentication method.");
    if (methods.length === 0) throw oauthError("invalid_client", "Client authentication is required.", { "WWW-Authenticate": 'Basic realm="loyalty-hub"' });

    let clientId: string | undefined;
    let method: OAuthClient["auth_method"];
    let check: (c: OAuthClient) => Promise<boolean>;
    if (basic) {
      const decoded = Buffer.from(basic, "base64").toString("utf8");
      const i = decoded.indexOf(":");
      if (i < 0) throw oauthError("invalid_client", "Malformed Basic credentials.", { "WWW-Authenticate": 'Basic realm="loyalty-hub"' });
      // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
      clientId = decodeURIComponent(decoded.slice(0, i).replace(/\+/g, " "));
      const secret = decodeURIComponent(decoded.slice(i + 1).replace(/\+/g, " "));
      method = "client_secret_basic";
      check = (c) => clients.checkSecret(c.id, secret);
    } else if (f.client_secret) {
      clientId = f.client_id;
      method = "client_secret_post";
      const secret = f.client_secret;
      check = (c) => clients.checkSecret(c.id, secret);
    } else {
      if (f.client_assertion_type !== ASSERTION_TYPE) throw oauthError("invalid_request", `client_assertion_type must be ${ASSERTION_TYPE}.`);
      let unverified: JWTPayload;
      try {
        unverified = decodeJwt(f.client_assertion!);
      } catch {
        throw oauthError("invalid_client", "client_assertion is not a JWT.");
      }
      clientId = typeof unverified.sub === "string" ? unverified.sub : undefined;
      if (f.client_id && f.client_id !== clientId) throw oauthError("invalid_client", "client_id does not match the assertion's subject.");
      method = "private_key_jwt";
      check = (c) => verifyAssertion(c, f.client_assertion!);
    }
    if (!clientId) throw oauthError("invalid_client", "client_id is missing.");
    await limitTokenEndpoint(`client:${clientId}`);
    const client = await clients.get(clientId);
    // Do the same slow work whether or not the client exists, so timing reveals nothing.
    const ok = client ? await check(client) : (await clients.checkSecret("cli_none", "x"), false);
    if (!client || !ok) {
      await audit("token.refused", clientId, { reason: "bad client credentials", method, ip: req.ip }, req.requestId);
      throw oauthError("invalid_client", "Client authentication failed.", method === "client_secret_basic" ? { "WWW-Authenticate": 'Basic realm="loyalty-hub"' } : {});
    }
    if (client.auth_method !== method) {
      await audit("token.refused", clientId, { reason: `method ${method} not registered`, ip: req.ip }, req.requestId);
      throw oauthError("invalid_client", `This client is registered for ${client.auth_method}.`);
    }
    if (client.status !== "active") {
      await audit("token.refused", clientId, { reason: "client disabled", ip: req.ip }, req.requestId);
      throw oauthError("invalid_client", "This client is disabled.");
    }
    return client;
  }

  /** RFC 7523 client assertion: signed by a key the client registered, for us, short-lived, once. */
  async function verifyAssertion(client: OAuthClient, assertion: string): Promise<boolean> {
    if (!client.jwks) return false;
    let header;
    try {
      header = decodeProtectedHeader(assertion);
    } catch {
      return false;
    }
    if (!header.alg || !client.allowed_algs.includes(header.alg)) throw oauthError("invalid_client", `Assertion algorithm must be one of ${client.allowed_algs.join(", ")}.`);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(assertion, createLocalJWKSet(client.jwks), {
        issuer: client.id,
        subject: client.id,
        audience: [deps.issuer(), `${deps.issuer()}/oauth/token`],
        algorithms: client.allowed_algs,
        clockTolerance: CLOCK_TOLERANCE_S,
        currentDate: clock.now(),
        requiredClaims: ["exp", "jti", "iss", "sub", "aud"],
      }));
    } catch (err) {
      log.info({ clientId: client.id, reason: (err as Error).message }, "client assertion refused");
      return false;
    }
    const iat = typeof payload.iat === "number" ? payload.iat : Math.floor(clock.now().getTime() / 1000);
    if (payload.exp! - iat > MAX_ASSERTION_LIFETIME_S) throw oauthError("invalid_client", "The assertion may live 5 minutes at most (exp - iat <= 300).");
    // Consume the jti: the primary key makes exactly one of any number of concurrent copies win.
    const consumed = await db("oauth_used_jtis")
      .insert({ kind: "assertion", issuer: client.id, jti: String(payload.jti), expires_at: new Date((payload.exp! + CLOCK_TOLERANCE_S) * 1000) })
      .onConflict(["kind", "issuer", "jti"])
      .ignore()
      .returning("jti");
    if (consumed.length === 0) throw oauthError("invalid_client", "This assertion was already used (jti replay).");
    return true;
  }

  /** Signs an RFC 9068 access token for the client and audits its issue. */
  async function mint(client: OAuthClient, scopes: string[], jkt: string | undefined, detail: Record<string, unknown>, requestId?: string) {
    const issuer = deps.issuer();
    const { kid, key } = await keys.signingKey();
    const jti = randomUUID();
    const now = Math.floor(clock.now().getTime() / 1000);
    const token = await new SignJWT({
      client_id: client.id,
      scope: scopes.join(" "),
      partner_id: client.partner_id,
      ...(jkt ? { cnf: { jkt } } : {}),
    })
      .setProtectedHeader({ alg: SIGNING_ALG, kid, typ: "at+jwt" })
      .setIssuer(issuer)
      .setAudience(audienceFor(issuer, client.audience))
      .setSubject(client.id)
      .setJti(jti)
      .setIssuedAt(now)
      .setExpirationTime(now + deps.tokenTtlSeconds)
      .sign(key);
    await audit("token.issued", client.id, { jti, scope: scopes.join(" "), exp: now + deps.tokenTtlSeconds, dpop: Boolean(jkt), ...detail }, requestId);
    return { access_token: token, token_type: jkt ? "DPoP" : "Bearer", expires_in: deps.tokenTtlSeconds, scope: scopes.join(" ") };
  }

  return {
    authenticateClient,

    /**
     * A token for an active client without its secret, for the developer portal's "try it": the
     * portal has already authenticated the developer and checked the client is one of their
     * partner's sandbox clients. Audited as an issue `via: portal`. Never exposed over the API.
     */
    async issueFor(clientId: string, requestId?: string) {
      const client = await deps.clients.get(clientId);
      if (!client || client.status !== "active") throw oauthError("invalid_client", "This client is not active.");
      if (client.dpop_bound) throw oauthError("invalid_dpop_proof", "This client must present a DPoP proof.");
      return mint(client, client.scopes, undefined, { via: "portal" }, requestId);
    },

    /** POST /oauth/token */
    async token(req: TokenRequest) {
      await limitTokenEndpoint(`ip:${req.ip}`);
      if (req.form.grant_type !== "client_credentials") {
        throw req.form.grant_type
          ? oauthError("unsupported_grant_type", "Only the client_credentials grant is supported.")
          : oauthError("invalid_request", "grant_type is required.");
      }
      const client = await authenticateClient(req);
      const requested = req.form.scope?.split(" ").filter(Boolean);
      // An empty scope (scope= from a form with the field left blank) is no scope asked for: all the client's, not none.
      const scopes = requested && requested.length > 0 ? requested : client.scopes;
      const excess = scopes.filter((s) => !client.scopes.includes(s));
      if (excess.length) {
        await audit("token.refused", client.id, { reason: "scope not granted", scopes: excess, ip: req.ip }, req.requestId);
        throw oauthError("invalid_scope", `Not granted to this client: ${excess.join(" ")}.`);
      }
      let jkt: string | undefined;
      if (req.dpop) {
        try {
          jkt = await verifyDpopProof({ db, clock }, req.dpop, { method: "POST", url: req.url });
        } catch (err) {
          if (err instanceof DpopError) throw oauthError("invalid_dpop_proof", err.message);
          throw err;
        }
      } else if (client.dpop_bound) {
        throw oauthError("invalid_dpop_proof", "This client must present a DPoP proof.");
      }
      return mint(client, scopes, jkt, { ip: req.ip }, req.requestId);
    },

    /**
     * Verifies an access token for one request: signature by a published key, exact iss and aud,
     * typ at+jwt, times within 60 s tolerance, a client still active, a token not revoked, and the
     * DPoP proof when the token is sender-constrained.
     */
    async verifyRequest(input: { authorization?: string; dpop?: string; method: string; url: string }): Promise<Principal> {
      const m = input.authorization?.match(/^(Bearer|DPoP)\s+([A-Za-z0-9._~+/-]+=*)$/i);
      if (!m) throw invalidToken(input.authorization ? "Malformed Authorization header." : "Send an access token: Authorization: Bearer <token>.");
      const scheme = m[1]!.toLowerCase() === "dpop" ? "DPoP" : "Bearer";
      const token = m[2]!;
      const issuer = deps.issuer();
      // Seen before: its header passed the checks below then; its key must still be published.
      let entry = verifiedBefore(token, issuer);
      if (entry) {
        if (!(await keys.publicKey(entry.kid))) throw invalidToken("The token's key is not known.", scheme);
      } else {
        let header;
        try {
          header = decodeProtectedHeader(token);
        } catch {
          throw invalidToken("The token is not a JWT.", scheme);
        }
        if (header.alg !== SIGNING_ALG) throw invalidToken(`Tokens are signed with ${SIGNING_ALG}.`, scheme);
        if (typeof header.kid !== "string") throw invalidToken("The token names no key.", scheme);
        const jwk = await keys.publicKey(header.kid);
        if (!jwk) throw invalidToken("The token's key is not known.", scheme);
        try {
          entry = await verifyToken(token, header.kid, jwk, issuer);
        } catch (err) {
          const why =
            err instanceof joseErrors.JWTExpired
              ? "The token has expired."
              : err instanceof joseErrors.JWTClaimValidationFailed
                ? `The token's ${err.claim} claim is not valid.`
                : "The token's signature does not verify.";
          throw invalidToken(why, scheme);
        }
      }
      const { claims, principal } = entry;
      const row = await clientStates.get(claims.client_id, principal.tokenId);
      if (!row || row.status !== "active") throw invalidToken("The client is disabled.", scheme);
      if (row.revoked) throw invalidToken("The token was revoked.", scheme);
      if (row.partner_id !== claims.partner_id) throw invalidToken("The token's partner does not match its client.", scheme);
      if (claims.cnf?.jkt) {
        if (scheme !== "DPoP") throw invalidToken("This token is DPoP-bound: send Authorization: DPoP <token> with a DPoP proof.", "DPoP");
        if (!input.dpop) throw invalidToken("A DPoP proof is required.", "DPoP");
        let jkt: string;
        try {
          jkt = await verifyDpopProof({ db, clock }, input.dpop, { method: input.method, url: input.url, accessToken: token });
        } catch (err) {
          if (err instanceof DpopError) throw invalidToken(err.message, "DPoP");
          throw err;
        }
        if (jkt !== claims.cnf.jkt) throw invalidToken("The DPoP proof is signed by another key than the token is bound to.", "DPoP");
      } else if (scheme === "DPoP") {
        throw invalidToken("This token is not DPoP-bound; send it as a Bearer token.");
      }
      const rl = await limiter.hit(`client:${claims.client_id}`, row.rate_limit_per_minute, 60);
      if (!rl.allowed) {
        throw httpErrors.make("rate-limited", `This client may make ${row.rate_limit_per_minute} requests a minute.`, { limit: row.rate_limit_per_minute }, {
          "Retry-After": String(rl.retryAfter),
        });
      }
      return principal;
    },

    /** RFC 7662: active and its claims for the caller's own partner's tokens; inactive otherwise. */
    async introspect(req: TokenRequest): Promise<Record<string, unknown>> {
      const caller = await authenticateClient(req);
      const token = req.form.token;
      if (!token) throw oauthError("invalid_request", "token is required.");
      const claims = await liveClaims(token);
      if (!claims) return { active: false };
      const sameOwner = caller.partner_id === null ? caller.audience === "admin" : claims.partner_id === caller.partner_id;
      if (!sameOwner) return { active: false };
      return {
        active: true,
        client_id: claims.client_id,
        scope: claims.scope,
        sub: claims.sub,
        aud: claims.aud,
        iss: claims.iss,
        exp: claims.exp,
        iat: claims.iat,
        jti: claims.jti,
        token_type: claims.cnf ? "DPoP" : "Bearer",
        partner_id: claims.partner_id,
        ...(claims.cnf ? { cnf: claims.cnf } : {}),
      };
    },

    /** RFC 7009: revokes the caller's own partner's token; unknown or foreign tokens are ignored (200). */
    async revoke(req: TokenRequest): Promise<void> {
      const caller = await authenticateClient(req);
      const token = req.form.token;
      if (!token) throw oauthError("invalid_request", "token is required.");
      const claims = await liveClaims(token);
      if (!claims) return;
      const sameOwner = caller.partner_id === null ? caller.audience === "admin" : claims.partner_id === caller.partner_id;
      if (!sameOwner || typeof claims.jti !== "string") return;
      await db("oauth_revoked_tokens")
        .insert({ jti: claims.jti, client_id: claims.client_id, expires_at: new Date((claims.exp ?? 0) * 1000 + CLOCK_TOLERANCE_S * 1000) })
        .onConflict("jti")
        .ignore();
      // Refused at once here; the other processes hear of it from the database (client-states.ts).
      clientStates.invalidate();
      await audit("token.revoked", caller.id, { jti: claims.jti, token_client_id: claims.client_id }, req.requestId);
    },

    metadata() {
      const issuer = deps.issuer();
      return {
        issuer,
        token_endpoint: `${issuer}/oauth/token`,
        revocation_endpoint: `${issuer}/oauth/revoke`,
        introspection_endpoint: `${issuer}/oauth/introspect`,
        jwks_uri: `${issuer}/.well-known/jwks.json`,
        grant_types_supported: ["client_credentials"],
        response_types_supported: ["token"],
        token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        token_endpoint_auth_signing_alg_values_supported: ["ES256", "PS256", "EdDSA"],
        revocation_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        introspection_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        dpop_signing_alg_values_supported: ["ES256", "PS256", "EdDSA"],
        scopes_supported: [] as string[],
      };
    },
  };

  /** The claims of a token that is ours, unexpired, unrevoked, and whose client is active; else null. */
  async function liveClaims(token: string): Promise<AccessTokenClaims | null> {
    try {
      const h = decodeProtectedHeader(token);
      const jwk = typeof h.kid === "string" ? await keys.publicKey(h.kid) : undefined;
      if (!jwk || h.alg !== SIGNING_ALG) return null;
      const { payload } = await jwtVerify<AccessTokenClaims>(token, await importJWK(jwk, SIGNING_ALG), {
        issuer: deps.issuer(),
        algorithms: [SIGNING_ALG],
        typ: "at+jwt",
        clockTolerance: CLOCK_TOLERANCE_S,
        currentDate: clock.now(),
      });
      const row = await db("oauth_clients")
        .where("id", payload.client_id)
        .first("status", db.raw("EXISTS (SELECT 1 FROM oauth_revoked_tokens r WHERE r.jti = ?) AS revoked", [String(payload.jti)]));
      return row && row.status === "active" && !row.revoked ? payload : null;
    } catch {
      return null;
    }
  }
}

export type OAuthService = ReturnType<typeof createOAuthService>;
