import type { Config } from "../config/config.ts";
import type { Db } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";
import type { Logger } from "../infra/logger.ts";
import { newId } from "../infra/ids.ts";
import { enqueueInTx } from "../infra/outbox/outbox.ts";
import type { JobQueue } from "../infra/queue/queue.types.ts";
import { validationError } from "../http/problem.ts";
import { decodeCursor, encodeCursor } from "../http/cursor.ts";
import { EVENT_TYPES } from "../events/events.service.ts";
import { webhooksDal, type AttemptRow, type DeliveryRow, type DeliveryStatus, type EndpointRow } from "./webhooks.dal.ts";
import { webhookErrors } from "./webhooks.errors.ts";
import { generateSecret, signatureHeader } from "./signing.ts";
import { DestinationRefused, vetDestination, type Resolver } from "./ssrf.ts";
import { postWebhook, type AttemptResult } from "./sender.ts";

export const MAX_ENDPOINTS_PER_PARTNER = 20;
export const DEFAULT_SECRET_OVERLAP_SECONDS = 24 * 3600;
const JITTER = 0.15;
const MAX_RETRY_AFTER_MS = 86_400_000;
const SWEEP_EVENTS_WINDOW_MS = 7 * 86_400_000;

export interface WebhooksServiceDeps {
  db: Db;
  clock: Clock;
  log: Logger;
  config: Pick<Config, "WEBHOOK_ALLOW_LOOPBACK" | "WEBHOOK_TIMEOUT_MS" | "WEBHOOK_RETRY_SCHEDULE">;
  /** DNS for the SSRF checks; the system resolver unless a test plays a hostile one. */
  resolve?: Resolver;
  /** Jitter's source of randomness, in [0, 1). */
  random?: () => number;
  /** Called after a transaction wrote outbox jobs, so the relay looks now rather than at its next tick. */
  onEnqueued?: () => void;
  /** How late a pending delivery must be before the sweep re-enqueues it (its job was lost). */
  sweepGraceMs?: number;
}

export interface EndpointInput {
  url: string;
  event_types: string[];
  description?: string | null;
  enabled?: boolean;
}

export function endpointView(e: EndpointRow) {
  return {
    id: e.id,
    url: e.url,
    description: e.description,
    event_types: e.event_types,
    enabled: e.enabled,
    disabled_reason: e.disabled_reason,
    previous_secret_expires_at: e.previous_secret_expires_at?.toISOString() ?? null,
    created_at: e.created_at.toISOString(),
    updated_at: e.updated_at.toISOString(),
  };
}

export function deliveryView(d: DeliveryRow & { event_type: string }) {
  return {
    id: d.id,
    endpoint_id: d.endpoint_id,
    event_id: d.event_id,
    event_type: d.event_type,
    status: d.status,
    attempt_count: d.attempts,
    replays: d.replays,
    next_attempt_at: d.status === "pending" ? (d.next_attempt_at?.toISOString() ?? null) : null,
    last_attempt_at: d.last_attempt_at?.toISOString() ?? null,
    last_http_status: d.last_http_status,
    last_error: d.last_error,
    delivered_at: d.delivered_at?.toISOString() ?? null,
    dead_at: d.dead_at?.toISOString() ?? null,
    created_at: d.created_at.toISOString(),
  };
}

export function attemptView(a: AttemptRow) {
  return {
    attempt: a.attempt,
    started_at: a.started_at.toISOString(),
    latency_ms: a.latency_ms,
    outcome: a.outcome,
    http_status: a.http_status,
    response_excerpt: a.response_excerpt,
    error: a.error,
  };
}


/**
 * Webhook endpoints and the delivery of events to them. The delivery rows are the truth: a queue
 * job only says "look at delivery X for attempt N"; the worker re-reads the row under a lock and
 * acts only if that attempt is still due. So a duplicate job is harmless, and a lost one is found
 * again by the sweep.
 */
export function createWebhooksService(deps: WebhooksServiceDeps) {
  const { db, clock, log, config } = deps;
  const schedule = config.WEBHOOK_RETRY_SCHEDULE;
  const random = deps.random ?? Math.random;
  const vetOpts = { allowLoopback: config.WEBHOOK_ALLOW_LOOPBACK, ...(deps.resolve ? { resolve: deps.resolve } : {}) };
  const sweepGraceMs = deps.sweepGraceMs ?? config.WEBHOOK_TIMEOUT_MS + 60_000;
  const nudge = () => deps.onEnqueued?.();

  async function vet(url: string) {
    try {
      return await vetDestination(url, vetOpts);
    } catch (err) {
      if (err instanceof DestinationRefused) throw webhookErrors.make("destination-refused", err.message, { reason: err.reason });
      throw err;
    }
  }

  function checkTypes(types: string[]) {
    const known = new Set<string>([...EVENT_TYPES, "*"]);
    const bad = types.map((t, i) => ({ t, i })).filter(({ t }) => !known.has(t));
    if (bad.length > 0) throw validationError(bad.map(({ t, i }) => ({ field: `body/event_types/${i}`, reason: `${t} is not an event type` })));
    return [...new Set(types)];
  }

  /** The wait before attempt `n + 1` after attempt `n` failed, with jitter. */
  function retryDelay(n: number): number {
    const base = schedule[n - 1]!;
    return Math.round(base * (1 - JITTER + 2 * JITTER * random()));
  }

  function secretsInForce(e: EndpointRow, now: Date): string[] {
    return e.previous_secret && e.previous_secret_expires_at && e.previous_secret_expires_at > now ? [e.secret, e.previous_secret] : [e.secret];
  }

  async function ownEndpoint(partnerId: string, id: string) {
    const e = await webhooksDal.findEndpoint(partnerId, id, db);
    if (!e) throw webhookErrors.make("webhook-endpoint-not-found", `No webhook endpoint ${id}.`);
    return e;
  }

  return {
    retryDelay,

    async createEndpoint(partnerId: string, input: EndpointInput) {
      const event_types = checkTypes(input.event_types);
      await vet(input.url);
      return db.transaction(async (trx) => {
        // Serialise creations per partner so the limit holds under concurrency.
        await trx.raw("SELECT pg_advisory_xact_lock(hashtext(?))", [`webhook_endpoints:${partnerId}`]);
        if ((await webhooksDal.countEndpoints(partnerId, trx)) >= MAX_ENDPOINTS_PER_PARTNER) {
          throw webhookErrors.make("too-many-endpoints", `A partner may have ${MAX_ENDPOINTS_PER_PARTNER} webhook endpoints.`);
        }
        const secret = generateSecret();
        const e = await webhooksDal.insertEndpoint(
          { id: newId("whe"), partner_id: partnerId, url: input.url, description: input.description ?? null, event_types, enabled: input.enabled ?? true, secret },
          trx,
        );
        return { ...endpointView(e), secret };
      });
    },

    async listEndpoints(partnerId: string) {
      return (await webhooksDal.listEndpoints(partnerId, db)).map(endpointView);
    },

    async getEndpoint(partnerId: string, id: string) {
      return endpointView(await ownEndpoint(partnerId, id));
    },

    async updateEndpoint(partnerId: string, id: string, input: Partial<EndpointInput>) {
      const patch: Partial<EndpointRow> = {};
      if (input.event_types !== undefined) patch.event_types = checkTypes(input.event_types);
      if (input.url !== undefined) {
        await vet(input.url);
        patch.url = input.url;
      }
      if (input.description !== undefined) patch.description = input.description;
      if (input.enabled !== undefined) {
        patch.enabled = input.enabled;
        patch.disabled_reason = null;
      }
      return db.transaction(async (trx) => {
        const e = await webhooksDal.findEndpoint(partnerId, id, trx, { lock: true });
        if (!e) throw webhookErrors.make("webhook-endpoint-not-found", `No webhook endpoint ${id}.`);
        return endpointView(await webhooksDal.updateEndpoint(id, patch, trx));
      });
    },

    async deleteEndpoint(partnerId: string, id: string) {
      const gone = await db.transaction((trx) => webhooksDal.deleteEndpoint(partnerId, id, trx));
      if (!gone) throw webhookErrors.make("webhook-endpoint-not-found", `No webhook endpoint ${id}.`);
    },

    /**
     * A new secret signs from now on; the old one keeps signing alongside it for `overlapSeconds`
     * so the partner can deploy the new secret without losing a message. A second rotation within
     * the overlap retires the oldest secret at once.
     */
    async rotateSecret(partnerId: string, id: string, overlapSeconds = DEFAULT_SECRET_OVERLAP_SECONDS) {
      return db.transaction(async (trx) => {
        const e = await webhooksDal.findEndpoint(partnerId, id, trx, { lock: true });
        if (!e) throw webhookErrors.make("webhook-endpoint-not-found", `No webhook endpoint ${id}.`);
        const secret = generateSecret();
        const until = overlapSeconds > 0 ? new Date(clock.now().getTime() + overlapSeconds * 1000) : null;
        const updated = await webhooksDal.updateEndpoint(id, { secret, previous_secret: until ? e.secret : null, previous_secret_expires_at: until }, trx);
        return { ...endpointView(updated), secret };
      });
    },

    async listDeliveries(partnerId: string, endpointId: string, opts: { status?: DeliveryStatus; cursor?: string; limit?: number } = {}) {
      await ownEndpoint(partnerId, endpointId);
      const limit = opts.limit ?? 50;
      const rows = await webhooksDal.listDeliveries(
        endpointId,
        { limit: limit + 1, ...(opts.status ? { status: opts.status } : {}), ...(opts.cursor ? { before: decodeCursor(opts.cursor, /^whd_[0-9a-z]{26}$/) } : {}) },
        db,
      );
      const page = rows.slice(0, limit);
      return { items: page.map(deliveryView), next_cursor: rows.length > limit ? encodeCursor(page[page.length - 1]!.id) : null };
    },

    async getDelivery(partnerId: string, endpointId: string, deliveryId: string) {
      const d = await webhooksDal.findDelivery(partnerId, endpointId, deliveryId, db);
      if (!d) throw webhookErrors.make("webhook-delivery-not-found", `No delivery ${deliveryId} for endpoint ${endpointId}.`);
      const attempts = await webhooksDal.listAttempts(deliveryId, db);
      return { ...deliveryView(d), attempts: attempts.map(attemptView) };
    },

    /**
     * Sends a delivered or dead-lettered message once more, now, with the same webhook-id (the
     * receiver's de-duplication key). A replay is a single attempt: if it fails the delivery is
     * dead again and the partner decides whether to replay once more.
     */
    async replayDelivery(partnerId: string, endpointId: string, deliveryId: string) {
      await db.transaction(async (trx) => {
        const e = await webhooksDal.findEndpoint(partnerId, endpointId, trx);
        const d = e ? await webhooksDal.lockDelivery(deliveryId, trx) : undefined;
        if (!e || !d || d.endpoint_id !== endpointId) throw webhookErrors.make("webhook-delivery-not-found", `No delivery ${deliveryId} for endpoint ${endpointId}.`);
        if (!e.enabled) throw webhookErrors.make("endpoint-disabled", `Enable endpoint ${endpointId} before replaying its deliveries.`);
        if (d.status === "pending") throw webhookErrors.make("delivery-pending", `Delivery ${deliveryId} is still scheduled (next attempt ${d.next_attempt_at?.toISOString()}).`);
        const attempt = d.attempts + 1;
        await webhooksDal.updateDelivery(deliveryId, { status: "pending", max_attempts: attempt, replays: d.replays + 1, next_attempt_at: clock.now(), dead_at: null }, trx);
        await enqueueInTx(trx, "webhooks.deliver", { deliveryId, attempt }, { jobId: `whd:${deliveryId}:${attempt}` });
      });
      nudge();
      return this.getDelivery(partnerId, endpointId, deliveryId);
    },

    /** Fans one committed event out: a delivery per enabled endpoint of its partner subscribed to its type. */
    async dispatch(eventId: string) {
      const created = await db.transaction(async (trx) => {
        const ev = await trx("events").where({ id: eventId }).first("id", "type", "partner_id");
        if (!ev?.partner_id) return 0;
        // Taken first: a concurrent dispatch of the same event waits here, then finds it marked.
        if (!(await webhooksDal.markDispatched(eventId, 0, trx))) return 0;
        let n = 0;
        for (const { id: endpointId } of await webhooksDal.subscribedEndpoints(ev.partner_id, ev.type, trx)) {
          const id = newId("whd");
          const inserted = await webhooksDal.insertDelivery(
            { id, endpoint_id: endpointId, event_id: eventId, partner_id: ev.partner_id, max_attempts: schedule.length + 1, next_attempt_at: clock.now() },
            trx,
          );
          if (!inserted) continue; // a duplicate dispatch job: this pair already has its delivery
          await enqueueInTx(trx, "webhooks.deliver", { deliveryId: id, attempt: 1 }, { jobId: `whd:${id}:1` });
          n++;
        }
        if (n > 0) await trx("webhook_dispatches").where({ event_id: eventId }).update({ deliveries: n });
        return n;
      });
      if (created > 0) nudge();
      return created;
    },

    /** Makes attempt `attempt` of a delivery, if that attempt is still what the row is waiting for. */
    async deliver(deliveryId: string, attempt: number): Promise<AttemptResult | undefined> {
      const claimed = await db.transaction(async (trx) => {
        const d = await webhooksDal.lockDelivery(deliveryId, trx, { skipLocked: true });
        const now = clock.now();
        if (!d || d.status !== "pending" || d.attempts + 1 !== attempt) return undefined;
        if (d.lease_until && d.lease_until > now) return undefined;
        const e = (await webhooksDal.findEndpointById(d.endpoint_id, trx))!;
        if (!e.enabled) {
          await webhooksDal.updateDelivery(deliveryId, { status: "dead", dead_at: now, next_attempt_at: null, last_error: "endpoint disabled" }, trx);
          return undefined;
        }
        // The lease outlives the attempt's deadline, so no other worker sends while this one waits.
        await webhooksDal.updateDelivery(deliveryId, { lease_until: new Date(now.getTime() + config.WEBHOOK_TIMEOUT_MS + 30_000) }, trx);
        const ev = await trx("events").where({ id: d.event_id }).first("id", "type", "occurred_at", "data");
        return { d, e, ev };
      });
      if (!claimed) return undefined;
      const { e, ev } = claimed;

      const occurredAt = ev.occurred_at instanceof Date ? ev.occurred_at : new Date(ev.occurred_at);
      const body = JSON.stringify({ type: ev.type, timestamp: occurredAt.toISOString(), data: typeof ev.data === "string" ? JSON.parse(ev.data) : ev.data });
      const startedAt = clock.now();
      const timestamp = Math.floor(startedAt.getTime() / 1000);
      const headers = {
        "webhook-id": ev.id as string,
        "webhook-timestamp": String(timestamp),
        "webhook-signature": signatureHeader(secretsInForce(e, startedAt), ev.id, timestamp, body),
        "user-agent": "CoalitionLoyaltyHub-Webhooks/1",
      };
      let result: AttemptResult;
      try {
        // Vetted again at every attempt: DNS may have changed since registration.
        const dest = await vetDestination(e.url, vetOpts);
        result = await postWebhook(dest, headers, body, config.WEBHOOK_TIMEOUT_MS);
      } catch (err) {
        if (!(err instanceof DestinationRefused)) throw err;
        result = { outcome: "refused", httpStatus: null, latencyMs: 0, excerpt: null, error: err.message };
      }

      const enqueued = await db.transaction(async (trx) => {
        const d = await webhooksDal.lockDelivery(deliveryId, trx);
        if (!d || d.status !== "pending" || d.attempts + 1 !== attempt) return false;
        const now = clock.now();
        await webhooksDal.insertAttempt(
          {
            delivery_id: deliveryId,
            attempt,
            started_at: startedAt,
            latency_ms: result.latencyMs,
            outcome: result.outcome,
            http_status: result.httpStatus,
            response_excerpt: result.excerpt,
            error: result.error,
          },
          trx,
        );
        const common = { attempts: attempt, lease_until: null, last_attempt_at: startedAt, last_http_status: result.httpStatus, last_error: result.error ?? (result.outcome === "delivered" ? null : `${result.outcome}${result.httpStatus ? ` ${result.httpStatus}` : ""}`) };
        if (result.outcome === "delivered") {
          await webhooksDal.updateDelivery(deliveryId, { ...common, status: "delivered", delivered_at: now, next_attempt_at: null }, trx);
          return false;
        }
        if (result.outcome === "gone") {
          // 410 Gone: the partner took the endpoint down on purpose. Stop sending to it at all.
          await webhooksDal.updateEndpoint(d.endpoint_id, { enabled: false, disabled_reason: "gone" }, trx);
          await webhooksDal.updateDelivery(deliveryId, { ...common, status: "dead", dead_at: now, next_attempt_at: null }, trx);
          log.warn({ endpointId: d.endpoint_id, deliveryId }, "webhook endpoint answered 410 Gone; disabled");
          return false;
        }
        if (attempt >= d.max_attempts) {
          await webhooksDal.updateDelivery(deliveryId, { ...common, status: "dead", dead_at: now, next_attempt_at: null }, trx);
          log.warn({ endpointId: d.endpoint_id, deliveryId, attempts: attempt }, "webhook delivery dead-lettered after its last attempt");
          return false;
        }
        // A receiver that says when to come back (429/503 Retry-After) is believed, up to a day.
        const delayMs = Math.max(retryDelay(attempt), Math.min(result.retryAfterMs ?? 0, MAX_RETRY_AFTER_MS));
        await webhooksDal.updateDelivery(deliveryId, { ...common, next_attempt_at: new Date(now.getTime() + delayMs) }, trx);
        await enqueueInTx(trx, "webhooks.deliver", { deliveryId, attempt: attempt + 1 }, { jobId: `whd:${deliveryId}:${attempt + 1}`, delayMs });
        return true;
      });
      if (enqueued) nudge();
      return result;
    },

    /**
     * Finds pending deliveries well past their time and not being sent (their job was lost: a
     * worker crashed mid-attempt, or the queue lost its data) and enqueues them again.
     */
    async sweep(queue: Pick<JobQueue, "add">, limit = 500): Promise<number> {
      const now = clock.now();
      // Events whose events.dispatch job was lost: fan them out here (the last week is searched).
      const lost = await webhooksDal.undispatchedEvents(new Date(now.getTime() - SWEEP_EVENTS_WINDOW_MS), new Date(now.getTime() - sweepGraceMs), limit, db);
      for (const eventId of lost) await this.dispatch(eventId);
      if (lost.length > 0) log.info({ events: lost.length }, "webhook sweep dispatched events whose job was lost");
      const due = await webhooksDal.overdueDeliveries(new Date(now.getTime() - sweepGraceMs), now, limit, db);
      let n = 0;
      for (const d of due) {
        const attempt = d.attempts + 1;
        try {
          // A job id of its own: the original id may still be remembered by the queue as done.
          await queue.add("webhooks.deliver", { deliveryId: d.id, attempt }, { jobId: `whd:${d.id}:${attempt}:sweep:${now.getTime()}` });
          n++;
        } catch (err) {
          log.warn({ err: (err as Error).message }, "webhook sweep cannot reach the queue; will retry");
          break;
        }
      }
      if (n > 0) log.info({ requeued: n }, "webhook sweep re-enqueued overdue deliveries");
      return n;
    },
  };
}

export type WebhooksService = ReturnType<typeof createWebhooksService>;
