import { SignJWT, importJWK, type JWK, type JWTPayload } from "jose";
import { createHmac } from "node:crypto";
import { expect } from "vitest";
import type { TestHub } from "./harness.ts";
import { adminToken, createClient, tokenFor } from "./factories/auth.ts";
import { audienceFor } from "../gateway/src/auth/oauth.service.ts";

const b64 = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

/**
 * Forges access tokens the way an attacker (or a buggy client) would, signed with the hub's real
 * key unless told otherwise, so each test changes exactly one thing.
 */
export async function forge(hub: TestHub, opts: { claims?: Partial<JWTPayload & Record<string, unknown>>; header?: Record<string, unknown>; partnerId: string | null; clientId: string; scope: string }) {
  const row = await hub.db("signing_keys").where({ status: "active" }).first("kid", "private_jwk");
  const now = Math.floor(Date.now() / 1000);
  const issuer = hub.deps.config.PUBLIC_URL;
  const claims = {
    iss: issuer,
    aud: audienceFor(issuer, opts.partnerId ? "partner" : "admin"),
    sub: opts.clientId,
    client_id: opts.clientId,
    scope: opts.scope,
    partner_id: opts.partnerId,
    jti: `forged-${Math.random().toString(36).slice(2)}`,
    iat: now,
    exp: now + 300,
    ...opts.claims,
  };
  const header = { alg: "ES256", kid: row.kid, typ: "at+jwt", ...opts.header };
  return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(await importJWK(row.private_jwk as JWK, "ES256"));
}

export interface RouteUnderTest {
  method: string;
  /** A concrete path (ids filled in). */
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
  /** Scopes the route needs. */
  scopes: string[];
  /** The audience of the route: partner routes live under /v1, admin under /admin/v1. */
  audience: "partner" | "admin";
  /** For partner routes: a partner the tokens act for (must exist). */
  partnerId?: string;
}

async function call(hub: TestHub, r: RouteUnderTest, authorization?: string) {
  return hub.fetch(r.path, {
    method: r.method,
    headers: { "content-type": "application/json", "idempotency-key": `sec-${Math.random()}`, ...(authorization ? { authorization } : {}), ...r.headers },
    ...(r.body !== undefined ? { body: JSON.stringify(r.body) } : {}),
  });
}

/**
 * The shared security set every protected route runs: each case must fail closed, 401 for a bad
 * token, 403 for a good token without the right to the route.
 */
export async function expectRouteSecurity(hub: TestHub, r: RouteUnderTest): Promise<void> {
  const partnerId = r.audience === "partner" ? r.partnerId! : null;
  const client = await createClient(hub, { partnerId, scopes: r.scopes.length ? r.scopes : r.audience === "admin" ? ["admin"] : ["members:read"] });
  const scope = r.scopes.join(" ");
  const base = { partnerId, clientId: client.clientId, scope };
  const jwks = await hub.db("signing_keys").where({ status: "active" }).first("public_jwk");
  const pub = jwks.public_jwk as JWK;
  const now = Math.floor(Date.now() / 1000);

  const headerNone = b64({ alg: "none", typ: "at+jwt", kid: pub.kid });
  const payload = b64({ iss: hub.deps.config.PUBLIC_URL, aud: audienceFor(hub.deps.config.PUBLIC_URL, r.audience), sub: client.clientId, client_id: client.clientId, scope, partner_id: partnerId, jti: "x1", iat: now, exp: now + 300 });
  const hsHeader = b64({ alg: "HS256", typ: "at+jwt", kid: pub.kid });
  const hsSig = createHmac("sha256", JSON.stringify(pub)).update(`${hsHeader}.${payload}`).digest("base64url");
  const good = await forge(hub, base);
  const [gh, gp, gs] = good.split(".");
  const tamperedPayload = b64({ ...JSON.parse(Buffer.from(gp!, "base64url").toString()), scope: `${scope} admin` });

  const cases: Array<[string, string | undefined]> = [
    ["no token", undefined],
    ["malformed", "Bearer not-a-jwt"],
    ["wrong scheme", `Basic ${Buffer.from("a:b").toString("base64")}`],
    ["expired", `Bearer ${await forge(hub, { ...base, claims: { iat: now - 1000, exp: now - 120 } })}`],
    ["not yet valid", `Bearer ${await forge(hub, { ...base, claims: { nbf: now + 600 } })}`],
    ["wrong iss", `Bearer ${await forge(hub, { ...base, claims: { iss: "https://evil.example" } })}`],
    ["wrong aud", `Bearer ${await forge(hub, { ...base, claims: { aud: "https://evil.example/v1" } })}`],
    ["wrong typ", `Bearer ${await forge(hub, { ...base, header: { typ: "JWT" } })}`],
    ["alg none", `Bearer ${headerNone}.${payload}.`],
    ["HS256 signed with the public key", `Bearer ${hsHeader}.${payload}.${hsSig}`],
    ["tampered payload", `Bearer ${gh}.${tamperedPayload}.${gs}`],
    ["unknown kid", `Bearer ${await forge(hub, { ...base, header: { kid: "key_unknown" } })}`],
  ];
  for (const [name, authz] of cases) {
    const res = await call(hub, r, authz);
    expect(res.status, `${name}: ${r.method} ${r.path}`).toBe(401);
    const body = (await res.json()) as { code: string };
    expect(body.code, name).toBe("invalid-token");
  }

  // A real token of a client that was then disabled: fails at once.
  const doomed = await createClient(hub, { partnerId, scopes: r.scopes.length ? r.scopes : ["members:read"] });
  const doomedToken = await tokenFor(hub, doomed);
  await hub.hub.auth.clients.setStatus(doomed.clientId, "disabled", { type: "test", id: "security" });
  expect((await call(hub, r, `Bearer ${doomedToken}`)).status, "disabled client").toBe(401);

  // Authenticated but without the right: 403.
  if (r.audience === "partner") {
    const other = r.scopes[0] === "members:read" ? "settlements:read" : "members:read";
    const weak = await tokenFor(hub, await createClient(hub, { partnerId, scopes: [other] }));
    const res = await call(hub, r, `Bearer ${weak}`);
    expect(res.status, "missing scope").toBe(403);
    expect(((await res.json()) as { code: string }).code).toBe("insufficient-scope");
    const admin = await adminToken(hub);
    expect((await call(hub, r, `Bearer ${admin}`)).status, "admin token on a partner route").toBe(403);
  } else {
    const { createPartner } = await import("./factories/network.ts");
    const p = await createPartner(hub.db);
    const partnerTok = await tokenFor(hub, await createClient(hub, { partnerId: p.id, scopes: ["members:read"] }));
    expect((await call(hub, r, `Bearer ${partnerTok}`)).status, "partner token on an admin route").toBe(403);
  }
}
