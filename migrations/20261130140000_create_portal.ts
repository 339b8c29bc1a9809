import type { Knex } from "knex";

/**
 * The developer portal and operator console: their users (partner developers and operator staff,
 * never OAuth clients), browser sessions, and a capped log of each partner's recent API calls.
 * Partners get a `sandbox` flag: a developer's sandbox partner lives in the sandbox network, apart
 * from live data (its members are sandbox members; live analytics and statements leave it out).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable("partners", (t) => {
    t.boolean("sandbox").notNullable().defaultTo(false);
  });
  await knex.schema.alterTable("members", (t) => {
    t.boolean("sandbox").notNullable().defaultTo(false);
  });

  await knex.schema.createTable("portal_users", (t) => {
    t.text("id").primary();
    t.text("email").notNullable();
    t.text("name").notNullable();
    t.text("role").notNullable();
    t.text("password_hash").notNullable();
    // A developer belongs to one partner (its application) and holds one sandbox partner.
    t.text("partner_id").references("partners.id");
    t.text("sandbox_partner_id").references("partners.id");
    t.text("phone");
    t.text("status").notNullable().defaultTo("active");
    t.timestamp("last_login_at", { useTz: true });
    t.timestamp("created_at", { useTz: true }).notNullable();
    t.timestamp("updated_at", { useTz: true }).notNullable();
  });
  await knex.raw(`
    ALTER TABLE portal_users
      ADD CONSTRAINT portal_users_role_valid CHECK (role IN ('developer', 'operator')),
      ADD CONSTRAINT portal_users_status_valid CHECK (status IN ('active', 'disabled')),
      ADD CONSTRAINT portal_users_email_lower CHECK (email = lower(email)),
      ADD CONSTRAINT portal_users_developer_has_partner CHECK ((role = 'developer') = (partner_id IS NOT NULL))`);
  await knex.raw("CREATE UNIQUE INDEX portal_users_email_key ON portal_users (email)");
  await knex.raw("CREATE INDEX portal_users_partner_idx ON portal_users (partner_id)");

  await knex.schema.createTable("portal_sessions", (t) => {
    t.text("sid").primary();
    t.jsonb("sess").notNullable();
    t.timestamp("expires_at", { useTz: true }).notNullable();
  });
  await knex.raw("CREATE INDEX portal_sessions_expires_idx ON portal_sessions (expires_at)");

  // The test members and cards made for each sandbox partner, to show the developer what to call with.
  await knex.schema.createTable("portal_sandbox_members", (t) => {
    t.text("partner_id").notNullable().references("partners.id");
    t.text("member_id").notNullable();
    t.text("card_number").notNullable();
    t.text("name").notNullable();
    t.primary(["partner_id", "member_id"]);
  });

  await knex.schema.createTable("portal_request_log", (t) => {
    t.bigIncrements("id").primary();
    t.text("partner_id").notNullable();
    t.text("client_id").notNullable();
    t.timestamp("at", { useTz: true }).notNullable();
    t.text("method").notNullable();
    t.text("route").notNullable();
    t.integer("status").notNullable();
    t.integer("latency_ms").notNullable();
    t.text("request_id").notNullable();
  });
  await knex.raw("CREATE INDEX portal_request_log_partner_idx ON portal_request_log (partner_id, id DESC)");
  // Calls per partner per UTC day, kept beyond the capped log for the usage charts.
  await knex.schema.createTable("portal_usage_daily", (t) => {
    t.text("partner_id").notNullable();
    t.date("day").notNullable();
    t.integer("calls").notNullable().defaultTo(0);
    t.integer("errors").notNullable().defaultTo(0);
    t.primary(["partner_id", "day"]);
  });
  // The usage charts read a partner's ledger entries by day (ledger.pointsPerDay).
  await knex.raw("CREATE INDEX ledger_entries_partner_occurred_idx ON ledger_entries (partner_id, occurred_at)");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("DROP INDEX ledger_entries_partner_occurred_idx");
  await knex.schema.dropTable("portal_usage_daily");
  await knex.schema.dropTable("portal_request_log");
  await knex.schema.dropTable("portal_sandbox_members");
  await knex.schema.dropTable("portal_sessions");
  await knex.schema.dropTable("portal_users");
  await knex.schema.alterTable("members", (t) => {
    t.dropColumn("sandbox");
  });
  await knex.schema.alterTable("partners", (t) => {
    t.dropColumn("sandbox");
  });
}
