import type { Knex } from "knex";

/**
 * Webhooks: a partner's endpoints, a mark per event fanned out, one delivery per (event, endpoint) — the truth about what is
 * still owed, so a lost queue job delays a delivery but never loses it — and one row per attempt
 * (the delivery log a partner reads).
 *
 * Events also get the id of the transaction that wrote them, so the events API can hand out a
 * cursor that never skips an event committed late by a slower transaction (see events.dal.ts).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw("ALTER TABLE events ADD COLUMN tx_id xid8 NOT NULL DEFAULT pg_current_xact_id()");
  await knex.raw("CREATE INDEX events_partner_tx_seq_idx ON events (partner_id, tx_id, seq)");
  await knex.raw("CREATE INDEX events_created_at_idx ON events (created_at)");

  // One row per event fanned out to webhooks: the sweep dispatches any recent event without one,
  // so an events.dispatch job lost with the queue (or an in-process queue in a crash) loses nothing.
  await knex.schema.createTable("webhook_dispatches", (t) => {
    t.text("event_id").primary().references("events.id");
    t.integer("deliveries").notNullable();
    t.timestamp("dispatched_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable("webhook_endpoints", (t) => {
    t.text("id").primary();
    t.text("partner_id").notNullable().references("partners.id");
    t.text("url").notNullable();
    t.text("description");
    t.jsonb("event_types").notNullable();
    t.boolean("enabled").notNullable().defaultTo(true);
    // Why the hub turned it off (gone: the endpoint answered 410); null when the partner did.
    t.text("disabled_reason");
    t.text("secret").notNullable();
    // During a rotation the old secret still signs until previous_secret_expires_at.
    t.text("previous_secret");
    t.timestamp("previous_secret_expires_at", { useTz: true });
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp("updated_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`
    ALTER TABLE webhook_endpoints
      ADD CONSTRAINT webhook_endpoints_event_types_array CHECK (jsonb_typeof(event_types) = 'array' AND jsonb_array_length(event_types) > 0),
      ADD CONSTRAINT webhook_endpoints_disabled_reason_valid CHECK (disabled_reason IS NULL OR disabled_reason IN ('gone')),
      ADD CONSTRAINT webhook_endpoints_previous_secret_pair CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))`);
  await knex.raw("CREATE INDEX webhook_endpoints_partner_idx ON webhook_endpoints (partner_id, created_at, id)");

  await knex.schema.createTable("webhook_deliveries", (t) => {
    t.text("id").primary();
    t.text("endpoint_id").notNullable().references("webhook_endpoints.id").onDelete("CASCADE");
    t.text("event_id").notNullable().references("events.id");
    t.text("partner_id").notNullable().references("partners.id");
    t.text("status").notNullable().defaultTo("pending");
    t.integer("attempts").notNullable().defaultTo(0);
    // The attempt after which a failure dead-letters (the schedule's length + 1; a replay: one more).
    t.integer("max_attempts").notNullable();
    t.integer("replays").notNullable().defaultTo(0);
    t.timestamp("next_attempt_at", { useTz: true });
    // Set while a worker is sending: another worker leaves the row alone until it expires.
    t.timestamp("lease_until", { useTz: true });
    t.timestamp("last_attempt_at", { useTz: true });
    t.integer("last_http_status");
    t.text("last_error");
    t.timestamp("delivered_at", { useTz: true });
    t.timestamp("dead_at", { useTz: true });
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(["event_id", "endpoint_id"], { indexName: "webhook_deliveries_event_endpoint_unique" });
  });
  await knex.raw(`
    ALTER TABLE webhook_deliveries
      ADD CONSTRAINT webhook_deliveries_status_valid CHECK (status IN ('pending', 'delivered', 'dead')),
      ADD CONSTRAINT webhook_deliveries_attempts_valid CHECK (attempts >= 0 AND max_attempts >= 1 AND replays >= 0)`);
  await knex.raw("CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at DESC, id DESC)");
  await knex.raw("CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending'");

  await knex.schema.createTable("webhook_attempts", (t) => {
    t.bigIncrements("id").primary();
    t.text("delivery_id").notNullable().references("webhook_deliveries.id").onDelete("CASCADE");
    t.integer("attempt").notNullable();
    t.timestamp("started_at", { useTz: true }).notNullable();
    t.integer("latency_ms").notNullable();
    t.text("outcome").notNullable();
    t.integer("http_status");
    t.text("response_excerpt");
    t.text("error");
    t.unique(["delivery_id", "attempt"], { indexName: "webhook_attempts_delivery_attempt_unique" });
  });
  await knex.raw(`
    ALTER TABLE webhook_attempts
      ADD CONSTRAINT webhook_attempts_outcome_valid CHECK (outcome IN ('delivered', 'gone', 'http-error', 'redirect', 'timeout', 'connection-error', 'refused', 'endpoint-disabled'))`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists("webhook_attempts");
  await knex.schema.dropTableIfExists("webhook_deliveries");
  await knex.schema.dropTableIfExists("webhook_endpoints");
  await knex.schema.dropTableIfExists("webhook_dispatches");
  await knex.raw("DROP INDEX IF EXISTS events_created_at_idx");
  await knex.raw("DROP INDEX IF EXISTS events_partner_tx_seq_idx");
  await knex.raw("ALTER TABLE events DROP COLUMN IF EXISTS tx_id");
}
