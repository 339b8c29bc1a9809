import type { Knex } from "knex";

/**
 * Personal data lives apart from everything else: `member_profiles` (contact data, date of birth)
 * and `member_partner_refs` (each partner's own customer reference) are the only tables that hold
 * it, and erasure deletes their rows. `member_consents` is an append-only history without personal
 * data, kept after erasure as the law allows. `members` itself stays opaque: ids and status.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable("members", (t) => {
    // The member's own code to refer others (not personal data: random), and who referred them.
    t.text("referral_code");
    t.text("referred_by_member_id").references("members.id");
    t.timestamp("erased_at", { useTz: true });
  });
  await knex.raw("CREATE UNIQUE INDEX members_referral_code_key ON members (referral_code)");

  await knex.schema.createTable("member_profiles", (t) => {
    t.text("member_id").primary().references("members.id");
    t.text("email");
    t.boolean("email_verified").notNullable().defaultTo(false);
    t.text("phone");
    t.text("given_name");
    t.text("family_name");
    t.date("date_of_birth");
    t.timestamp("updated_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw("CREATE INDEX member_profiles_verified_email_idx ON member_profiles (lower(email)) WHERE email_verified");

  await knex.schema.createTable("member_partner_refs", (t) => {
    t.text("member_id").notNullable().references("members.id");
    t.text("partner_id").notNullable().references("partners.id");
    t.text("customer_ref").notNullable();
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(["member_id", "partner_id"]);
    t.unique(["partner_id", "customer_ref"], { indexName: "member_partner_refs_customer_ref_key" });
  });

  await knex.schema.createTable("member_consents", (t) => {
    t.bigIncrements("id").primary();
    t.text("member_id").notNullable().references("members.id");
    t.text("purpose").notNullable();
    t.text("version").notNullable();
    t.text("state").notNullable();
    t.timestamp("occurred_at", { useTz: true }).notNullable();
    t.text("partner_id").notNullable().references("partners.id");
    t.timestamp("recorded_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw("ALTER TABLE member_consents ADD CONSTRAINT member_consents_state_valid CHECK (state IN ('given', 'withdrawn'))");
  await knex.raw("CREATE INDEX member_consents_member_idx ON member_consents (member_id, id)");
  await knex.raw("CREATE TRIGGER member_consents_append_only BEFORE UPDATE OR DELETE ON member_consents FOR EACH ROW EXECUTE FUNCTION forbid_change()");

  await knex.schema.createTable("loyalty_cards", (t) => {
    t.text("id").primary();
    t.text("member_id").notNullable().references("members.id");
    t.text("partner_id").notNullable().references("partners.id");
    t.text("number").notNullable();
    t.text("form").notNullable();
    t.text("status").notNullable().defaultTo("active");
    t.timestamp("issued_at", { useTz: true }).notNullable();
    t.timestamp("expires_at", { useTz: true }).notNullable();
    t.timestamp("status_changed_at", { useTz: true });
    t.text("status_reason");
    t.text("replaces_card_id").references("loyalty_cards.id");
    t.text("replaced_by_card_id").references("loyalty_cards.id");
  });
  await knex.raw("CREATE UNIQUE INDEX loyalty_cards_number_key ON loyalty_cards (number)");
  await knex.raw("CREATE INDEX loyalty_cards_member_idx ON loyalty_cards (member_id)");
  await knex.raw(`
    ALTER TABLE loyalty_cards
      ADD CONSTRAINT loyalty_cards_form_valid CHECK (form IN ('virtual', 'physical')),
      ADD CONSTRAINT loyalty_cards_status_valid CHECK (status IN ('active', 'blocked', 'lost', 'replaced', 'expired')),
      ADD CONSTRAINT loyalty_cards_number_digits CHECK (number ~ '^[0-9]{12,19}$')`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists("loyalty_cards");
  await knex.raw("DROP TRIGGER IF EXISTS member_consents_append_only ON member_consents");
  await knex.schema.dropTableIfExists("member_consents");
  await knex.schema.dropTableIfExists("member_partner_refs");
  await knex.schema.dropTableIfExists("member_profiles");
  await knex.raw("DROP INDEX IF EXISTS members_referral_code_key");
  await knex.schema.alterTable("members", (t) => {
    t.dropColumn("erased_at");
    t.dropColumn("referred_by_member_id");
    t.dropColumn("referral_code");
  });
}
