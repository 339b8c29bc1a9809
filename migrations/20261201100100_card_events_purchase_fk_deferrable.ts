import type { Knex } from "knex";

/**
 * The batch path of card events writes a chunk's new purchases once, in their final state, after
 * their events (whose ids decide what is a duplicate) and the ledger: the events' foreign key to
 * their purchase may wait for the commit there. DEFERRABLE INITIALLY IMMEDIATE: checked at once as
 * before everywhere else; the batch path defers it for its own transaction (SET CONSTRAINTS).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw("ALTER TABLE card_events ALTER CONSTRAINT card_events_purchase_id_foreign DEFERRABLE INITIALLY IMMEDIATE");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("ALTER TABLE card_events ALTER CONSTRAINT card_events_purchase_id_foreign NOT DEFERRABLE");
}
