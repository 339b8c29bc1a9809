import type { Knex } from "knex";

/**
 * The core of the network that every feature refers to: partners, the versions of their contracts,
 * and members (opaque ids only — personal data lives in its own tables, see the members feature).
 * The network feature extends these; the ledger and settlement read them.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("partners", (t) => {
    t.text("id").primary();
    t.text("name").notNullable();
    t.text("kind").notNullable();
    t.text("sector").notNullable();
    t.text("status").notNullable().defaultTo("applied");
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp("updated_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw("ALTER TABLE partners ADD CONSTRAINT partners_kind_valid CHECK (kind IN ('operator', 'merchant', 'bank'))");
  await knex.raw(
    "ALTER TABLE partners ADD CONSTRAINT partners_status_valid CHECK (status IN ('applied', 'approved', 'active', 'suspended', 'terminated'))",
  );

  // A contract version is never edited once in force; a new version starts on a date. Prices are
  // micro-units of the settlement currency per point (0.010 per point = 10000), so sub-cent prices
  // are exact; statements round each line to minor units by a stated rule.
  await knex.schema.createTable("contract_versions", (t) => {
    t.text("id").primary();
    t.text("partner_id").notNullable().references("partners.id");
    t.integer("version").notNullable();
    t.timestamp("effective_from", { useTz: true }).notNullable();
    t.string("currency", 3).notNullable();
    t.bigInteger("issuance_price_micros").notNullable();
    t.bigInteger("redemption_price_micros").notNullable();
    // Base earn rate: earn_points points per earn_per_minor minor units spent, rounded down.
    t.bigInteger("earn_points").notNullable();
    t.bigInteger("earn_per_minor").notNullable();
    t.integer("points_validity_days").notNullable().defaultTo(730);
    // What a refund does when the member already spent the points: let the balance go negative
    // down to negative_floor, or book a recovery the partner absorbs.
    t.text("refund_policy").notNullable().defaultTo("negative_balance");
    t.bigInteger("negative_floor").notNullable().defaultTo(0);
    t.bigInteger("transaction_fee_minor").notNullable().defaultTo(0);
    t.bigInteger("monthly_fee_minor").notNullable().defaultTo(0);
    t.integer("breakage_share_bps").notNullable().defaultTo(0);
    t.integer("cashback_funding_bps").notNullable().defaultTo(10000);
    t.integer("roundup_match_bps").notNullable().defaultTo(0);
    t.text("settlement_period").notNullable().defaultTo("monthly");
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(["partner_id", "version"]);
    t.unique(["partner_id", "effective_from"]);
  });
  await knex.raw(`
    ALTER TABLE contract_versions
      ADD CONSTRAINT contract_prices_nonnegative CHECK (issuance_price_micros >= 0 AND redemption_price_micros >= 0),
      ADD CONSTRAINT contract_earn_rate_valid CHECK (earn_points >= 0 AND earn_per_minor > 0),
      ADD CONSTRAINT contract_refund_policy_valid CHECK (refund_policy IN ('negative_balance', 'recovery_entry')),
      ADD CONSTRAINT contract_negative_floor_valid CHECK (negative_floor <= 0),
      ADD CONSTRAINT contract_fees_nonnegative CHECK (transaction_fee_minor >= 0 AND monthly_fee_minor >= 0),
      ADD CONSTRAINT contract_bps_valid CHECK (breakage_share_bps BETWEEN 0 AND 10000 AND cashback_funding_bps BETWEEN 0 AND 10000 AND roundup_match_bps BETWEEN 0 AND 10000),
      ADD CONSTRAINT contract_period_valid CHECK (settlement_period IN ('monthly', 'weekly', 'daily'))`);

  await knex.schema.createTable("members", (t) => {
    t.text("id").primary();
    t.text("status").notNullable().defaultTo("active");
    t.text("enrolled_by_partner_id").notNullable().references("partners.id");
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw("ALTER TABLE members ADD CONSTRAINT members_status_valid CHECK (status IN ('active', 'closed', 'erased'))");
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists("members");
  await knex.schema.dropTableIfExists("contract_versions");
  await knex.schema.dropTableIfExists("partners");
}
