import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Knex } from "knex";
import { createTestDb } from "../../../test/harness.ts";
import { startTcpProxy } from "../../../test/tcp-proxy.ts";
import { pipelinedQuery, type Db } from "./db.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.runIf(process.env.DATABASE_URL)("pipelinedQuery (PostgreSQL)", () => {
  let db: Db;
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
  let viaProxy: string;
  beforeAll(async () => {
    db = await createTestDb();
    const url = new URL(((db.client as { config: Knex.Config }).config.connection as { connectionString: string }).connectionString);
    proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
    url.hostname = "127.0.0.1";
    url.port = String(proxy.port);
    viaProxy = url.toString();
  });
  afterAll(async () => {
    await proxy.close();
    await db.destroy();
  });

  const backends = async () =>
    ((await db.raw("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'test-pipelined'")).rows as unknown[]).length;

  it("while the server turns its connections away, tries again after a growing wait (the pool answering meanwhile), and is back once it lets them in", async () => {
    const pq = pipelinedQuery(db, "test-pipelined", { connectionString: viaProxy, retryMinMs: 100, retryMaxMs: 400 });
    const q = async (n: number) => (await pq.query<{ n: number }>("pipelined_test", "SELECT ?::int AS n", [n])).map((r) => r.n);
    try {
      // The first statement goes through the pool and starts connecting.
      expect(await q(1)).toEqual([1]);
      for (let i = 0; i < 100 && (await backends()) === 0; i++) await sleep(20);
      expect(await backends(), "connected on first use").toBe(1);
      expect(await q(2)).toEqual([2]);

      // The server is up but turns every connection away (starting, or full).
      proxy.refuse();
      for (let i = 0; i < 100 && (await backends()) > 0; i++) await sleep(20);
      const before = proxy.accepted;
      let answered = 0;
      let failed = 0;
      const until = Date.now() + 1_500;
      for (let i = 0; Date.now() < until; i++) {
        try {
          expect(await q(i)).toEqual([i]);
          answered++;
        } catch {
          // At most the statement sent on the connection as it broke.
          failed++;
        }
        await sleep(10);
      }
      const attempts = proxy.accepted - before;
      expect(failed).toBeLessThanOrEqual(1);
      expect(answered, "every statement but that one answered through the pool").toBeGreaterThan(50);
      // Tried at once, then after 100, 200, 400, 400 … ms: about five times in 1.5 s, not once a statement.
      expect(attempts).toBeGreaterThanOrEqual(3);
      expect(attempts).toBeLessThanOrEqual(8);

      // It lets connections in again: connected again within the longest wait.
      await proxy.restore();
      for (let i = 0; i < 100 && (await backends()) === 0; i++) {
        expect(await q(i)).toEqual([i]);
        await sleep(20);
      }
      expect(await backends(), "connected again").toBe(1);
      expect(await q(3)).toEqual([3]);
    } finally {
      await pq.close();
    }
    for (let i = 0; i < 50 && (await backends()) > 0; i++) await sleep(20);
    expect(await backends(), "closed").toBe(0);
  });
});
