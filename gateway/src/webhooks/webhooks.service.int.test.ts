import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, testConfig } from "../../../test/harness.ts";
import { startReceiver, type Receiver } from "../../../test/webhook-receiver.ts";
import { createPartner } from "../../../test/factories/network.ts";
import { createLogger } from "../infra/logger.ts";
import { systemClock } from "../infra/clock.ts";
import type { Db } from "../infra/db.ts";
import { createMemoryQueue } from "../infra/queue/memory.queue.ts";
import { recordEvent } from "../events/events.service.ts";
import { createWebhooksService } from "./webhooks.service.ts";
import type { ResolvedAddress } from "./ssrf.ts";

/**
 * The delivery service driven by hand (no workers): each test calls dispatch / deliver / sweep
 * itself, as a worker would, to pin down what happens between the steps.
 */
let db: Db;
let rx: Receiver;
const log = createLogger("silent");

beforeAll(async () => {
  db = await createTestDb();
  rx = await startReceiver();
});
afterAll(async () => {
  await rx.close();
  await db.destroy();
});

const config = (o: Record<string, string> = {}) => testConfig({ WEBHOOK_ALLOW_LOOPBACK: "true", WEBHOOK_RETRY_SCHEDULE: "10ms,10ms", ...o });

async function setup(svc = createWebhooksService({ db, clock: systemClock, log, config: config() })) {
  const partner = await createPartner(db);
  const ep = await svc.createEndpoint(partner.id, { url: rx.url, event_types: ["*"] });
  const eventId = await db.transaction((trx) => recordEvent(trx, { type: "earn.posted", partnerId: partner.id, occurredAt: new Date(), data: { earn_id: "ern_1" } }));
  return { svc, partner, ep, eventId };
}

const deliveriesOf = (endpointId: string) => db("webhook_deliveries").where({ endpoint_id: endpointId });
const outboxJobs = (deliveryId: string) => db("outbox").where("queue", "webhooks.deliver").andWhereRaw("payload->>'deliveryId' = ?", [deliveryId]).orderBy("id");

describe("webhooks service", () => {
  it("fans an event out once, however often dispatch runs", async () => {
    const { svc, ep, eventId } = await setup();
    expect(await svc.dispatch(eventId)).toBe(1);
    expect(await svc.dispatch(eventId)).toBe(0);
    const ds = await deliveriesOf(ep.id);
    expect(ds).toHaveLength(1);
    const jobs = await outboxJobs(ds[0].id);
    expect(jobs.map((j) => j.job_id)).toEqual([`whd:${ds[0].id}:1`]);
  });

  it("makes one request when the same attempt's job runs twice, even at once", async () => {
    const { svc, ep, eventId } = await setup();
    await svc.dispatch(eventId);
    const [d] = await deliveriesOf(ep.id);
    const before = rx.received.length;
    await Promise.all([svc.deliver(d.id, 1), svc.deliver(d.id, 1), svc.deliver(d.id, 1)]);
    await svc.deliver(d.id, 1); // a late duplicate
    expect(rx.received.length - before).toBe(1);
    expect(await deliveriesOf(ep.id)).toMatchObject([{ status: "delivered", attempts: 1 }]);
  });

  it("schedules the next attempt through the outbox with jitter around the configured delay", async () => {
    const svc = createWebhooksService({ db, clock: systemClock, log, config: config({ WEBHOOK_RETRY_SCHEDULE: "5m,30m" }), random: () => 1 });
    const { ep, eventId } = await setup(svc);
    rx.answer(() => ({ status: 500 }));
    try {
      await svc.dispatch(eventId);
      const [d] = await deliveriesOf(ep.id);
      const t0 = Date.now();
      expect(await svc.deliver(d.id, 1)).toMatchObject({ outcome: "http-error", httpStatus: 500 });
      const [after] = await deliveriesOf(ep.id);
      expect(after).toMatchObject({ status: "pending", attempts: 1, last_http_status: 500 });
      // random() = 1 is the top of the ±15% jitter: 5 minutes × 1.15.
      expect(new Date(after.next_attempt_at).getTime() - t0).toBeGreaterThanOrEqual(345_000 - 50);
      expect(new Date(after.next_attempt_at).getTime() - t0).toBeLessThanOrEqual(345_000 + 2_000);
      const jobs = await outboxJobs(d.id);
      expect(jobs.map((j) => j.job_id)).toEqual([`whd:${d.id}:1`, `whd:${d.id}:2`]);
      expect(new Date(jobs[1].available_at).getTime()).toBeGreaterThan(Date.now() + 300_000);
      // The job of an attempt already made does nothing.
      expect(await svc.deliver(d.id, 1)).toBeUndefined();
      expect(svc.retryDelay(2)).toBe(Math.round(30 * 60_000 * 1.15));
    } finally {
      rx.answer(() => ({ status: 200 }));
    }
  });

  it("waits as long as a 429's Retry-After asks when that is longer than the schedule", async () => {
    const { svc, ep, eventId } = await setup();
    rx.answer(() => ({ status: 429, headers: { "retry-after": "120" } }));
    try {
      await svc.dispatch(eventId);
      const [d] = await deliveriesOf(ep.id);
      const t0 = Date.now();
      expect(await svc.deliver(d.id, 1)).toMatchObject({ outcome: "http-error", httpStatus: 429, retryAfterMs: 120_000 });
      const [after] = await deliveriesOf(ep.id);
      expect(new Date(after.next_attempt_at).getTime() - t0).toBeGreaterThanOrEqual(119_000);
      expect(new Date(after.next_attempt_at).getTime() - t0).toBeLessThan(125_000);
    } finally {
      rx.answer(() => ({ status: 200 }));
    }
  });

  it("re-checks DNS at every attempt: a name that now resolves to loopback is refused, nothing is sent", async () => {
    let answer: ResolvedAddress[] = [{ address: "93.184.216.34", family: 4 }];
    const svc = createWebhooksService({ db, clock: systemClock, log, config: testConfig({ WEBHOOK_RETRY_SCHEDULE: "10ms" }), resolve: async () => answer });
    const partner = await createPartner(db);
    const ep = await svc.createEndpoint(partner.id, { url: `https://hooks.partner.test:${rx.port}/hooks`, event_types: ["*"] });
    answer = [{ address: "127.0.0.1", family: 4 }]; // DNS rebinding after registration
    const eventId = await db.transaction((trx) => recordEvent(trx, { type: "earn.posted", partnerId: partner.id, occurredAt: new Date(), data: {} }));
    await svc.dispatch(eventId);
    const [d] = await deliveriesOf(ep.id);
    const before = rx.received.length;
    expect(await svc.deliver(d.id, 1)).toMatchObject({ outcome: "refused", httpStatus: null });
    expect(rx.received.length).toBe(before);
    const detail = await svc.getDelivery(partner.id, ep.id, d.id);
    expect(detail.attempts[0]).toMatchObject({ outcome: "refused", error: expect.stringContaining("loopback") });
    expect(detail.status).toBe("pending"); // refused attempts retry: the partner may fix its DNS
  });

  it("refuses at registration a name that resolves to a private address", async () => {
    const svc = createWebhooksService({ db, clock: systemClock, log, config: testConfig(), resolve: async () => [{ address: "10.20.30.40", family: 4 }] });
    const partner = await createPartner(db);
    await expect(svc.createEndpoint(partner.id, { url: "https://intranet.partner.test/hooks", event_types: ["*"] })).rejects.toMatchObject({ status: 422, code: "destination-refused", extensions: { reason: "address-not-allowed" } });
  });

  it("finds deliveries whose job was lost and enqueues them again", async () => {
    const svc = createWebhooksService({ db, clock: systemClock, log, config: config(), sweepGraceMs: 0 });
    const { ep, eventId } = await setup(svc);
    await svc.dispatch(eventId);
    const [d] = await deliveriesOf(ep.id);
    // The outbox row was relayed and the job vanished (a queue wiped, a worker killed mid-attempt).
    await db("outbox").where("queue", "webhooks.deliver").update({ relayed_at: db.fn.now() });
    // Earlier tests' pending deliveries are not this test's business.
    await db("webhook_deliveries").whereNot("endpoint_id", ep.id).andWhere("status", "pending").update({ status: "dead" });
    await new Promise((r) => setTimeout(r, 5));
    const queue = createMemoryQueue(log);
    const ran: Array<{ deliveryId: string; attempt: number }> = [];
    queue.process("webhooks.deliver", async (job) => {
      ran.push(job.data);
      await svc.deliver(job.data.deliveryId, job.data.attempt);
    });
    expect(await svc.sweep(queue)).toBeGreaterThanOrEqual(1);
    await new Promise((r) => setTimeout(r, 50));
    await queue.drain();
    expect(ran).toEqual([{ deliveryId: d.id, attempt: 1 }]);
    expect((await deliveriesOf(ep.id))[0].status).toBe("delivered");
    // A delivery being sent right now (leased) is left alone.
    expect(await svc.sweep(queue)).toBe(0);
    await queue.close();
  });

  it("fans out an event whose dispatch job was lost", async () => {
    const svc = createWebhooksService({ db, clock: systemClock, log, config: config(), sweepGraceMs: 0 });
    const { ep, eventId } = await setup(svc);
    // Relayed, then gone: an in-process queue in a crash, or a Redis that lost its data.
    await db("outbox").where("queue", "events.dispatch").update({ relayed_at: db.fn.now() });
    expect(await deliveriesOf(ep.id)).toHaveLength(0);
    await new Promise((r) => setTimeout(r, 5));
    const queue = createMemoryQueue(log);
    queue.process("webhooks.deliver", async (job) => {
      await svc.deliver(job.data.deliveryId, job.data.attempt);
    });
    await svc.sweep(queue);
    expect(await db("webhook_dispatches").where({ event_id: eventId })).toMatchObject([{ deliveries: 1 }]);
    const [d] = await deliveriesOf(ep.id);
    expect(d.event_id).toBe(eventId);
    // The sweep marked it: the next one leaves it alone, and so does a late dispatch job.
    await svc.sweep(queue);
    expect(await svc.dispatch(eventId)).toBe(0);
    expect(await deliveriesOf(ep.id)).toHaveLength(1);
    await queue.close();
  });

  it("sends nothing to a disabled endpoint: its pending deliveries die", async () => {
    const { svc, partner, ep, eventId } = await setup();
    await svc.dispatch(eventId);
    await svc.updateEndpoint(partner.id, ep.id, { enabled: false });
    const [d] = await deliveriesOf(ep.id);
    const before = rx.received.length;
    expect(await svc.deliver(d.id, 1)).toBeUndefined();
    expect(rx.received.length).toBe(before);
    expect(await deliveriesOf(ep.id)).toMatchObject([{ status: "dead", last_error: "endpoint disabled" }]);
    await expect(svc.replayDelivery(partner.id, ep.id, d.id)).rejects.toMatchObject({ code: "endpoint-disabled" });
  });
});
