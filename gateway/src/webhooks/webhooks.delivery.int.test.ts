import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Webhook } from "standardwebhooks";
import { createTestDb, startTestHub, testConfig, type TestHub } from "../../../test/harness.ts";
import { startTcpProxy } from "../../../test/tcp-proxy.ts";
import { createBullmqQueue } from "../infra/queue/bullmq.queue.ts";
import { createLogger } from "../infra/logger.ts";
import { systemClock } from "../infra/clock.ts";
import { createHub } from "../hub.ts";
import { startReceiver, until, type Receiver } from "../../../test/webhook-receiver.ts";
import { createPartner } from "../../../test/factories/network.ts";
import { recordEvent, type EventType } from "../events/events.service.ts";
import { createWebhooksService, type WebhooksService } from "./webhooks.service.ts";
import { EXCERPT_BYTES } from "./sender.ts";

/**
 * End to end on a whole hub with its workers: an event is recorded as the features do, the
 * workers fan it out and deliver it to real HTTP receivers on 127.0.0.1.
 */
let t: TestHub;
let running: TestHub | undefined;
let svc: WebhooksService;
let receivers: Receiver[] = [];

async function receiver(...args: Parameters<typeof startReceiver>) {
  const r = await startReceiver(...args);
  receivers.push(r);
  return r;
}

async function start(config: Record<string, string> = {}) {
  t = await startTestHub({
    config: { WEBHOOK_ALLOW_LOOPBACK: "true", OUTBOX_POLL_MS: "20", WEBHOOK_RETRY_SCHEDULE: "50ms,100ms,200ms,300ms,400ms,500ms,500ms,500ms", WEBHOOK_TIMEOUT_MS: "2000", ...config },
  });
  running = t;
  svc = createWebhooksService(t.deps);
}

async function emit(partnerId: string, type: EventType = "earn.posted", data: Record<string, unknown> = { earn_id: "ern_x", points: 10 }) {
  return t.db.transaction((trx) => recordEvent(trx, { type, partnerId, occurredAt: new Date(), data }));
}

async function deliveriesOf(endpointId: string) {
  return t.db("webhook_deliveries").where({ endpoint_id: endpointId }).orderBy("created_at");
}

beforeEach(() => {
  receivers = [];
});
afterEach(async () => {
  await running?.close();
  running = undefined;
  for (const r of receivers) await r.close();
});

describe("webhook delivery", () => {
  it("delivers a signed Standard Webhooks message that an independent implementation verifies", async () => {
    await start();
    const partner = await createPartner(t.db);
    const other = await createPartner(t.db);
    const rx = await receiver();
    const ep = await svc.createEndpoint(partner.id, { url: rx.url, event_types: ["earn.posted", "burn.posted"] });
    expect(ep.secret).toMatch(/^whsec_/);

    const evtId = await emit(partner.id, "earn.posted", { earn_id: "ern_1", member_id: "mem_1", points: 42 });
    await emit(partner.id, "tier.changed"); // not subscribed
    await emit(other.id, "earn.posted"); // another partner's
    await until(() => rx.received.length >= 1, { what: "a delivery" });
    await new Promise((r) => setTimeout(r, 300));
    expect(rx.received).toHaveLength(1);

    const msg = rx.received[0]!;
    expect(msg.headers["content-type"]).toBe("application/json");
    expect(msg.headers["webhook-id"]).toBe(evtId);
    expect(Math.abs(Number(msg.headers["webhook-timestamp"]) - Date.now() / 1000)).toBeLessThan(10);
    const payload = new Webhook(ep.secret).verify(msg.body, {
      "webhook-id": String(msg.headers["webhook-id"]),
      "webhook-timestamp": String(msg.headers["webhook-timestamp"]),
      "webhook-signature": String(msg.headers["webhook-signature"]),
    });
    expect(payload).toEqual({ type: "earn.posted", timestamp: expect.any(String), data: { earn_id: "ern_1", member_id: "mem_1", points: 42 } });
    // A tampered body fails verification.
    expect(() =>
      new Webhook(ep.secret).verify(msg.body.replace("42", "43"), {
        "webhook-id": String(msg.headers["webhook-id"]),
        "webhook-timestamp": String(msg.headers["webhook-timestamp"]),
        "webhook-signature": String(msg.headers["webhook-signature"]),
      }),
    ).toThrow();

    const [d] = await deliveriesOf(ep.id);
    await until(async () => (await svc.getDelivery(partner.id, ep.id, d.id)).status === "delivered", { what: "delivered status" });
    const detail = await svc.getDelivery(partner.id, ep.id, d.id);
    expect(detail).toMatchObject({ event_id: evtId, event_type: "earn.posted", status: "delivered", attempt_count: 1, last_http_status: 200 });
    expect(detail.attempts).toEqual([
      { attempt: 1, started_at: expect.any(String), latency_ms: expect.any(Number), outcome: "delivered", http_status: 200, response_excerpt: "ok", error: null },
    ]);
  });

  it("signs with both secrets during a rotation's overlap, then with the new one only", async () => {
    await start();
    const partner = await createPartner(t.db);
    const rx = await receiver();
    const ep = await svc.createEndpoint(partner.id, { url: rx.url, event_types: ["*"] });
    const rotated = await svc.rotateSecret(partner.id, ep.id, 3600);
    expect(rotated.secret).not.toBe(ep.secret);
    expect(rotated.previous_secret_expires_at).not.toBeNull();
    await emit(partner.id);
    await until(() => rx.received.length === 1);
    const headersOf = (i: number) => ({
      "webhook-id": String(rx.received[i]!.headers["webhook-id"]),
      "webhook-timestamp": String(rx.received[i]!.headers["webhook-timestamp"]),
      "webhook-signature": String(rx.received[i]!.headers["webhook-signature"]),
    });
    expect(headersOf(0)["webhook-signature"].split(" ")).toHaveLength(2);
    for (const s of [ep.secret, rotated.secret]) expect(() => new Webhook(s).verify(rx.received[0]!.body, headersOf(0))).not.toThrow();

    const again = await svc.rotateSecret(partner.id, rotated.id, 0);
    expect(again.previous_secret_expires_at).toBeNull();
    await emit(partner.id);
    await until(() => rx.received.length === 2);
    expect(headersOf(1)["webhook-signature"].split(" ")).toHaveLength(1);
    expect(() => new Webhook(again.secret).verify(rx.received[1]!.body, headersOf(1))).not.toThrow();
    expect(() => new Webhook(rotated.secret).verify(rx.received[1]!.body, headersOf(1))).toThrow();
  });

  it("gets every event to a receiver that was down for a while, exactly once per event id", async () => {
    await start();
    const partner = await createPartner(t.db);
    const rx = await receiver();
    const ep = await svc.createEndpoint(partner.id, { url: rx.url, event_types: ["earn.posted"] });
    await rx.down();
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push(await emit(partner.id, "earn.posted", { earn_id: `ern_${i}`, points: i }));
    // Every delivery fails at least once while the receiver is down.
    await until(async () => (await deliveriesOf(ep.id)).filter((d) => d.attempts >= 2).length === 12, { what: "failed attempts while down" });
    await rx.up();
    await until(async () => (await deliveriesOf(ep.id)).every((d) => d.status === "delivered"), { what: "every delivery delivered", timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 500));
    const counts = rx.countsById();
    expect([...counts.keys()].sort()).toEqual([...ids].sort());
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    const log = (await svc.getDelivery(partner.id, ep.id, (await deliveriesOf(ep.id))[0].id)).attempts;
    expect(log.slice(0, -1).every((a) => a.outcome === "connection-error" && a.http_status === null && a.error?.includes("ECONNREFUSED"))).toBe(true);
    expect(log.at(-1)).toMatchObject({ outcome: "delivered", http_status: 200 });
  });

  it("disables an endpoint that answers 410 Gone and stops sending to it", async () => {
    await start();
    const partner = await createPartner(t.db);
    const rx = await receiver(() => ({ status: 410, body: "gone" }));
    const ep = await svc.createEndpoint(partner.id, { url: rx.url, event_types: ["*"] });
    await emit(partner.id);
    await until(async () => !(await svc.getEndpoint(partner.id, ep.id)).enabled, { what: "the endpoint disabled" });
    expect(await svc.getEndpoint(partner.id, ep.id)).toMatchObject({ enabled: false, disabled_reason: "gone" });
    const [d] = await deliveriesOf(ep.id);
    expect(d).toMatchObject({ status: "dead", attempts: 1, last_http_status: 410 });
    await emit(partner.id);
    await new Promise((r) => setTimeout(r, 400));
    expect(rx.received).toHaveLength(1);
    expect(await deliveriesOf(ep.id)).toHaveLength(1);
    // The partner turns it back on: disabled_reason clears and new events flow again.
    rx.answer(() => ({ status: 204 }));
    expect(await svc.updateEndpoint(partner.id, ep.id, { enabled: true })).toMatchObject({ enabled: true, disabled_reason: null });
    await emit(partner.id);
    await until(() => rx.received.length === 2);
  });

  it("dead-letters after the last try, shows it, and replays it once the receiver is fixed", async () => {
    await start({ WEBHOOK_RETRY_SCHEDULE: "30ms,30ms" });
    const partner = await createPartner(t.db);
    const rx = await receiver(() => ({ status: 500, body: "x".repeat(5000) }));
    const ep = await svc.createEndpoint(partner.id, { url: rx.url, event_types: ["*"] });
    const evtId = await emit(partner.id);
    await until(async () => (await svc.listDeliveries(partner.id, ep.id, { status: "dead" })).items.length === 1, { what: "a dead delivery" });
    expect(rx.received).toHaveLength(3);
    const dead = (await svc.listDeliveries(partner.id, ep.id, { status: "dead" })).items[0]!;
    expect(dead).toMatchObject({ event_id: evtId, status: "dead", attempt_count: 3, last_http_status: 500, next_attempt_at: null });
    expect((await svc.listDeliveries(partner.id, ep.id, { status: "pending" })).items).toHaveLength(0);
    const detail = await svc.getDelivery(partner.id, ep.id, dead.id);
    expect(detail.attempts.map((a) => [a.attempt, a.outcome, a.http_status])).toEqual([
      [1, "http-error", 500],
      [2, "http-error", 500],
      [3, "http-error", 500],
    ]);
    expect(detail.attempts[0]!.response_excerpt).toHaveLength(EXCERPT_BYTES);

    rx.answer(() => ({ status: 200, body: "thanks" }));
    const replayed = await svc.replayDelivery(partner.id, ep.id, dead.id);
    expect(replayed).toMatchObject({ status: "pending", replays: 1 });
    await until(async () => (await svc.getDelivery(partner.id, ep.id, dead.id)).status === "delivered", { what: "the replay delivered" });
    expect(rx.received).toHaveLength(4);
    expect(rx.received[3]!.headers["webhook-id"]).toBe(evtId);
    // Delivered messages replay too (the partner lost what it got); a pending one cannot be.
    rx.answer(() => "hang");
    await svc.replayDelivery(partner.id, ep.id, dead.id);
    await expect(svc.replayDelivery(partner.id, ep.id, dead.id)).rejects.toMatchObject({ code: "delivery-pending", status: 409 });
  });

  it("does not follow redirects: a 3xx is a failed attempt", async () => {
    await start({ WEBHOOK_RETRY_SCHEDULE: "20ms" });
    const partner = await createPartner(t.db);
    const elsewhere = await receiver();
    const rx = await receiver(() => ({ status: 307, headers: { location: elsewhere.url } }));
    const ep = await svc.createEndpoint(partner.id, { url: rx.url, event_types: ["*"] });
    await emit(partner.id);
    await until(async () => (await deliveriesOf(ep.id))[0]?.status === "dead", { what: "the redirect to fail" });
    expect(rx.received).toHaveLength(2);
    expect(elsewhere.received).toHaveLength(0);
    const [d] = await deliveriesOf(ep.id);
    const log = (await svc.getDelivery(partner.id, ep.id, d.id)).attempts;
    expect(log.map((a) => [a.outcome, a.http_status])).toEqual([
      ["redirect", 307],
      ["redirect", 307],
    ]);
  });

  it("gives up on an attempt at its deadline and retries", async () => {
    await start({ WEBHOOK_TIMEOUT_MS: "300", WEBHOOK_RETRY_SCHEDULE: "50ms" });
    const partner = await createPartner(t.db);
    const rx = await receiver((_r, n) => (n === 1 ? "hang" : { status: 200 }));
    const ep = await svc.createEndpoint(partner.id, { url: rx.url, event_types: ["*"] });
    await emit(partner.id);
    await until(async () => (await deliveriesOf(ep.id))[0]?.status === "delivered", { what: "delivery after a timeout" });
    const [d] = await deliveriesOf(ep.id);
    const log = (await svc.getDelivery(partner.id, ep.id, d.id)).attempts;
    expect(log.map((a) => a.outcome)).toEqual(["timeout", "delivered"]);
    expect(log[0]!.latency_ms).toBeGreaterThanOrEqual(290);
  });
});

describe.runIf(process.env.REDIS_URL)("webhook delivery with Redis cut off", () => {
  it("delays deliveries while Redis is down and loses none", async () => {
    const redis = new URL(process.env.REDIS_URL!);
    const proxy = await startTcpProxy({ host: redis.hostname, port: Number(redis.port || 6379) });
    const log = createLogger(process.env.TEST_LOG_LEVEL ?? "silent");
    const queue = createBullmqQueue(`redis://127.0.0.1:${proxy.port}`, log, { prefix: `whfault${Date.now()}` });
    const db = await createTestDb();
    const deps = { config: testConfig({ WEBHOOK_ALLOW_LOOPBACK: "true", OUTBOX_POLL_MS: "20", WEBHOOK_RETRY_SCHEDULE: "100ms,200ms,400ms,800ms,1s,1s,1s,1s,1s,1s" }), db, queue, log, clock: systemClock };
    const hub = createHub(deps);
    const local = createWebhooksService(deps);
    const rx = await receiver();
    hub.startWorkers();
    try {
      const partner = await createPartner(db);
      const ep = await local.createEndpoint(partner.id, { url: rx.url, event_types: ["*"] });
      const record = (i: number) => db.transaction((trx) => recordEvent(trx, { type: "earn.posted", partnerId: partner.id, occurredAt: new Date(), data: { i } }));
      const ids = [await record(0), await record(1)];
      await until(() => rx.received.length === 2, { what: "deliveries before the cut" });

      await proxy.cut();
      for (let i = 2; i < 8; i++) ids.push(await record(i));
      await new Promise((r) => setTimeout(r, 1_000));
      expect(rx.received).toHaveLength(2); // nothing moves without the queue…
      expect(await hub.relay.pending()).toBeGreaterThanOrEqual(6); // …but every dispatch is kept

      await proxy.restore();
      await until(async () => (await db("webhook_deliveries").where({ endpoint_id: ep.id, status: "delivered" })).length === 8, { what: "every delivery after Redis is back", timeoutMs: 30_000 });
      await new Promise((r) => setTimeout(r, 300));
      const counts = rx.countsById();
      expect([...counts.keys()].sort()).toEqual([...ids].sort());
      expect([...counts.values()].every((n) => n === 1)).toBe(true);
    } finally {
      await hub.stopWorkers();
      await hub.close();
      await queue.close();
      await proxy.close();
      await db.destroy();
    }
  });
});
