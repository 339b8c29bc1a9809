import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, testConfig, type TestHub } from "../../../test/harness.ts";
import { adminToken, bearer, createClient, tokenFor } from "../../../test/factories/auth.ts";
import { createHub, type Hub } from "../hub.ts";

// Each API process caches a client's status and a token's revocation (client-states.ts). Two hubs on
// one database stand for two API processes: a change made through one is refused at once there,
// and in the other as soon as the database's notification arrives — long before its cache expires.
// Without the notification, the cache's lifetime bounds how long the other process may be wrong.

let a: TestHub;
const others: Array<{ hub: Hub; server: Server }> = [];

/** Another API process on A's database, with its own cache (entries live `ttlMs`). */
async function otherProcess(ttlMs: number) {
  const config = testConfig({ AUTH_STATE_CACHE_MS: String(ttlMs) });
  config.PUBLIC_URL = a.url; // the issuer the tokens name, as behind one load balancer
  const hub = createHub({ ...a.deps, config });
  await hub.init();
  const server = hub.listen(0, "127.0.0.1");
  await new Promise<void>((r) => server.once("listening", () => r()));
  others.push({ hub, server });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { hub, fetch: (path: string, init?: RequestInit) => fetch(url + path, init) };
}

/** Polls until `check` is true; returns how long it took (ms), or throws after `withinMs`. */
async function within(withinMs: number, check: () => Promise<boolean>): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await check()) return Date.now() - t0;
    if (Date.now() - t0 > withinMs) throw new Error(`not within ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const form = (fields: Record<string, string>, client: { clientId: string; secret?: string }): RequestInit => ({
  method: "POST",
  headers: {
    "content-type": "application/x-www-form-urlencoded",
    authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.secret!)}`).toString("base64")}`,
  },
  body: new URLSearchParams(fields),
});

beforeAll(async () => {
  a = await startTestHub({ config: { AUTH_STATE_CACHE_MS: "60000" } });
});
afterAll(async () => {
  for (const o of others) {
    await new Promise<void>((r) => {
      o.server.close(() => r());
      o.server.closeAllConnections();
    });
    await o.hub.close();
  }
  await a.close();
});

/** A second API process (its cache holds states a minute), an admin client, its token, and a call with it to either process. */
async function twoProcessesAndAClient() {
  const b = await otherProcess(60_000);
  const c = await createClient(a, { partnerId: null, scopes: ["admin"] });
  const token = await tokenFor(a, c);
  const call = (p: { fetch: typeof a.fetch }) => p.fetch("/admin/v1/oauth/clients", { headers: bearer(token) }).then((r) => r.status);
  return { b, c, token, call };
}

describe("a change to a client or a token, seen by every API process", () => {
  it("a revoked token: refused at once where it was revoked, and in the other process on the notification", async () => {
    const { b, c, token, call } = await twoProcessesAndAClient();
    // Both processes have read the token's state, and B answers from its cache.
    expect(await call(a)).toBe(200);
    expect(await call(b)).toBe(200);
    await within(2_000, async () => b.hub.auth.clientStates.listening());
    expect(await call(b)).toBe(200);
    const hits = b.hub.auth.clientStates.stats().hits;
    expect(await call(b)).toBe(200);
    expect(b.hub.auth.clientStates.stats().hits).toBe(hits + 1);

    expect((await a.fetch("/oauth/revoke", form({ token }, c))).status).toBe(200);
    expect(await call(a)).toBe(401);
    // The cache would hold it for a minute: only the notification can make this quick.
    await within(2_000, async () => (await call(b)) === 401);
  });

  it("a disabled client: refused in the other process on the notification, and back when enabled", async () => {
    const { b, c, call } = await twoProcessesAndAClient();
    const admin = await adminToken(a);
    expect(await call(b)).toBe(200);

    expect((await a.fetch(`/admin/v1/oauth/clients/${c.clientId}/disable`, { method: "POST", headers: bearer(admin) })).status).toBe(200);
    expect(await call(a)).toBe(401);
    await within(2_000, async () => (await call(b)) === 401);

    expect((await a.fetch(`/admin/v1/oauth/clients/${c.clientId}/enable`, { method: "POST", headers: bearer(admin) })).status).toBe(200);
    expect(await call(a)).toBe(200);
    await within(2_000, async () => (await call(b)) === 200);
  });

  it("a change made in SQL, not through the hub, is seen too (the triggers notify)", async () => {
    const { b, c, call } = await twoProcessesAndAClient();
    expect(await call(a)).toBe(200);
    expect(await call(b)).toBe(200);
    await a.db("oauth_clients").where({ id: c.clientId }).update({ status: "disabled" });
    await within(2_000, async () => (await call(a)) === 401 && (await call(b)) === 401);
  });

  it("AUTH_STATE_CACHE_MS=0: every request reads the database, so the other process refuses at once", async () => {
    const b = await otherProcess(0);
    const c = await createClient(a, { partnerId: null, scopes: ["admin"] });
    const token = await tokenFor(a, c);
    const call = () => b.fetch("/admin/v1/oauth/clients", { headers: bearer(token) }).then((r) => r.status);
    expect(await call()).toBe(200);
    expect(await call()).toBe(200);
    expect(b.hub.auth.clientStates.stats()).toEqual({ hits: 0, misses: 0 });
    expect((await a.fetch("/oauth/revoke", form({ token }, c))).status).toBe(200);
    expect(await call()).toBe(401);
  });

  it("without a notification, the cache's lifetime bounds how long a process may be wrong", async () => {
    const ttlMs = 300;
    const b = await otherProcess(ttlMs);
    const c = await createClient(a, { partnerId: null, scopes: ["admin"] });
    const token = await tokenFor(a, c);
    const call = () => b.fetch("/admin/v1/oauth/clients", { headers: bearer(token) }).then((r) => r.status);
    // Let the listener come up, then fill the cache.
    expect(await call()).toBe(200);
    await within(2_000, async () => b.hub.auth.clientStates.listening());
    expect(await call()).toBe(200);
    // A revocation the processes are not told of (the trigger off, as if the notification were lost).
    await a.db.raw("ALTER TABLE oauth_revoked_tokens DISABLE TRIGGER oauth_revoked_tokens_notify_state");
    try {
      const jti = String(decodeJwt(token).jti);
      await a.db("oauth_revoked_tokens").insert({ jti, client_id: c.clientId, expires_at: new Date(Date.now() + 3_600_000) });
      const took = await within(ttlMs + 1_000, async () => (await call()) === 401);
      expect(took).toBeLessThanOrEqual(ttlMs + 1_000);
    } finally {
      await a.db.raw("ALTER TABLE oauth_revoked_tokens ENABLE TRIGGER oauth_revoked_tokens_notify_state");
    }
  });
});
