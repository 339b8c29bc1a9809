import type { Knex } from "knex";

/**
 * Events: what happened, as facts with stable ids, recorded in the same transaction as the change.
 * Each row is addressed to one partner (or to the operator when partner_id is null) and carries
 * ids, never personal data. Webhook delivery and the events API read from here.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("events", (t) => {
    t.text("id").primary();
    t.bigIncrements("seq", { primaryKey: false });
    t.text("type").notNullable();
    t.text("partner_id").references("partners.id");
    t.timestamp("occurred_at", { useTz: true }).notNullable();
    t.jsonb("data").notNullable();
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw("CREATE UNIQUE INDEX events_seq_idx ON events (seq)");
  await knex.raw("CREATE INDEX events_partner_seq_idx ON events (partner_id, seq)");
  await knex.raw("CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events FOR EACH ROW EXECUTE FUNCTION forbid_change()");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("DROP TRIGGER IF EXISTS events_append_only ON events");
  await knex.schema.dropTableIfExists("events");
}
