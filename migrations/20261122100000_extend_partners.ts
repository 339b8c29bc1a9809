import type { Knex } from "knex";

/**
 * The operator's side of the network: the maintained list of sectors (non-compete is decided per
 * sector), each partner's MCCs and locations with their merchant ids (MIDs, for card-transaction
 * matching), the programme's configuration, and a guard that keeps a contract version in force
 * from ever changing.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("sectors", (t) => {
    t.text("code").primary();
    t.text("name").notNullable();
    t.boolean("active").notNullable().defaultTo(true);
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw("ALTER TABLE sectors ADD CONSTRAINT sectors_code_valid CHECK (code ~ '^[a-z0-9][a-z0-9-]{0,62}$')");

  await knex.schema.alterTable("partners", (t) => {
    t.jsonb("mccs").notNullable().defaultTo("[]");
    // Set when the operator admits a partner into a sector that already has one, with its reason.
    t.jsonb("non_compete_override");
    // Set by settlement when a terminated partner's final settlement is paid; until then it may
    // still read its statements.
    t.timestamp("final_settlement_paid_at", { useTz: true });
  });
  await knex.raw("CREATE INDEX partners_sector_status_idx ON partners (sector, status)");

  await knex.schema.createTable("partner_locations", (t) => {
    t.text("id").primary();
    t.text("partner_id").notNullable().references("partners.id");
    t.text("name").notNullable();
    t.text("mid").notNullable();
    t.string("mcc", 4);
    t.text("city");
    t.string("country", 2);
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  // A MID names one location across the network, or card transactions could not be matched.
  await knex.raw("CREATE UNIQUE INDEX partner_locations_mid_key ON partner_locations (mid)");
  await knex.raw("CREATE INDEX partner_locations_partner_idx ON partner_locations (partner_id)");

  // One row: the programme's configuration (open or closed, admission criteria, matching rule).
  await knex.schema.createTable("programme_settings", (t) => {
    t.integer("id").primary().defaultTo(1);
    t.text("type").notNullable().defaultTo("open");
    t.jsonb("admission").notNullable().defaultTo("{}");
    t.text("matching_rule").notNullable().defaultTo("verified_email");
    t.string("card_prefix", 8).notNullable().defaultTo("6390");
    t.timestamp("updated_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`
    ALTER TABLE programme_settings
      ADD CONSTRAINT programme_settings_single_row CHECK (id = 1),
      ADD CONSTRAINT programme_settings_type_valid CHECK (type IN ('open', 'closed')),
      ADD CONSTRAINT programme_settings_matching_valid CHECK (matching_rule IN ('none', 'verified_email')),
      ADD CONSTRAINT programme_settings_prefix_valid CHECK (card_prefix ~ '^[0-9]{4,8}$')`);
  await knex("programme_settings").insert({ id: 1 });

  // Belt and braces: the service never edits a version in force, and the database refuses to.
  await knex.raw(`
    CREATE FUNCTION contract_version_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF OLD.effective_from <= now() THEN
        RAISE EXCEPTION 'contract version % is in force since %: % refused', OLD.id, OLD.effective_from, TG_OP USING ERRCODE = 'P0001';
      END IF;
      RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END $$`);
  await knex.raw(
    "CREATE TRIGGER contract_versions_frozen_in_force BEFORE UPDATE OR DELETE ON contract_versions FOR EACH ROW EXECUTE FUNCTION contract_version_frozen()",
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("DROP TRIGGER IF EXISTS contract_versions_frozen_in_force ON contract_versions");
  await knex.raw("DROP FUNCTION IF EXISTS contract_version_frozen()");
  await knex.schema.dropTableIfExists("programme_settings");
  await knex.schema.dropTableIfExists("partner_locations");
  await knex.raw("DROP INDEX IF EXISTS partners_sector_status_idx");
  await knex.schema.alterTable("partners", (t) => {
    t.dropColumn("final_settlement_paid_at");
    t.dropColumn("non_compete_override");
    t.dropColumn("mccs");
  });
  await knex.schema.dropTableIfExists("sectors");
}
