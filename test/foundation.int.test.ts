import { spawn, type ChildProcess } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { startTestHub, createTestDb, type TestHub } from "./harness.ts";
import { startTcpProxy } from "./tcp-proxy.ts";
import { json } from "./http.ts";
import { createBullmqQueue } from "../gateway/src/infra/queue/bullmq.queue.ts";
import { createLogger } from "../gateway/src/infra/logger.ts";
import { createHub } from "../gateway/src/hub.ts";
import { testConfig } from "./harness.ts";
import { systemClock } from "../gateway/src/infra/clock.ts";
import { enqueueInTx } from "../gateway/src/infra/outbox/outbox.ts";

let hub: TestHub | undefined;
afterEach(async () => {
  await hub?.close();
  hub = undefined;
});

describe("the hub's ground", () => {
  it("is alive and ready on its database and queue", async () => {
    hub = await startTestHub();
    const alive = await hub.fetch("/healthz");
    expect(alive.status).toBe(200);
    const ready = await hub.fetch("/readyz");
    expect(ready.status).toBe(200);
    expect(await json(ready)).toEqual({ status: "ready", checks: { database: "ok", queue: "ok" } });
  });

  it("serves its contract and the API reference", async () => {
    hub = await startTestHub();
    const spec = await json(await hub.fetch("/openapi.json"));
    expect(spec.openapi).toBe("3.1.0");
    const docs = await hub.fetch("/docs/");
    expect(docs.status).toBe(200);
    expect(await docs.text()).toMatch(/swagger-ui/);
  });

  it("answers unknown routes with a problem carrying the request id", async () => {
    hub = await startTestHub();
    const res = await hub.fetch("/v1/nowhere", { headers: { "x-request-id": "trace-12345678" } });
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(res.headers.get("x-request-id")).toBe("trace-12345678");
    const p = await json(res);
    expect(p).toMatchObject({ type: "/problems/not-found", status: 404, code: "not-found", request_id: "trace-12345678" });
    expect(JSON.stringify(p)).not.toMatch(/at .*\.ts:\d+/);
  });
});

describe.runIf(process.env.DATABASE_URL && process.env.REDIS_URL)("with Redis cut off", () => {
  it("is not ready, stays alive, keeps serving from the database, and drains the outbox when Redis is back", async () => {
    const redis = new URL(process.env.REDIS_URL!);
    const proxy = await startTcpProxy({ host: redis.hostname, port: Number(redis.port || 6379) });
    const log = createLogger("silent");
    const queue = createBullmqQueue(`redis://127.0.0.1:${proxy.port}`, log, { prefix: `fault${Date.now()}` });
    const db = await createTestDb();
    // Everything that talks to Redis (the queue and the rate limiter) goes through the proxy.
    const deps = { config: testConfig({ DATABASE_URL: process.env.DATABASE_URL!, REDIS_URL: `redis://127.0.0.1:${proxy.port}` }), db, queue, log, clock: systemClock };
    const h = createHub(deps);
    await h.init();
    const server = h.listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const seen: string[] = [];
    queue.process("system.echo", async (job) => {
      seen.push(job.data.message);
    });
    h.relay.start();
    try {
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      await proxy.cut();
      const notReady = await fetch(`${base}/readyz`);
      expect(notReady.status).toBe(503);
      expect((await json(notReady)).checks).toEqual({ database: "ok", queue: "down" });
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      // A request that needs only the database still works: a token, then an API call with it.
      deps.config.PUBLIC_URL = base;
      const { client, secret } = await h.auth.clients.create({ partnerId: null, name: "during outage", scopes: ["admin"] }, { type: "test", id: "fault" });
      const tok = await fetch(`${base}/oauth/token`, {
        method: "POST",
        headers: { authorization: `Basic ${Buffer.from(`${client.id}:${secret}`).toString("base64")}`, "content-type": "application/x-www-form-urlencoded" },
        body: "grant_type=client_credentials",
      });
      expect(tok.status).toBe(200);
      const { access_token } = await json(tok);
      expect((await fetch(`${base}/admin/v1/oauth/clients`, { headers: { authorization: `Bearer ${access_token}` } })).status).toBe(200);
      for (let i = 0; i < 3; i++) await enqueueInTx(db, "system.echo", { message: `while-down-${i}` }, { jobId: `down-${i}` });
      await new Promise((r) => setTimeout(r, 500));
      expect(await h.relay.pending()).toBe(3);
      await proxy.restore();
      const end = Date.now() + 20_000;
      // A worker may run a job before the relay's transaction marking it relayed commits: wait for both.
      while ((seen.length < 3 || (await h.relay.pending()) > 0) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      expect(seen.sort()).toEqual(["while-down-0", "while-down-1", "while-down-2"]);
      expect(await h.relay.pending()).toBe(0);
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
    } finally {
      await h.stopWorkers();
      await h.close();
      await new Promise((r) => server.close(r));
      await queue.close();
      await proxy.close();
      await db.destroy();
    }
  });
});

describe.runIf(process.env.DATABASE_URL && process.env.REDIS_URL)("as separate processes", () => {
  let worker: ChildProcess | undefined;
  afterEach(() => {
    worker?.kill("SIGTERM");
  });

  it("runs a job enqueued through the outbox in a separate start:worker process", async () => {
    const db = await createTestDb();
    const dbUrl = (db.client.config as { connection: { connectionString: string } }).connection.connectionString;
    let out = "";
    worker = spawn(process.execPath, ["--import", "tsx", "gateway/src/main.ts", "worker"], {
      env: { ...process.env, DATABASE_URL: dbUrl, LOG_LEVEL: "info", OUTBOX_POLL_MS: "50" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    worker.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    worker.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const marker = `from-api-${Date.now()}`;
    await db.transaction((trx) => enqueueInTx(trx, "system.echo", { message: marker }, { jobId: marker }));
    const end = Date.now() + 30_000;
    while (!out.includes(marker) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    expect(out).toContain(marker);
    expect(out).toContain('"role":"worker"');
    const exited = new Promise<number | null>((r) => worker!.once("exit", (code) => r(code)));
    worker.kill("SIGTERM");
    expect(await exited).toBe(0);
    worker = undefined;
    await db.destroy();
  });
});
