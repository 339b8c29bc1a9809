import type { Knex } from "knex";

/**
 * A settlement item is identified by its statement and its place in the statement's CSV
 * (statement_id, seq) — the key every reader already uses (the CSV pages by it, price and verify
 * read a statement's slice by it) — instead of a surrogate id no query reads. Clearing writes a
 * million items a month in one INSERT: the id's sequence and its index were one more value drawn and
 * one more index entry written per item, for nothing.
 *
 * The (statement_id, seq) index becomes the primary key (unique: collect numbers a statement's items
 * 1..n once), so `seq` is NOT NULL — collect sets it on every item it writes. A database with an
 * unnumbered item (collected by a version before collect numbered them, and never priced) refuses
 * this migration rather than guess a place for it.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw("ALTER TABLE settlement_items DROP CONSTRAINT settlement_items_pkey");
  await knex.raw("ALTER TABLE settlement_items DROP COLUMN id");
  await knex.raw("ALTER TABLE settlement_items ALTER COLUMN seq SET NOT NULL");
  await knex.raw("CREATE UNIQUE INDEX settlement_items_pkey ON settlement_items (statement_id, seq)");
  await knex.raw("ALTER TABLE settlement_items ADD CONSTRAINT settlement_items_pkey PRIMARY KEY USING INDEX settlement_items_pkey");
  await knex.raw("DROP INDEX settlement_items_statement_idx");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("CREATE INDEX settlement_items_statement_idx ON settlement_items (statement_id, seq)");
  await knex.raw("ALTER TABLE settlement_items DROP CONSTRAINT settlement_items_pkey");
  await knex.raw("ALTER TABLE settlement_items ALTER COLUMN seq DROP NOT NULL");
  await knex.raw("ALTER TABLE settlement_items ADD COLUMN id bigserial PRIMARY KEY");
}
