import { randomUUID } from "node:crypto";
import { SignJWT, calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, type CryptoKey, type JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { json } from "../../../test/http.ts";
import { adminToken, bearer, createClient, tokenFor, type TestClient } from "../../../test/factories/auth.ts";
import { createPartner } from "../../../test/factories/network.ts";
import { expectRouteSecurity } from "../../../test/security.ts";
import { ASSERTION_TYPE } from "./oauth.service.ts";

let hub: TestHub;
let partnerA: string;
let partnerB: string;

beforeAll(async () => {
  hub = await startTestHub();
  partnerA = (await createPartner(hub.db)).id;
  partnerB = (await createPartner(hub.db)).id;
});
afterAll(() => hub.close());

const form = (fields: Record<string, string>, headers: Record<string, string> = {}) => ({
  method: "POST",
  headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
  body: new URLSearchParams(fields),
});
const basic = (c: TestClient) => ({ authorization: `Basic ${Buffer.from(`${c.clientId}:${c.secret}`).toString("base64")}` });

async function keyPair(alg: "ES256" | "PS256" | "EdDSA" = "ES256") {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const kid = randomUUID();
  const jwk = { ...(await exportJWK(publicKey)), kid, alg };
  return { privateKey, jwk, kid, alg };
}

async function assertion(clientId: string, key: { privateKey: CryptoKey; kid: string; alg: string }, over: Record<string, unknown> = {}, lifetime = 120) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ jti: randomUUID(), ...over })
    .setProtectedHeader({ alg: key.alg, kid: key.kid })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience((over.aud as string) ?? hub.deps.config.PUBLIC_URL)
    .setIssuedAt(now)
    .setExpirationTime(now + lifetime)
    .sign(key.privateKey);
}

async function dpopProof(key: { privateKey: CryptoKey; jwk: JWK; alg: string }, method: string, url: string, accessToken?: string) {
  const { createHash } = await import("node:crypto");
  return new SignJWT({
    htm: method,
    htu: url,
    jti: randomUUID(),
    ...(accessToken ? { ath: createHash("sha256").update(accessToken).digest("base64url") } : {}),
  })
    .setProtectedHeader({ alg: key.alg, typ: "dpop+jwt", jwk: { kty: key.jwk.kty!, crv: key.jwk.crv!, x: key.jwk.x!, y: key.jwk.y! } })
    .setIssuedAt()
    .sign(key.privateKey);
}

describe("authorization server metadata", () => {
  it("publishes RFC 8414 metadata and a JWKS with public keys only", async () => {
    const meta = await json(await hub.fetch("/.well-known/oauth-authorization-server"));
    expect(meta.issuer).toBe(hub.url);
    expect(meta.token_endpoint).toBe(`${hub.url}/oauth/token`);
    expect(meta.token_endpoint_auth_methods_supported).toEqual(["client_secret_basic", "client_secret_post", "private_key_jwt"]);
    expect(meta.scopes_supported).toEqual(expect.arrayContaining(["earn:write", "burn:write", "card-transactions:write", "settlements:read", "webhooks:manage", "admin"]));
    const jwks = await json(await hub.fetch("/.well-known/jwks.json"));
    expect(jwks.keys.length).toBeGreaterThanOrEqual(2); // the signing key and the pre-published next key
    for (const k of jwks.keys) {
      expect(k).not.toHaveProperty("d");
      expect(k.alg).toBe("ES256");
    }
  });
});

describe("client credentials grant", () => {
  it("issues an RFC 9068 access token with client_secret_basic", async () => {
    const c = await createClient(hub, { partnerId: partnerA, scopes: ["earn:write", "members:read"] });
    const res = await hub.fetch("/oauth/token", form({ grant_type: "client_credentials", scope: "earn:write" }, basic(c)));
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = await json(res);
    expect(body).toMatchObject({ token_type: "Bearer", scope: "earn:write" });
    expect(body.expires_in).toBeLessThanOrEqual(600);
    const header = decodeProtectedHeader(body.access_token);
    expect(header).toMatchObject({ typ: "at+jwt", alg: "ES256" });
    const claims = decodeJwt(body.access_token);
    expect(claims).toMatchObject({ iss: hub.url, aud: `${hub.url}/v1`, sub: c.clientId, client_id: c.clientId, scope: "earn:write", partner_id: partnerA });
    expect(claims.exp! - claims.iat!).toBeLessThanOrEqual(600);
    expect(typeof claims.jti).toBe("string");
  });

  it("issues with client_secret_post, and all the client's scopes by default", async () => {
    const c = await createClient(hub, { partnerId: partnerA, scopes: ["earn:write", "burn:write"], authMethod: "client_secret_post" });
    const res = await hub.fetch("/oauth/token", form({ grant_type: "client_credentials", client_id: c.clientId, client_secret: c.secret! }));
    expect(res.status).toBe(200);
    expect((await json(res)).scope).toBe("earn:write burn:write");
    // scope= (blank) was a token with no scope at all, useless on every operation.
    for (const scope of ["", "  "]) {
      const blank = await hub.fetch("/oauth/token", form({ grant_type: "client_credentials", client_id: c.clientId, client_secret: c.secret!, scope }));
      expect(blank.status).toBe(200);
      expect((await json(blank)).scope).toBe("earn:write burn:write");
    }
  });

  it("refuses bad credentials, the wrong method, unknown grants and scopes with OAuth errors", async () => {
    const c = await createClient(hub, { partnerId: partnerA, scopes: ["earn:write"] });
    const bad = await hub.fetch("/oauth/token", form({ grant_type: "client_credentials" }, basic({ ...c, secret: "hcs_live_wrong" })));
    expect(bad.status).toBe(401);
    expect(bad.headers.get("www-authenticate")).toMatch(/^Basic/);
    expect(await json(bad)).toMatchObject({ error: "invalid_client", status: 401 });
    const post = await hub.fetch("/oauth/token", form({ grant_type: "client_credentials", client_id: c.clientId, client_secret: c.secret! }));
    expect((await json(post)).error).toBe("invalid_client");
    const grant = await hub.fetch("/oauth/token", form({ grant_type: "password" }, basic(c)));
    expect(grant.status).toBe(400);
    expect((await json(grant)).error).toBe("unsupported_grant_type");
    const scope = await hub.fetch("/oauth/token", form({ grant_type: "client_credentials", scope: "earn:write admin" }, basic(c)));
    expect((await json(scope)).error).toBe("invalid_scope");
    const none = await hub.fetch("/oauth/token", form({ grant_type: "client_credentials" }));
    expect(none.status).toBe(401);
    const audit = await hub.db("audit_log").where({ actor_id: c.clientId, action: "token.refused" }).count<{ count: bigint }[]>({ count: "*" });
    expect(Number(audit[0]!.count)).toBeGreaterThanOrEqual(2);
  });

  it("answers an empty form, or one without token, with 400 invalid_request as the contract says, never a 422", async () => {
    const c = await createClient(hub, { partnerId: partnerA, scopes: ["earn:write"] });
    // An empty body and a revoke/introspect without token were 422 validation-error, with no OAuth `error`: no status the contract declares.
    const cases: Array<[string, RequestInit]> = [
      ["/oauth/token", { method: "POST", headers: basic(c) }],
      ["/oauth/token", form({}, basic(c))],
      ["/oauth/revoke", { method: "POST", headers: basic(c) }],
      ["/oauth/revoke", form({ token_type_hint: "access_token" }, basic(c))],
      ["/oauth/introspect", form({ token_type_hint: "access_token" }, basic(c))],
    ];
    for (const [path, init] of cases) {
      const res = await hub.fetch(path, init);
      expect(res.status, path).toBe(400);
      expect(await json(res), path).toMatchObject({ error: "invalid_request", code: "oauth-invalid-request" });
    }
  });

  it("rotates a secret with an overlap during which both work, then only the new one", async () => {
    const c = await createClient(hub, { partnerId: partnerA, scopes: ["earn:write"] });
    const admin = await adminToken(hub);
    const res = await hub.fetch(`/admin/v1/oauth/clients/${c.clientId}/secrets`, {
      method: "POST",
      headers: { ...bearer(admin), "content-type": "application/json" },
      body: JSON.stringify({ overlap_seconds: 2 }),
    });
    expect(res.status).toBe(201);
    const fresh = { clientId: c.clientId, secret: (await json(res)).client_secret as string };
    expect(fresh.secret).toMatch(/^hcs_live_/);
    expect(await tokenFor(hub, c)).toBeTruthy();
    expect(await tokenFor(hub, fresh)).toBeTruthy();
    await new Promise((r) => setTimeout(r, 2100));
    const old = await hub.fetch("/oauth/token", form({ grant_type: "client_credentials" }, basic(c)));
    expect(old.status).toBe(401);
    expect(await tokenFor(hub, fresh)).toBeTruthy();
    const stored = await hub.db("oauth_client_secrets").where({ client_id: c.clientId }).select("hash");
    for (const s of stored) expect(s.hash).toMatch(/^scrypt\$/);
    expect(JSON.stringify(stored)).not.toContain(fresh.secret);
  });
});

describe("private_key_jwt (RFC 7523)", () => {
  it("authenticates with a signed assertion for each allowed algorithm", async () => {
    for (const alg of ["ES256", "PS256", "EdDSA"] as const) {
      const key = await keyPair(alg);
      const c = await createClient(hub, { partnerId: partnerA, scopes: ["earn:write"], authMethod: "private_key_jwt", jwks: { keys: [key.jwk] } });
      const res = await hub.fetch("/oauth/token", form({ grant_type: "client_credentials", client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(c.clientId, key) }));
      expect(res.status, alg).toBe(200);
    }
  });

  it("refuses an assertion for another audience, living too long, without jti, or with an algorithm not allowed", async () => {
    const key = await keyPair("ES256");
    const c = await createClient(hub, { partnerId: partnerA, scopes: ["earn:write"], authMethod: "private_key_jwt", jwks: { keys: [key.jwk] }, allowedAlgs: ["PS256"] });
    const send = async (a: string) => json(await hub.fetch("/oauth/token", form({ grant_type: "client_credentials", client_assertion_type: ASSERTION_TYPE, client_assertion: a })));
    expect((await send(await assertion(c.clientId, key))).error).toBe("invalid_client"); // ES256 not on this client's list
    const c2 = await createClient(hub, { partnerId: partnerA, scopes: ["earn:write"], authMethod: "private_key_jwt", jwks: { keys: [key.jwk] } });
    expect((await send(await assertion(c2.clientId, key, { aud: "https://other.example" }))).error).toBe("invalid_client");
    expect((await send(await assertion(c2.clientId, key, {}, 600))).error).toBe("invalid_client");
    const noJti = await new SignJWT({}).setProtectedHeader({ alg: "ES256", kid: key.kid }).setIssuer(c2.clientId).setSubject(c2.clientId).setAudience(hub.url).setIssuedAt().setExpirationTime("2m").sign(key.privateKey);
    expect((await send(noJti)).error).toBe("invalid_client");
    // HMAC and none are never accepted, whatever the client registered.
    const hs = await new SignJWT({ jti: randomUUID() }).setProtectedHeader({ alg: "HS256" }).setIssuer(c2.clientId).setSubject(c2.clientId).setAudience(hub.url).setIssuedAt().setExpirationTime("2m").sign(new TextEncoder().encode("x".repeat(32)));
    expect((await send(hs)).error).toBe("invalid_client");
  });

  it("lets exactly one of 50 concurrent copies of an assertion through", async () => {
    const key = await keyPair("ES256");
    const c = await createClient(hub, { partnerId: partnerA, scopes: ["earn:write"], authMethod: "private_key_jwt", jwks: { keys: [key.jwk] } });
    const a = await assertion(c.clientId, key);
    const results = await Promise.all(
      Array.from({ length: 50 }, () => hub.fetch("/oauth/token", form({ grant_type: "client_credentials", client_assertion_type: ASSERTION_TYPE, client_assertion: a })).then((r) => r.status)),
    );
    expect(results.filter((s) => s === 200)).toHaveLength(1);
    expect(results.filter((s) => s === 401)).toHaveLength(49);
  });

  it("refuses a JWKS holding a private key", async () => {
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    const admin = await adminToken(hub);
    const res = await hub.fetch("/admin/v1/oauth/clients", {
      method: "POST",
      headers: { ...bearer(admin), "content-type": "application/json" },
      body: JSON.stringify({ partner_id: partnerA, name: "leaky", scopes: ["earn:write"], auth_method: "private_key_jwt", jwks: { keys: [await exportJWK(privateKey)] } }),
    });
    expect(res.status).toBe(422);
    expect((await json(res)).code).toBe("invalid-client-config");
  });
});

describe("revocation, introspection, disabling", () => {
  it("revokes a token at once; another partner can neither revoke nor introspect it", async () => {
    const a = await createClient(hub, { partnerId: partnerA, scopes: ["members:read"] });
    const b = await createClient(hub, { partnerId: partnerB, scopes: ["members:read"] });
    const admin = await createClient(hub, { partnerId: null, scopes: ["admin"] });
    const adminTok = await tokenFor(hub, admin);
    const token = await tokenFor(hub, a);

    const seenByB = await json(await hub.fetch("/oauth/introspect", form({ token }, basic(b))));
    expect(seenByB).toEqual({ active: false });
    const seenByA = await json(await hub.fetch("/oauth/introspect", form({ token }, basic(a))));
    expect(seenByA).toMatchObject({ active: true, client_id: a.clientId, partner_id: partnerA, scope: "members:read" });

    expect((await hub.fetch("/oauth/revoke", form({ token }, basic(b)))).status).toBe(200);
    expect((await json(await hub.fetch("/oauth/introspect", form({ token }, basic(a))))).active).toBe(true);

    expect((await hub.fetch("/oauth/revoke", form({ token }, basic(a)))).status).toBe(200);
    expect((await json(await hub.fetch("/oauth/introspect", form({ token }, basic(a))))).active).toBe(false);

    // an admin token revoked by its own client stops working on the next request
    expect((await hub.fetch("/admin/v1/oauth/clients", { headers: bearer(adminTok) })).status).toBe(200);
    await hub.fetch("/oauth/revoke", form({ token: adminTok }, basic(admin)));
    expect((await hub.fetch("/admin/v1/oauth/clients", { headers: bearer(adminTok) })).status).toBe(401);
    const revoked = await hub.db("audit_log").where({ action: "token.revoked" }).count<{ count: bigint }[]>({ count: "*" });
    expect(Number(revoked[0]!.count)).toBeGreaterThanOrEqual(2);
  });

  it("makes a disabled client's tokens fail at once, and lets it back when enabled", async () => {
    const admin = await adminToken(hub);
    const c = await createClient(hub, { partnerId: null, scopes: ["admin"] });
    const t = await tokenFor(hub, c);
    expect((await hub.fetch("/admin/v1/oauth/clients", { headers: bearer(t) })).status).toBe(200);
    expect((await hub.fetch(`/admin/v1/oauth/clients/${c.clientId}/disable`, { method: "POST", headers: bearer(admin) })).status).toBe(200);
    expect((await hub.fetch("/admin/v1/oauth/clients", { headers: bearer(t) })).status).toBe(401);
    expect((await hub.fetch(`/admin/v1/oauth/clients/${c.clientId}/enable`, { method: "POST", headers: bearer(admin) })).status).toBe(200);
    expect((await hub.fetch("/admin/v1/oauth/clients", { headers: bearer(t) })).status).toBe(200);
  });
});

describe("DPoP (RFC 9449)", () => {
  it("binds the token to the client's key and refuses it without a fresh proof", async () => {
    const key = await keyPair("ES256");
    const c = await createClient(hub, { partnerId: null, scopes: ["admin"], dpopBound: true });
    const plain = await hub.fetch("/oauth/token", form({ grant_type: "client_credentials" }, basic(c)));
    expect((await json(plain)).error).toBe("invalid_dpop_proof");

    const res = await hub.fetch("/oauth/token", form({ grant_type: "client_credentials" }, { ...basic(c), dpop: await dpopProof(key, "POST", `${hub.url}/oauth/token`) }));
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.token_type).toBe("DPoP");
    expect(decodeJwt(body.access_token).cnf).toEqual({ jkt: await calculateJwkThumbprint(key.jwk) });

    const url = `${hub.url}/admin/v1/oauth/clients`;
    const at = body.access_token as string;
    expect((await hub.fetch("/admin/v1/oauth/clients", { headers: { authorization: `Bearer ${at}` } })).status).toBe(401);
    expect((await hub.fetch("/admin/v1/oauth/clients", { headers: { authorization: `DPoP ${at}` } })).status).toBe(401);
    const proof = await dpopProof(key, "GET", url, at);
    expect((await hub.fetch("/admin/v1/oauth/clients", { headers: { authorization: `DPoP ${at}`, dpop: proof } })).status).toBe(200);
    // the same proof twice: replay
    expect((await hub.fetch("/admin/v1/oauth/clients", { headers: { authorization: `DPoP ${at}`, dpop: proof } })).status).toBe(401);
    // a proof from another key
    const other = await keyPair("ES256");
    expect((await hub.fetch("/admin/v1/oauth/clients", { headers: { authorization: `DPoP ${at}`, dpop: await dpopProof(other, "GET", url, at) } })).status).toBe(401);
    // a proof for another method
    expect((await hub.fetch("/admin/v1/oauth/clients", { headers: { authorization: `DPoP ${at}`, dpop: await dpopProof(key, "POST", url, at) } })).status).toBe(401);
  });
});

describe("rate limits", () => {
  it("answers 429 with Retry-After past the client's limit", async () => {
    const c = await createClient(hub, { partnerId: null, scopes: ["admin"], rateLimitPerMinute: 3 });
    const t = await tokenFor(hub, c);
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 4; i++) {
      const r = await hub.fetch("/admin/v1/oauth/clients", { headers: bearer(t) });
      statuses.push(r.status);
      if (r.status === 429) retryAfter = r.headers.get("retry-after");
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(Number(retryAfter)).toBeGreaterThan(0);
  });
});

describe("token endpoint limits", () => {
  it("limits token requests per source address and per client", async () => {
    const limited = await startTestHub({ config: { TOKEN_ENDPOINT_LIMIT_PER_MINUTE: "3" } });
    try {
      const p = await createPartner(limited.db);
      const c = await createClient(limited, { partnerId: p.id, scopes: ["earn:write"] });
      const statuses: number[] = [];
      let last: Response | undefined;
      for (let i = 0; i < 4; i++) {
        last = await limited.fetch("/oauth/token", form({ grant_type: "client_credentials" }, basic(c)));
        statuses.push(last.status);
      }
      expect(statuses).toEqual([200, 200, 200, 429]);
      expect(Number(last!.headers.get("retry-after"))).toBeGreaterThan(0);
      expect((await json(last!)).error).toBe("slow_down");
    } finally {
      await limited.close();
    }
  });
});

describe("security of the admin routes", () => {
  it("fails closed on every kind of bad token, and refuses partner tokens", async () => {
    await expectRouteSecurity(hub, { method: "GET", path: "/admin/v1/oauth/clients", scopes: ["admin"], audience: "admin" });
  });
});
