import type { DbOrTrx } from "../infra/db.ts";
import { newId } from "../infra/ids.ts";

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

/** Hooks run inside the same transaction after an event is written (webhook fan-out registers one). */
export type EventHook = (trx: DbOrTrx, event: NewEvent & { id: string }) => Promise<void>;
const hooks: EventHook[] = [];

export function onEventRecorded(hook: EventHook): void {
  if (!hooks.includes(hook)) hooks.push(hook);
}

/**
 * Records an event inside the caller's transaction: it exists if and only if the change commits.
 */
export async function recordEvent(trx: DbOrTrx, event: NewEvent): Promise<string> {
  const id = newId("evt");
  await trx("events").insert({
    id,
    type: event.type,
    partner_id: event.partnerId,
    occurred_at: event.occurredAt,
    data: JSON.stringify(event.data),
  });
  for (const hook of hooks) await hook(trx, { ...event, id });
  return id;
}
