import type { DbOrTrx } from "../infra/db.ts";
import type { AttemptOutcome } from "./sender.ts";

export interface EndpointRow {
  id: string;
  partner_id: string;
  url: string;
  description: string | null;
  event_types: string[];
  enabled: boolean;
  disabled_reason: "gone" | null;
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export type DeliveryStatus = "pending" | "delivered" | "dead";

export interface DeliveryRow {
  id: string;
  endpoint_id: string;
  event_id: string;
  partner_id: string;
  status: DeliveryStatus;
  attempts: number;
  max_attempts: number;
  replays: number;
  next_attempt_at: Date | null;
  lease_until: Date | null;
  last_attempt_at: Date | null;
  last_http_status: number | null;
  last_error: string | null;
  delivered_at: Date | null;
  dead_at: Date | null;
  created_at: Date;
}

export interface AttemptRow {
  delivery_id: string;
  attempt: number;
  started_at: Date;
  latency_ms: number;
  outcome: AttemptOutcome;
  http_status: number | null;
  response_excerpt: string | null;
  error: string | null;
}

const ts = (v: unknown): Date | null => (v === null || v === undefined ? null : v instanceof Date ? v : new Date(String(v)));

function endpointFrom(r: Record<string, unknown>): EndpointRow {
  return {
    ...(r as unknown as EndpointRow),
    event_types: typeof r.event_types === "string" ? (JSON.parse(r.event_types) as string[]) : (r.event_types as string[]),
    previous_secret_expires_at: ts(r.previous_secret_expires_at),
    created_at: ts(r.created_at)!,
    updated_at: ts(r.updated_at)!,
  };
}

function deliveryFrom(r: Record<string, unknown>): DeliveryRow {
  return {
    ...(r as unknown as DeliveryRow),
    next_attempt_at: ts(r.next_attempt_at),
    lease_until: ts(r.lease_until),
    last_attempt_at: ts(r.last_attempt_at),
    delivered_at: ts(r.delivered_at),
    dead_at: ts(r.dead_at),
    created_at: ts(r.created_at)!,
  };
}

export const webhooksDal = {
  async insertEndpoint(row: Omit<EndpointRow, "created_at" | "updated_at" | "previous_secret" | "previous_secret_expires_at" | "disabled_reason">, trx: DbOrTrx) {
    const [r] = await trx("webhook_endpoints")
      .insert({ ...row, event_types: JSON.stringify(row.event_types) })
      .returning("*");
    return endpointFrom(r);
  },
  async findEndpoint(partnerId: string, id: string, trx: DbOrTrx, opts: { lock?: boolean } = {}) {
    const q = trx("webhook_endpoints").where({ id, partner_id: partnerId }).first();
    const r = await (opts.lock ? q.forUpdate() : q);
    return r ? endpointFrom(r) : undefined;
  },
  async findEndpointById(id: string, trx: DbOrTrx) {
    const r = await trx("webhook_endpoints").where({ id }).first();
    return r ? endpointFrom(r) : undefined;
  },
  async listEndpoints(partnerId: string, trx: DbOrTrx) {
    const rows = await trx("webhook_endpoints").where({ partner_id: partnerId }).orderBy("id");
    return rows.map(endpointFrom);
  },
  async countEndpoints(partnerId: string, trx: DbOrTrx): Promise<number> {
    const r = await trx("webhook_endpoints").where({ partner_id: partnerId }).count<{ n: bigint }[]>({ n: "*" }).first();
    return Number(r?.n ?? 0);
  },
  async updateEndpoint(id: string, patch: Partial<Omit<EndpointRow, "id" | "partner_id" | "created_at">>, trx: DbOrTrx) {
    const values: Record<string, unknown> = { ...patch, updated_at: trx.fn.now() };
    if (patch.event_types) values.event_types = JSON.stringify(patch.event_types);
    const [r] = await trx("webhook_endpoints").where({ id }).update(values).returning("*");
    return endpointFrom(r);
  },
  async deleteEndpoint(partnerId: string, id: string, trx: DbOrTrx): Promise<boolean> {
    // Its deliveries and their attempts go with it (ON DELETE CASCADE).
    const gone = await trx("webhook_endpoints").where({ id, partner_id: partnerId }).delete().returning("id");
    return gone.length > 0;
  },
  /** Enabled endpoints of the partner subscribed to the type (or to everything, "*"). */
  async subscribedEndpoints(partnerId: string, type: string, trx: DbOrTrx): Promise<Array<{ id: string }>> {
    return trx("webhook_endpoints")
      .where({ partner_id: partnerId, enabled: true })
      .andWhere((q) => q.whereRaw("event_types @> ?::jsonb", [JSON.stringify([type])]).orWhereRaw(`event_types @> '["*"]'::jsonb`))
      .orderBy("id")
      .select("id");
  },
  /** Inserts the delivery unless the (event, endpoint) pair has one; true when inserted. */
  async insertDelivery(row: Pick<DeliveryRow, "id" | "endpoint_id" | "event_id" | "partner_id" | "max_attempts" | "next_attempt_at">, trx: DbOrTrx): Promise<boolean> {
    const r = await trx("webhook_deliveries").insert(row).onConflict(["event_id", "endpoint_id"]).ignore().returning("id");
    return r.length > 0;
  },
  /** The delivery, locked; undefined when absent or when another worker holds it (SKIP LOCKED). */
  async lockDelivery(id: string, trx: DbOrTrx, opts: { skipLocked?: boolean } = {}) {
    const q = trx("webhook_deliveries").where({ id }).first().forUpdate();
    const r = await (opts.skipLocked ? q.skipLocked() : q);
    return r ? deliveryFrom(r) : undefined;
  },
  async findDelivery(partnerId: string, endpointId: string, id: string, trx: DbOrTrx) {
    const r = await trx("webhook_deliveries as d")
      .join("events as e", "e.id", "d.event_id")
      .where({ "d.id": id, "d.endpoint_id": endpointId, "d.partner_id": partnerId })
      .first("d.*", "e.type as event_type");
    return r ? { ...deliveryFrom(r), event_type: r.event_type as string } : undefined;
  },
  async listDeliveries(endpointId: string, opts: { status?: DeliveryStatus; before?: string; limit: number }, trx: DbOrTrx) {
    const q = trx("webhook_deliveries as d")
      .join("events as e", "e.id", "d.event_id")
      .where("d.endpoint_id", endpointId)
      .orderBy("d.id", "desc")
      .limit(opts.limit)
      .select("d.*", "e.type as event_type");
    if (opts.status) q.andWhere("d.status", opts.status);
    if (opts.before) q.andWhere("d.id", "<", opts.before);
    const rows = await q;
    return rows.map((r) => ({ ...deliveryFrom(r), event_type: r.event_type as string }));
  },
  async updateDelivery(id: string, patch: Partial<Omit<DeliveryRow, "id">>, trx: DbOrTrx) {
    await trx("webhook_deliveries").where({ id }).update(patch);
  },
  async insertAttempt(row: AttemptRow, trx: DbOrTrx) {
    await trx("webhook_attempts").insert(row);
  },
  async listAttempts(deliveryId: string, trx: DbOrTrx): Promise<AttemptRow[]> {
    const rows = await trx("webhook_attempts").where({ delivery_id: deliveryId }).orderBy("attempt");
    return rows.map((r) => ({ ...(r as AttemptRow), started_at: ts(r.started_at)! }));
  },
  /** Marks the event as fanned out; false when it already was. */
  async markDispatched(eventId: string, deliveries: number, trx: DbOrTrx): Promise<boolean> {
    const r = await trx("webhook_dispatches").insert({ event_id: eventId, deliveries }).onConflict("event_id").ignore().returning("event_id");
    return r.length > 0;
  },
  /** Partner events recorded between `since` and `before` that were never fanned out. */
  async undispatchedEvents(since: Date, before: Date, limit: number, trx: DbOrTrx): Promise<string[]> {
    const rows = await trx("events as e")
      .leftJoin("webhook_dispatches as w", "w.event_id", "e.id")
      .whereNull("w.event_id")
      .whereNotNull("e.partner_id")
      .andWhere("e.created_at", ">=", since)
      .andWhere("e.created_at", "<", before)
      .orderBy("e.created_at")
      .limit(limit)
      .select("e.id");
    return rows.map((r: { id: string }) => r.id);
  },
  /** Pending deliveries due before `overdueBefore` and not leased: their queue job was lost. */
  async overdueDeliveries(overdueBefore: Date, now: Date, limit: number, trx: DbOrTrx): Promise<Array<{ id: string; attempts: number }>> {
    return trx("webhook_deliveries")
      .where("status", "pending")
      .andWhere("next_attempt_at", "<", overdueBefore)
      .andWhere((q) => q.whereNull("lease_until").orWhere("lease_until", "<", now))
      .orderBy("next_attempt_at")
      .limit(limit)
      .select("id", "attempts");
  },
};
