import type { Knex } from "knex";

/**
 * Paid and closed membership billed through Stripe: plans (a subscription or a one-off fee, and
 * the tier it grants), members' memberships moved on by Stripe's signed webhooks, and the ids of
 * Stripe events already handled (Stripe delivers at least once).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("membership_plans", (t) => {
    t.text("code").primary();
    t.text("name").notNullable();
    t.text("kind").notNullable();
    t.bigInteger("amount_minor").notNullable();
    t.string("currency", 3).notNullable();
    t.text("interval");
    t.integer("duration_days");
    t.text("grants_tier");
    t.text("stripe_product_id").notNullable();
    t.text("stripe_price_id").notNullable();
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`
    ALTER TABLE membership_plans
      ADD CONSTRAINT membership_plans_kind_valid CHECK (kind IN ('subscription', 'one_off')),
      ADD CONSTRAINT membership_plans_amount_positive CHECK (amount_minor > 0),
      ADD CONSTRAINT membership_plans_interval_valid CHECK ((kind = 'subscription') = (interval IN ('month', 'year')) AND (interval IS NOT NULL OR kind = 'one_off'))`);
  await knex.schema.createTable("memberships", (t) => {
    t.text("id").primary();
    t.text("member_id").notNullable().references("members.id");
    t.text("plan_code").notNullable().references("membership_plans.code");
    t.text("partner_id").notNullable().references("partners.id");
    t.text("status").notNullable();
    t.text("stripe_checkout_session_id");
    t.text("stripe_customer_id");
    t.text("stripe_subscription_id");
    t.timestamp("paid_until", { useTz: true });
    t.timestamp("created_at", { useTz: true }).notNullable();
    t.timestamp("updated_at", { useTz: true }).notNullable();
  });
  await knex.raw(`ALTER TABLE memberships ADD CONSTRAINT memberships_status_valid CHECK (status IN ('pending', 'active', 'past_due', 'canceled', 'expired'))`);
  await knex.raw("CREATE INDEX memberships_member_idx ON memberships (member_id, status)");
  await knex.raw("CREATE UNIQUE INDEX memberships_session_key ON memberships (stripe_checkout_session_id)");
  await knex.raw("CREATE INDEX memberships_subscription_idx ON memberships (stripe_subscription_id)");
  await knex.schema.createTable("stripe_events", (t) => {
    t.text("id").primary();
    t.text("type").notNullable();
    t.timestamp("received_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists("stripe_events");
  await knex.schema.dropTableIfExists("memberships");
  await knex.schema.dropTableIfExists("membership_plans");
}
