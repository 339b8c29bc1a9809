import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSpec, compileOperations } from "../gateway/src/http/openapi.ts";
import { scopesFromSpec } from "../gateway/src/auth/auth.module.ts";
import { startTestHub, type TestHub } from "./harness.ts";
import { createPartner } from "./factories/network.ts";
import { createClient, tokenFor } from "./factories/auth.ts";

/**
 * Operations anyone may call: probes, the contract itself, the OAuth endpoints (they authenticate
 * the client in the request), a prize draw's published data (verifiable by anyone) and Stripe's
 * webhook (authenticated by its signature).
 */
const PUBLIC = new Set(["getHealth", "getReadiness", "getAuthorizationServerMetadata", "getJwks", "issueToken", "revokeToken", "introspectToken", "getPublishedDraw", "receiveStripeWebhook"]);

const spec = loadSpec();
const operations = compileOperations(spec);
const fill = (path: string) => path.replace(/\{[^}]+\}/g, "does_not_exist");

describe("every operation of the contract", () => {
  it("declares its security; only the known public operations are open; every scope is a known one", () => {
    const known = scopesFromSpec(spec);
    for (const op of operations) {
      const raw = spec.paths[op.path][op.method];
      expect(raw.security ?? spec.security, `${op.operationId} must declare security`).toBeDefined();
      if (PUBLIC.has(op.operationId)) {
        expect(op.security, op.operationId).toEqual([]);
        continue;
      }
      expect(op.security.length, `${op.operationId} is not public and must name a scheme`).toBeGreaterThan(0);
      for (const alt of op.security) {
        for (const [scheme, scopes] of Object.entries(alt)) {
          expect(["partner", "admin"], op.operationId).toContain(scheme);
          expect(scopes.length, `${op.operationId} must name a scope`).toBeGreaterThan(0);
          for (const s of scopes) expect(known[scheme as "partner" | "admin"].has(s), `${op.operationId}: unknown scope ${s}`).toBe(true);
        }
      }
      if (op.path.startsWith("/admin/")) expect(Object.keys(op.security[0]!), op.operationId).toEqual(["admin"]);
      if (op.path.startsWith("/v1/")) expect(Object.keys(op.security[0]!), op.operationId).toEqual(["partner"]);
    }
  });
});

describe("every protected route, called for real", () => {
  let hub: TestHub;
  let partnerId: string;
  beforeAll(async () => {
    hub = await startTestHub();
    partnerId = (await createPartner(hub.db)).id;
  });
  afterAll(() => hub.close());

  it("refuses a call without a token (401) and with a token lacking its scope (403), before touching the body", async () => {
    const partnerNoScope = await tokenFor(hub, await createClient(hub, { partnerId, scopes: ["members:read"] }));
    const admin = await tokenFor(hub, await createClient(hub, { partnerId: null, scopes: ["admin"] }));
    for (const op of operations.filter((o) => !PUBLIC.has(o.operationId))) {
      const path = fill(op.path);
      const init = { method: op.method.toUpperCase(), headers: { "content-type": "application/json" }, ...(op.method === "get" ? {} : { body: "{not json" }) };
      const anon = await hub.fetch(path, init);
      expect(anon.status, `${op.operationId} without a token`).toBe(401);
      const scheme = Object.keys(op.security[0]!)[0];
      const needs = Object.values(op.security[0]!)[0]!;
      if (scheme === "partner") {
        if (!needs.includes("members:read")) {
          const weak = await hub.fetch(path, { ...init, headers: { ...init.headers, authorization: `Bearer ${partnerNoScope}` } });
          expect(weak.status, `${op.operationId} without ${needs.join(" ")}`).toBe(403);
        }
        const wrongAudience = await hub.fetch(path, { ...init, headers: { ...init.headers, authorization: `Bearer ${admin}` } });
        expect(wrongAudience.status, `${op.operationId} with an admin token`).toBe(403);
      } else {
        const wrongAudience = await hub.fetch(path, { ...init, headers: { ...init.headers, authorization: `Bearer ${partnerNoScope}` } });
        expect(wrongAudience.status, `${op.operationId} with a partner token`).toBe(403);
      }
    }
  });
});
