import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { startTestHub, testConfig } from "../../../test/harness.ts";
import { createClient, tokenFor } from "../../../test/factories/auth.ts";
import { createHub } from "../hub.ts";
import { createLogger } from "../infra/logger.ts";
import { createMemoryQueue } from "../infra/queue/memory.queue.ts";
import { systemClock } from "../infra/clock.ts";
import { createKeyStore } from "./keys.ts";

describe("signing-key rotation", () => {
  it("rotates three times while two API processes issue and verify tokens, with zero failed requests", async () => {
    // Process A issues tokens and rotates; process B (same database, its own key cache) verifies.
    const a = await startTestHub();
    const log = createLogger("silent");
    // Both serve one public URL (one issuer) behind a load balancer.
    const b = createHub({ config: { ...testConfig(), PUBLIC_URL: a.url }, db: a.db, queue: createMemoryQueue(log), log, clock: systemClock });
    await b.init();
    const server = b.listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    const bUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const client = await createClient(a, { partnerId: null, scopes: ["admin"] });

      let stop = false;
      const outcomes: number[] = [];
      const kids = new Set<string>();
      const worker = async () => {
        while (!stop) {
          const token = await tokenFor(a, client);
          kids.add(JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString()).kid);
          for (const url of [a.url, bUrl]) {
            const r = await fetch(`${url}/admin/v1/oauth/clients?partner_id=none`, { headers: { authorization: `Bearer ${token}` } });
            outcomes.push(r.status);
          }
        }
      };
      const workers = [worker(), worker(), worker(), worker()];
      for (let i = 0; i < 3; i++) {
        await new Promise((r) => setTimeout(r, 1_200));
        await a.hub.auth.keys.rotate();
      }
      await new Promise((r) => setTimeout(r, 1_200));
      stop = true;
      await Promise.all(workers);
      expect(outcomes.length).toBeGreaterThan(20);
      expect(outcomes.filter((s) => s !== 200)).toEqual([]);
      expect(kids.size).toBeGreaterThanOrEqual(3);
      const rotations = await a.db("audit_log").where({ action: "signing_key.rotated" }).count<{ count: bigint }[]>({ count: "*" });
      expect(Number(rotations[0]!.count)).toBe(3);
    } finally {
      await new Promise((r) => server.close(r));
      await b.close();
      await a.close();
    }
  });

  it("finds a new key for every request that meets it while another process's reload is in flight", async () => {
    const a = await startTestHub();
    try {
      // Process B's view of the keys, loaded before two rotations: the signing key is one it never saw.
      const b = createKeyStore({ db: a.db, clock: systemClock, log: createLogger("silent"), tokenTtlSeconds: 900 });
      await b.jwks();
      await a.hub.auth.keys.rotate();
      await a.hub.auth.keys.rotate();
      const { kid } = await a.hub.auth.keys.signingKey();
      // Five requests at once: one reloads, the others wait for that reload instead of being throttled.
      const found = await Promise.all(Array.from({ length: 5 }, () => b.publicKey(kid)));
      expect(found.map((k) => k?.kid)).toEqual(Array(5).fill(kid));
      // A kid nobody published is still unknown.
      expect(await b.publicKey("key_forged")).toBeUndefined();
    } finally {
      await a.close();
    }
  });
});
