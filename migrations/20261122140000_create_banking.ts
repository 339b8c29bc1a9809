import type { Knex } from "knex";

/**
 * Banks: payment cards linked to members (never a PAN — the bank's token or keyed fingerprint, BIN,
 * last four, expiry month), the card events banks send (append-only, unique per bank event id),
 * one row per purchase with the state derived from its events and what of it is booked in the
 * ledger, card-linked offers, cashback payouts and round-up sweeps. Money moves only through the
 * ledger; these rows say what a bank sent and what the hub instructed.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("payment_cards", (t) => {
    t.text("id").primary();
    t.text("bank_partner_id").notNullable().references("partners.id");
    t.text("member_id").notNullable().references("members.id");
    // The bank's card token or keyed fingerprint: what card events name the card by.
    t.text("card_token").notNullable();
    t.string("bin", 8).notNullable();
    t.string("last_four", 4).notNullable();
    t.string("expiry_month", 7).notNullable();
    t.text("status").notNullable().defaultTo("active");
    t.timestamp("linked_at", { useTz: true }).notNullable();
    t.timestamp("unlinked_at", { useTz: true });
  });
  await knex.raw(`
    ALTER TABLE payment_cards
      ADD CONSTRAINT payment_cards_status_valid CHECK (status IN ('active', 'unlinked')),
      ADD CONSTRAINT payment_cards_bin_valid CHECK (bin ~ '^[0-9]{6,8}$'),
      ADD CONSTRAINT payment_cards_last_four_valid CHECK (last_four ~ '^[0-9]{4}$'),
      ADD CONSTRAINT payment_cards_expiry_valid CHECK (expiry_month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$')`);
  // One active link per bank token; an unlinked card may be linked again later.
  await knex.raw("CREATE UNIQUE INDEX payment_cards_active_token_key ON payment_cards (bank_partner_id, card_token) WHERE status = 'active'");
  await knex.raw("CREATE INDEX payment_cards_member_idx ON payment_cards (member_id, id)");

  await knex.schema.createTable("card_offers", (t) => {
    t.text("id").primary();
    t.text("partner_id").notNullable().references("partners.id");
    t.text("name").notNullable();
    t.text("reward_type").notNullable();
    t.integer("cashback_bps");
    t.bigInteger("points");
    t.string("currency", 3).notNullable();
    t.bigInteger("min_spend_minor").notNullable().defaultTo(0);
    t.bigInteger("max_reward_per_purchase");
    t.bigInteger("max_reward_per_member");
    // ISO weekdays 1 (Monday) … 7; empty: every day.
    t.jsonb("days_of_week").notNullable().defaultTo("[]");
    t.timestamp("starts_at", { useTz: true }).notNullable();
    t.timestamp("ends_at", { useTz: true });
    t.boolean("requires_activation").notNullable().defaultTo(false);
    t.integer("return_period_days").notNullable().defaultTo(30);
    t.text("status").notNullable().defaultTo("active");
    t.timestamp("created_at", { useTz: true }).notNullable();
  });
  await knex.raw(`
    ALTER TABLE card_offers
      ADD CONSTRAINT card_offers_reward_valid CHECK (
        (reward_type = 'cashback' AND cashback_bps BETWEEN 1 AND 10000 AND points IS NULL) OR
        (reward_type = 'points' AND points > 0 AND cashback_bps IS NULL)),
      ADD CONSTRAINT card_offers_caps_valid CHECK (min_spend_minor >= 0 AND coalesce(max_reward_per_purchase, 1) > 0 AND coalesce(max_reward_per_member, 1) > 0),
      ADD CONSTRAINT card_offers_window_valid CHECK (ends_at IS NULL OR ends_at > starts_at),
      ADD CONSTRAINT card_offers_return_period_valid CHECK (return_period_days BETWEEN 0 AND 365),
      ADD CONSTRAINT card_offers_status_valid CHECK (status IN ('active', 'ended'))`);
  await knex.raw("CREATE INDEX card_offers_partner_idx ON card_offers (partner_id, status)");

  await knex.schema.createTable("card_offer_activations", (t) => {
    t.text("offer_id").notNullable().references("card_offers.id");
    t.text("member_id").notNullable().references("members.id");
    t.text("activated_by_partner_id").notNullable().references("partners.id");
    t.timestamp("activated_at", { useTz: true }).notNullable();
    t.primary(["offer_id", "member_id"]);
  });

  await knex.schema.createTable("card_purchases", (t) => {
    t.text("id").primary();
    t.text("bank_partner_id").notNullable().references("partners.id");
    // The bank's id of the purchase: every auth, clearing, reversal and refund of it carries it.
    t.text("purchase_ref").notNullable();
    t.text("card_token").notNullable();
    t.text("payment_card_id").references("payment_cards.id");
    t.text("member_id").references("members.id");
    t.string("currency", 3).notNullable();
    t.text("mid");
    t.string("mcc", 4);
    t.text("merchant_name");
    t.timestamp("transaction_at", { useTz: true }).notNullable();
    t.text("status").notNullable();
    t.bigInteger("authorized_minor").notNullable().defaultTo(0);
    t.bigInteger("cleared_minor").notNullable().defaultTo(0);
    t.bigInteger("refunded_minor").notNullable().defaultTo(0);
    t.text("partner_id").references("partners.id");
    t.text("location_id");
    t.text("match_method");
    t.text("offer_id").references("card_offers.id");
    t.text("reward_type");
    t.text("contract_version_id").references("contract_versions.id");
    // Estimated while only authorised: not in the ledger, not spendable.
    t.bigInteger("pending_cashback_minor").notNullable().defaultTo(0);
    t.bigInteger("pending_points").notNullable().defaultTo(0);
    // What of this purchase the ledger holds now (the sum of its entries).
    t.bigInteger("booked_cashback_minor").notNullable().defaultTo(0);
    t.bigInteger("booked_points").notNullable().defaultTo(0);
    t.text("earn_entry_id");
    t.timestamp("cashback_available_at", { useTz: true });
    t.timestamp("cashback_released_at", { useTz: true });
    t.timestamp("qualified_at", { useTz: true });
    t.timestamp("created_at", { useTz: true }).notNullable();
    t.timestamp("updated_at", { useTz: true }).notNullable();
    t.unique(["bank_partner_id", "purchase_ref"]);
  });
  await knex.raw(`
    ALTER TABLE card_purchases
      ADD CONSTRAINT card_purchases_status_valid CHECK (status IN ('authorized', 'cleared', 'reversed', 'expired', 'refunded')),
      ADD CONSTRAINT card_purchases_match_valid CHECK (match_method IS NULL OR match_method IN ('mid', 'mcc_name', 'manual')),
      ADD CONSTRAINT card_purchases_amounts_valid CHECK (authorized_minor >= 0 AND cleared_minor >= 0 AND refunded_minor BETWEEN 0 AND cleared_minor
        AND pending_cashback_minor >= 0 AND pending_points >= 0 AND booked_cashback_minor >= 0 AND booked_points >= 0)`);
  await knex.raw("CREATE INDEX card_purchases_unmatched_idx ON card_purchases (id) WHERE partner_id IS NULL AND member_id IS NOT NULL");
  await knex.raw("CREATE INDEX card_purchases_auth_open_idx ON card_purchases (transaction_at) WHERE status = 'authorized'");
  await knex.raw("CREATE INDEX card_purchases_release_idx ON card_purchases (cashback_available_at) WHERE cashback_released_at IS NULL AND booked_cashback_minor > 0");
  await knex.raw("CREATE INDEX card_purchases_member_idx ON card_purchases (member_id, id)");

  await knex.schema.createTable("card_events", (t) => {
    t.text("id").primary();
    t.text("bank_partner_id").notNullable().references("partners.id");
    t.text("event_id").notNullable();
    t.text("purchase_id").notNullable().references("card_purchases.id");
    t.text("type").notNullable();
    t.bigInteger("amount_minor").notNullable();
    t.string("currency", 3).notNullable();
    t.timestamp("transaction_at", { useTz: true }).notNullable();
    t.timestamp("received_at", { useTz: true }).notNullable();
    t.unique(["bank_partner_id", "event_id"]);
  });
  await knex.raw(`
    ALTER TABLE card_events
      ADD CONSTRAINT card_events_type_valid CHECK (type IN ('auth', 'clearing', 'reversal', 'refund')),
      ADD CONSTRAINT card_events_amount_valid CHECK (amount_minor >= 0)`);
  await knex.raw("CREATE INDEX card_events_purchase_idx ON card_events (purchase_id)");
  await knex.raw("CREATE TRIGGER card_events_append_only BEFORE UPDATE OR DELETE ON card_events FOR EACH ROW EXECUTE FUNCTION forbid_change()");

  await knex.schema.createTable("cashback_payouts", (t) => {
    t.text("id").primary();
    t.text("member_id").notNullable().references("members.id");
    t.text("bank_partner_id").notNullable().references("partners.id");
    t.string("currency", 3).notNullable();
    t.bigInteger("amount_minor").notNullable();
    t.date("business_day").notNullable();
    t.text("ledger_entry_id").notNullable();
    t.timestamp("instructed_at", { useTz: true }).notNullable();
    t.unique(["member_id", "bank_partner_id", "currency", "business_day"]);
  });
  await knex.raw("ALTER TABLE cashback_payouts ADD CONSTRAINT cashback_payouts_amount_positive CHECK (amount_minor > 0)");
  await knex.raw("CREATE INDEX cashback_payouts_bank_day_idx ON cashback_payouts (bank_partner_id, business_day)");

  await knex.schema.createTable("roundup_settings", (t) => {
    t.text("member_id").primary().references("members.id");
    t.text("bank_partner_id").notNullable().references("partners.id");
    t.boolean("enabled").notNullable().defaultTo(true);
    t.integer("round_to_units").notNullable().defaultTo(1);
    t.integer("multiplier").notNullable().defaultTo(1);
    t.bigInteger("weekly_cap_minor");
    t.timestamp("updated_at", { useTz: true }).notNullable();
  });
  await knex.raw(`
    ALTER TABLE roundup_settings
      ADD CONSTRAINT roundup_settings_round_to_valid CHECK (round_to_units IN (1, 10)),
      ADD CONSTRAINT roundup_settings_multiplier_valid CHECK (multiplier BETWEEN 1 AND 10),
      ADD CONSTRAINT roundup_settings_cap_valid CHECK (weekly_cap_minor IS NULL OR weekly_cap_minor >= 0)`);

  await knex.schema.createTable("roundup_sweeps", (t) => {
    t.text("id").primary();
    t.text("member_id").notNullable().references("members.id");
    t.text("bank_partner_id").notNullable().references("partners.id");
    t.string("currency", 3).notNullable();
    t.date("business_day").notNullable();
    t.bigInteger("roundup_minor").notNullable();
    t.bigInteger("match_minor").notNullable();
    t.text("status").notNullable().defaultTo("instructed");
    t.bigInteger("confirmed_roundup_minor");
    t.bigInteger("confirmed_match_minor");
    t.text("ledger_entry_id");
    t.timestamp("instructed_at", { useTz: true }).notNullable();
    t.timestamp("confirmed_at", { useTz: true });
    t.unique(["member_id", "bank_partner_id", "currency", "business_day"]);
  });
  await knex.raw(`
    ALTER TABLE roundup_sweeps
      ADD CONSTRAINT roundup_sweeps_status_valid CHECK (status IN ('instructed', 'confirmed', 'failed')),
      ADD CONSTRAINT roundup_sweeps_amounts_valid CHECK (roundup_minor >= 0 AND match_minor >= 0 AND roundup_minor + match_minor > 0
        AND coalesce(confirmed_roundup_minor, 0) BETWEEN 0 AND roundup_minor AND coalesce(confirmed_match_minor, 0) BETWEEN 0 AND match_minor)`);

  await knex.schema.createTable("roundup_items", (t) => {
    t.text("purchase_id").primary().references("card_purchases.id");
    t.text("member_id").notNullable().references("members.id");
    t.text("bank_partner_id").notNullable().references("partners.id");
    t.string("currency", 3).notNullable();
    // The Monday (UTC) of the purchase's week: the weekly cap applies per member and week.
    t.date("week").notNullable();
    t.timestamp("transaction_at", { useTz: true }).notNullable();
    t.bigInteger("raw_minor").notNullable();
    t.bigInteger("allocated_minor").notNullable();
    t.bigInteger("match_minor").notNullable();
    t.text("match_partner_id").references("partners.id");
    t.integer("match_bps").notNullable().defaultTo(0);
    t.text("sweep_id").references("roundup_sweeps.id");
  });
  await knex.raw("ALTER TABLE roundup_items ADD CONSTRAINT roundup_items_amounts_valid CHECK (raw_minor >= 0 AND allocated_minor BETWEEN 0 AND raw_minor AND match_minor >= 0)");
  await knex.raw("CREATE INDEX roundup_items_week_idx ON roundup_items (member_id, week)");
  await knex.raw("CREATE INDEX roundup_items_unswept_idx ON roundup_items (member_id) WHERE sweep_id IS NULL");
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists("roundup_items");
  await knex.schema.dropTableIfExists("roundup_sweeps");
  await knex.schema.dropTableIfExists("roundup_settings");
  await knex.schema.dropTableIfExists("cashback_payouts");
  await knex.raw("DROP TRIGGER IF EXISTS card_events_append_only ON card_events");
  await knex.schema.dropTableIfExists("card_events");
  await knex.schema.dropTableIfExists("card_purchases");
  await knex.schema.dropTableIfExists("card_offer_activations");
  await knex.schema.dropTableIfExists("card_offers");
  await knex.schema.dropTableIfExists("payment_cards");
}
