import type { Knex } from "knex";

/** Where the operator pays a net creditor by bank transfer (ISO 20022 pain.001). */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("settlement_payee_accounts", (t) => {
    t.text("partner_id").primary().references("partners.id");
    t.text("account_holder").notNullable();
    t.text("iban").notNullable();
    t.text("bic").notNullable();
    t.timestamp("updated_at", { useTz: true }).notNullable();
  });
  // {0,1} rather than "?": knex reads a bare "?" in raw SQL as a binding.
  await knex.raw(`
    ALTER TABLE settlement_payee_accounts
      ADD CONSTRAINT settlement_payee_iban_format CHECK (iban ~ '^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$'),
      ADD CONSTRAINT settlement_payee_bic_format CHECK (bic ~ '^[A-Z]{6}[A-Z2-9][A-NP-Z0-9]([A-Z0-9]{3}){0,1}$')`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists("settlement_payee_accounts");
}
