import type { Knex } from "knex";

/**
 * The partner-facing side of earn and burn: purchases (earn, burn, both on one basket, captured
 * redemptions), two-phase redemptions and refunds. Their money moves only through the ledger; these
 * rows say what the partner asked for and how much of it was refunded since.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("point_transactions", (t) => {
    t.text("id").primary();
    t.text("partner_id").notNullable().references("partners.id");
    t.text("partner_transaction_id").notNullable();
    t.text("kind").notNullable();
    t.text("member_id").notNullable().references("members.id");
    t.bigInteger("amount_minor").notNullable();
    t.string("currency", 3).notNullable();
    t.timestamp("occurred_at", { useTz: true }).notNullable();
    t.text("contract_version_id").notNullable().references("contract_versions.id");
    t.bigInteger("points_earned").notNullable().defaultTo(0);
    t.bigInteger("points_burned").notNullable().defaultTo(0);
    t.bigInteger("burn_amount_minor").notNullable().defaultTo(0);
    t.bigInteger("refunded_minor").notNullable().defaultTo(0);
    t.bigInteger("points_clawed_back").notNullable().defaultTo(0);
    t.bigInteger("points_restored").notNullable().defaultTo(0);
    // The ledger entries of this purchase carry this reference (a redemption's for a capture).
    t.text("ledger_ref_type").notNullable();
    t.text("ledger_ref_id").notNullable();
    t.jsonb("computation");
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    // The partner's own id is a second line of defence against a duplicate sent with a new key.
    t.unique(["partner_id", "kind", "partner_transaction_id"]);
  });
  await knex.raw(`
    ALTER TABLE point_transactions
      ADD CONSTRAINT point_transactions_kind_valid CHECK (kind IN ('earn', 'burn', 'purchase', 'redemption')),
      ADD CONSTRAINT point_transactions_amounts_valid CHECK (
        amount_minor >= 0 AND points_earned >= 0 AND points_burned >= 0 AND burn_amount_minor >= 0
        AND refunded_minor BETWEEN 0 AND amount_minor
        AND points_clawed_back BETWEEN 0 AND points_earned
        AND points_restored BETWEEN 0 AND points_burned)`);
  await knex.raw("CREATE INDEX point_transactions_member_idx ON point_transactions (member_id, id)");

  await knex.schema.createTable("point_refunds", (t) => {
    t.text("id").primary();
    t.text("transaction_id").notNullable().references("point_transactions.id");
    t.text("partner_id").notNullable().references("partners.id");
    t.text("partner_refund_id").notNullable();
    t.bigInteger("amount_minor").notNullable();
    t.bigInteger("points_clawed_back").notNullable();
    t.bigInteger("points_restored").notNullable();
    t.bigInteger("from_balance").notNullable();
    t.bigInteger("to_debt").notNullable();
    t.bigInteger("to_recovery").notNullable();
    t.timestamp("occurred_at", { useTz: true }).notNullable();
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(["partner_id", "partner_refund_id"]);
  });
  await knex.raw("ALTER TABLE point_refunds ADD CONSTRAINT point_refunds_amount_positive CHECK (amount_minor > 0)");

  await knex.schema.createTable("redemptions", (t) => {
    t.text("id").primary();
    t.text("partner_id").notNullable().references("partners.id");
    t.text("partner_transaction_id").notNullable();
    t.text("member_id").notNullable().references("members.id");
    t.bigInteger("points").notNullable();
    t.bigInteger("amount_minor").notNullable();
    t.string("currency", 3).notNullable();
    t.text("status").notNullable().defaultTo("held");
    t.bigInteger("captured_points").notNullable().defaultTo(0);
    t.text("contract_version_id").notNullable().references("contract_versions.id");
    t.timestamp("occurred_at", { useTz: true }).notNullable();
    t.timestamp("expires_at", { useTz: true }).notNullable();
    t.text("transaction_id").references("point_transactions.id");
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp("updated_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(["partner_id", "partner_transaction_id"]);
  });
  await knex.raw(`
    ALTER TABLE redemptions
      ADD CONSTRAINT redemptions_status_valid CHECK (status IN ('held', 'captured', 'voided', 'expired')),
      ADD CONSTRAINT redemptions_points_valid CHECK (points > 0 AND captured_points BETWEEN 0 AND points AND amount_minor >= 0)`);
  await knex.raw("CREATE INDEX redemptions_open_idx ON redemptions (expires_at) WHERE status = 'held'");
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists("redemptions");
  await knex.schema.dropTableIfExists("point_refunds");
  await knex.schema.dropTableIfExists("point_transactions");
}
