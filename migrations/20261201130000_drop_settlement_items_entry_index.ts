import type { Knex } from "knex";

/**
 * `settlement_items_entry_idx` (entry_id) is kept up to date for every item a month collects — a
 * million index entries in random order for a million transactions — and no query reads it any
 * more: the look-ups of an item by its entry all name the partner too (collect's "cleared once",
 * the CSV's corrected statement) and use the items' unique key (partner_id, entry_id, lot_id,
 * line_group); the network's check that every entry is cleared joins the month's items by hash.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw("DROP INDEX IF EXISTS settlement_items_entry_idx");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("CREATE INDEX IF NOT EXISTS settlement_items_entry_idx ON settlement_items (entry_id)");
}
