import type { JSONWebKeySet } from "jose";
import type { TestHub } from "../harness.ts";
import type { AuthMethod } from "../../gateway/src/auth/clients.service.ts";

export interface TestClient {
  clientId: string;
  secret?: string;
}

/** Creates an OAuth client straight through the clients service (as the operator would). */
export async function createClient(
  hub: TestHub,
  opts: { partnerId: string | null; scopes: string[]; authMethod?: AuthMethod; jwks?: JSONWebKeySet; dpopBound?: boolean; rateLimitPerMinute?: number; allowedAlgs?: string[] },
): Promise<TestClient> {
  const { client, secret } = await hub.hub.auth.clients.create(
    {
      partnerId: opts.partnerId,
      name: `test client ${Math.random().toString(36).slice(2, 8)}`,
      scopes: opts.scopes,
      authMethod: opts.authMethod,
      jwks: opts.jwks,
      dpopBound: opts.dpopBound,
      rateLimitPerMinute: opts.rateLimitPerMinute,
      allowedAlgs: opts.allowedAlgs,
    },
    { type: "test", id: "factory" },
  );
  return { clientId: client.id, ...(secret ? { secret } : {}) };
}

/** Gets a token the way a partner does: POST /oauth/token with HTTP Basic. */
export async function tokenFor(hub: TestHub, client: TestClient, scope?: string): Promise<string> {
  const res = await hub.fetch("/oauth/token", {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.secret!)}`).toString("base64")}`,
    },
    body: new URLSearchParams({ grant_type: "client_credentials", ...(scope ? { scope } : {}) }),
  });
  if (res.status !== 200) throw new Error(`token request failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { access_token: string }).access_token;
}

/** A bearer token acting for `partnerId` with exactly `scopes`. */
export async function partnerToken(hub: TestHub, partnerId: string, scopes: string[]): Promise<string> {
  return tokenFor(hub, await createClient(hub, { partnerId, scopes }));
}

/** A bearer token of the operator's staff (`admin` audience, scope `admin`). */
export async function adminToken(hub: TestHub): Promise<string> {
  return tokenFor(hub, await createClient(hub, { partnerId: null, scopes: ["admin"] }));
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}
