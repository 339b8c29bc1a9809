import type { Knex } from "knex";

/**
 * Two indexes of `events` that no query reads, dropped: every event (one an earn, a burn, a
 * refund …) paid for an entry in each.
 *
 * - `events_partner_seq_idx` (partner, seq) served the feed when it was ordered by seq; the feed is
 *   ordered by (tx_id, seq) since 20261122120000 and reads `events_partner_tx_seq_idx`, which also
 *   serves any lookup by partner.
 * - `events_created_at_idx` was made for a retention job that was never written: events are kept.
 *   A retention job would make the index it needs with it.
 *
 * Reads by id (the webhook dispatcher) use the primary key.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw("DROP INDEX IF EXISTS events_partner_seq_idx");
  await knex.raw("DROP INDEX IF EXISTS events_created_at_idx");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("CREATE INDEX IF NOT EXISTS events_partner_seq_idx ON events (partner_id, seq)");
  await knex.raw("CREATE INDEX IF NOT EXISTS events_created_at_idx ON events (created_at)");
}
