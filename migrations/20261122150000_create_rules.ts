import type { Knex } from "knex";

/**
 * Programme rules: earn rules and campaigns (operator-wide or partner-funded), member segments,
 * awards given outside a purchase (custom events, referrals), the tier ladder and members' tiers,
 * and verifiable prize draws.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("earn_rules", (t) => {
    t.text("id").primary();
    // Null: the operator's network-wide rule; otherwise the partner that owns and funds it.
    t.text("owner_partner_id").references("partners.id");
    t.text("name").notNullable();
    t.text("type").notNullable();
    t.text("status").notNullable().defaultTo("draft");
    t.integer("priority").notNullable().defaultTo(100);
    t.text("stack_group");
    t.timestamp("valid_from", { useTz: true }).notNullable();
    t.timestamp("valid_until", { useTz: true });
    t.jsonb("target").notNullable();
    t.jsonb("partner_ids");
    t.jsonb("params").notNullable();
    t.jsonb("caps").notNullable();
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp("updated_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`
    ALTER TABLE earn_rules
      ADD CONSTRAINT earn_rules_type_valid CHECK (type IN ('base_rate', 'multiplier', 'nth_purchase', 'first_purchase', 'birthday', 'referral', 'custom_event', 'fixed_bonus')),
      ADD CONSTRAINT earn_rules_status_valid CHECK (status IN ('draft', 'active', 'paused', 'archived')),
      ADD CONSTRAINT earn_rules_window_valid CHECK (valid_until IS NULL OR valid_until > valid_from)`);
  await knex.raw("CREATE INDEX earn_rules_active_idx ON earn_rules (status, priority, id)");

  await knex.schema.createTable("member_segments", (t) => {
    t.text("segment").notNullable();
    t.text("member_id").notNullable().references("members.id");
    t.primary(["segment", "member_id"]);
  });
  await knex.raw("CREATE INDEX member_segments_member_idx ON member_segments (member_id)");

  // Points a rule gave outside a purchase: one row per (rule, source), so a retry gives nothing twice.
  await knex.schema.createTable("rule_awards", (t) => {
    t.text("id").primary();
    t.text("rule_id").notNullable().references("earn_rules.id");
    t.text("member_id").notNullable().references("members.id");
    t.text("funding_partner_id").notNullable().references("partners.id");
    t.text("source_type").notNullable();
    t.text("source_id").notNullable();
    t.bigInteger("points").notNullable();
    t.text("entry_id");
    t.timestamp("occurred_at", { useTz: true }).notNullable();
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(["rule_id", "source_type", "source_id", "member_id"]);
  });
  await knex.raw("ALTER TABLE rule_awards ADD CONSTRAINT rule_awards_points_positive CHECK (points > 0)");
  await knex.raw("CREATE INDEX rule_awards_rule_member_idx ON rule_awards (rule_id, member_id, occurred_at)");

  await knex.schema.createTable("tier_ladder", (t) => {
    t.integer("id").primary();
    t.text("basis").notNullable();
    t.integer("window_days").notNullable();
    t.integer("grace_days").notNullable();
    t.timestamp("updated_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`
    ALTER TABLE tier_ladder
      ADD CONSTRAINT tier_ladder_single CHECK (id = 1),
      ADD CONSTRAINT tier_ladder_basis_valid CHECK (basis IN ('spend_minor', 'points_earned')),
      ADD CONSTRAINT tier_ladder_days_valid CHECK (window_days > 0 AND grace_days >= 0)`);
  await knex.schema.createTable("tiers", (t) => {
    t.text("code").primary();
    t.text("name").notNullable();
    t.integer("rank").notNullable().unique();
    t.bigInteger("threshold").notNullable();
    t.integer("multiplier_bp").notNullable();
    t.jsonb("perks").notNullable();
  });
  await knex.raw("ALTER TABLE tiers ADD CONSTRAINT tiers_values_valid CHECK (threshold >= 0 AND multiplier_bp >= 10000 AND rank > 0)");
  await knex.schema.createTable("member_tiers", (t) => {
    t.text("member_id").primary().references("members.id");
    t.text("tier_code").notNullable();
    t.timestamp("since", { useTz: true }).notNullable();
    // Set when the member fell below the tier's threshold: the downgrade happens at this instant.
    t.timestamp("downgrade_due_at", { useTz: true });
    t.timestamp("updated_at", { useTz: true }).notNullable();
  });

  await knex.schema.createTable("draws", (t) => {
    t.text("id").primary();
    t.text("name").notNullable();
    t.text("status").notNullable();
    t.timestamp("entries_open_at", { useTz: true }).notNullable();
    t.timestamp("entries_close_at", { useTz: true }).notNullable();
    t.integer("winners_count").notNullable();
    t.jsonb("qualifying").notNullable();
    t.text("commitment").notNullable();
    // The secret until revealed; never shown before status 'revealed'.
    t.text("seed").notNullable();
    t.text("entries_hash");
    t.integer("entries_count");
    t.jsonb("winners");
    t.timestamp("closed_at", { useTz: true });
    t.timestamp("revealed_at", { useTz: true });
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`
    ALTER TABLE draws
      ADD CONSTRAINT draws_status_valid CHECK (status IN ('announced', 'closed', 'revealed')),
      ADD CONSTRAINT draws_window_valid CHECK (entries_close_at > entries_open_at),
      ADD CONSTRAINT draws_winners_positive CHECK (winners_count > 0)`);
  await knex.schema.createTable("draw_entries", (t) => {
    t.text("draw_id").notNullable().references("draws.id");
    t.integer("position").notNullable();
    t.text("entry_code").notNullable();
    t.text("transaction_id").notNullable().references("point_transactions.id");
    t.text("member_id").notNullable().references("members.id");
    t.primary(["draw_id", "position"]);
    t.unique(["draw_id", "transaction_id"]);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists("draw_entries");
  await knex.schema.dropTableIfExists("draws");
  await knex.schema.dropTableIfExists("member_tiers");
  await knex.schema.dropTableIfExists("tiers");
  await knex.schema.dropTableIfExists("tier_ladder");
  await knex.schema.dropTableIfExists("rule_awards");
  await knex.schema.dropTableIfExists("member_segments");
  await knex.schema.dropTableIfExists("earn_rules");
}
