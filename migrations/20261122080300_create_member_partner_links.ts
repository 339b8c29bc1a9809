import type { Knex } from "knex";

/**
 * Which partners know a member: the one that enrolled them, and every one they have used since
 * (an earn or burn there, a card presented there). A partner sees only members linked to it.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("member_partner_links", (t) => {
    t.text("member_id").notNullable().references("members.id");
    t.text("partner_id").notNullable().references("partners.id");
    t.text("relation").notNullable();
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(["member_id", "partner_id"]);
  });
  await knex.raw("ALTER TABLE member_partner_links ADD CONSTRAINT member_partner_links_relation_valid CHECK (relation IN ('enrolled', 'used'))");
  await knex.raw("CREATE INDEX member_partner_links_partner_idx ON member_partner_links (partner_id, member_id)");
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists("member_partner_links");
}
