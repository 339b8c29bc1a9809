import type { DbOrTrx } from "../infra/db.ts";
import { newId } from "../infra/ids.ts";
import { enqueueManyInTx, enqueueWithInTx } from "../infra/outbox/outbox.ts";

/**
 * The catalogue of event types. Payloads carry ids and amounts, never personal data.
 * Add a type here before emitting it.
 */
export const EVENT_TYPES = [
  "earn.posted",
  "burn.posted",
  "redemption.held",
  "redemption.captured",
  "redemption.voided",
  "redemption.expired",
  "refund.posted",
  "points.expiring_soon",
  "points.expired",
  "tier.changed",
  "card.issued",
  "card.blocked",
  "card.replaced",
  "member.enrolled",
  "member.erased",
  "payment_card.linked",
  "payment_card.unlinked",
  "card_transaction.qualified",
  "cashback.available",
  "payout.instructed",
  "roundup.sweep_instructed",
  "statement.ready",
  "payment.received",
  "dispute.opened",
  "dispute.resolved",
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export interface NewEvent {
  type: EventType;
  /** The partner the event is addressed to; null for the operator. */
  partnerId: string | null;
  occurredAt: Date;
  data: Record<string, unknown>;
}

/**
 * Records an event inside the caller's transaction: it exists if and only if the change commits.
 */
export async function recordEvent(trx: DbOrTrx, event: NewEvent): Promise<string> {
  const id = newId("evt");
  // Fan-out to webhook endpoints happens in the workers, from the outbox: only committed events.
  await enqueueWithInTx(
    trx,
    {
      sql: "INSERT INTO events (id, type, partner_id, occurred_at, data) VALUES (?, ?, ?, ?::timestamptz, ?::jsonb)",
      bindings: [id, event.type, event.partnerId, event.occurredAt.toISOString(), JSON.stringify(event.data)],
    },
    "events.dispatch",
    { eventId: id },
    { jobId: `evt:${id}` },
  );
  return id;
}

/** Records many events in the caller's transaction in two statements (a batch of card events). */
export async function recordEvents(trx: DbOrTrx, events: NewEvent[]): Promise<string[]> {
  if (events.length === 0) return [];
  const rows = events.map((e) => ({ id: newId("evt"), type: e.type, partner_id: e.partnerId, occurred_at: e.occurredAt, data: JSON.stringify(e.data) }));
  await trx("events").insert(rows);
  await enqueueManyInTx(
    trx,
    "events.dispatch",
    rows.map((r) => ({ data: { eventId: r.id }, jobId: `evt:${r.id}` })),
  );
  return rows.map((r) => r.id);
}
