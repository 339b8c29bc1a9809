import type { Knex } from "knex";

/**
 * The ground every feature stands on: the transactional outbox (jobs enqueued only for committed
 * changes), idempotency keys (a retry returns the first answer), and the audit log.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("outbox", (t) => {
    t.bigIncrements("id").primary();
    t.text("queue").notNullable();
    t.text("job_id").notNullable();
    t.jsonb("payload").notNullable();
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp("available_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp("relayed_at", { useTz: true });
    t.integer("attempts").notNullable().defaultTo(0);
    t.text("last_error");
  });
  await knex.raw("CREATE INDEX outbox_pending_idx ON outbox (available_at, id) WHERE relayed_at IS NULL");

  await knex.schema.createTable("idempotency_keys", (t) => {
    t.text("principal").notNullable();
    t.text("key").notNullable();
    t.text("request_hash").notNullable();
    t.text("method").notNullable();
    t.text("path").notNullable();
    t.integer("response_status").notNullable();
    t.jsonb("response_body");
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(["principal", "key"]);
  });
  await knex.raw("ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_key_length CHECK (char_length(key) BETWEEN 1 AND 255)");
  await knex.raw("CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at)");

  await knex.schema.createTable("audit_log", (t) => {
    t.bigIncrements("id").primary();
    t.timestamp("at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text("actor_type").notNullable();
    t.text("actor_id").notNullable();
    t.text("action").notNullable();
    t.text("object_type").notNullable();
    t.text("object_id");
    t.jsonb("before");
    t.jsonb("after");
    t.text("reason");
    t.text("request_id");
  });
  await knex.raw("CREATE INDEX audit_log_object_idx ON audit_log (object_type, object_id, id)");
  // The audit log is append-only: what was done stays done.
  await knex.raw(`
    CREATE FUNCTION forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'P0001';
    END $$`);
  await knex.raw("CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION forbid_change()");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log");
  await knex.schema.dropTableIfExists("audit_log");
  await knex.raw("DROP FUNCTION IF EXISTS forbid_change()");
  await knex.schema.dropTableIfExists("idempotency_keys");
  await knex.schema.dropTableIfExists("outbox");
}
