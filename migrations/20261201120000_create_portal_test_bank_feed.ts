import type { Knex } from "knex";

/**
 * The sandbox's test bank feed (portal/src/developer/test-bank.service.ts): for each developer's
 * sandbox partner, the pair of sandbox partners it runs between — a test bank and a merchant, one of
 * them the developer's own sandbox partner — and the merchant location whose MID the feed's card
 * events carry; the test members' payment cards the test bank linked; and the purchases the
 * developer sent, to list them back (their state is the banking feature's, read through it).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("portal_sandbox_feeds", (t) => {
    t.text("sandbox_partner_id").primary().references("partners.id");
    // Null while the feed is being set up (the row is claimed first, so two set-ups never race).
    t.text("bank_partner_id").references("partners.id");
    t.text("merchant_partner_id").references("partners.id");
    t.text("mid");
    t.text("merchant_name");
    t.timestamp("created_at", { useTz: true }).notNullable();
  });
  await knex.schema.createTable("portal_sandbox_payment_cards", (t) => {
    t.text("sandbox_partner_id").notNullable().references("portal_sandbox_feeds.sandbox_partner_id");
    t.text("member_id").notNullable();
    t.text("payment_card_id").notNullable();
    t.text("card_token").notNullable();
    t.text("masked").notNullable();
    t.primary(["sandbox_partner_id", "member_id"]);
  });
  await knex.schema.createTable("portal_sandbox_feed_purchases", (t) => {
    t.bigIncrements("id").primary();
    t.text("sandbox_partner_id").notNullable().references("portal_sandbox_feeds.sandbox_partner_id");
    t.text("purchase_ref").notNullable();
    t.text("member_id").notNullable();
    t.text("card_token").notNullable();
    t.timestamp("transaction_at", { useTz: true }).notNullable();
    t.unique(["sandbox_partner_id", "purchase_ref"]);
  });
  await knex.raw("CREATE INDEX portal_sandbox_feed_purchases_partner_idx ON portal_sandbox_feed_purchases (sandbox_partner_id, id DESC)");
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable("portal_sandbox_feed_purchases");
  await knex.schema.dropTable("portal_sandbox_payment_cards");
  await knex.schema.dropTable("portal_sandbox_feeds");
}
