import type { Knex } from "knex";

// Every group a line may have before this migration, those of 20261130100000 (funders and money) included.
const GROUPS = [
  "issuance",
  "issuance_reversal",
  "redemption",
  "redemption_reversal",
  "breakage_share",
  "transaction_fee",
  "monthly_fee",
  "operator_funded_issuance",
  "operator_funded_reversal",
  "operator_funded_breakage",
  "cashback_funding",
  "cashback_funding_reversal",
  "roundup_match_funding",
  "cashback_payout",
  "roundup_match_credited",
];
const quoted = (xs: string[]) => xs.map((x) => `'${x}'`).join(", ");

/**
 * Statement PDFs, disputes of statement lines, and the adjustments that accepted disputes book.
 *
 * - `settlement_statement_pdfs`: the summary PDF rendered when the statement is priced, kept as
 *   bytes so what a finance team filed can always be downloaded again, byte for byte, whatever
 *   library version renders PDFs later. Final once its statement is closed.
 * - `settlement_disputes` and their append-only trail (opened, comments, resolution).
 * - `settlement_adjustments`: money a resolution books into the partner's next statement. It names
 *   the statement and line it corrects; clearing claims it into the first statement priced for a
 *   period on or after `period` and prints it as an `adjustment` line. A closed statement never
 *   changes; an adjustment carried by one is final too.
 * - `settlement_lines` gains the `adjustment` group and the columns naming what such a line
 *   corrects. (If another migration redefines `settlement_lines_group_valid`, the list must be the
 *   union of both.)
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("settlement_statement_pdfs", (t) => {
    t.text("statement_id").primary().references("settlement_statements.id");
    t.text("sha256").notNullable();
    t.integer("size").notNullable();
    t.binary("bytes").notNullable();
  });
  await knex.raw("ALTER TABLE settlement_statements ADD COLUMN pdf_sha256 text");

  await knex.schema.createTable("settlement_disputes", (t) => {
    t.text("id").primary();
    t.text("partner_id").notNullable().references("partners.id");
    t.text("statement_id").notNullable().references("settlement_statements.id");
    t.integer("line_no").notNullable();
    t.text("reason").notNullable();
    t.bigInteger("amount_claimed_minor");
    t.string("currency", 3).notNullable();
    t.text("status").notNullable().defaultTo("open");
    t.text("resolution_note");
    t.timestamp("opened_at", { useTz: true }).notNullable();
    t.timestamp("resolved_at", { useTz: true });
    t.foreign(["statement_id", "line_no"]).references(["statement_id", "line_no"]).inTable("settlement_lines");
  });
  await knex.raw(`
    ALTER TABLE settlement_disputes
      ADD CONSTRAINT settlement_disputes_status_valid CHECK (status IN ('open', 'rejected', 'accepted')),
      ADD CONSTRAINT settlement_disputes_claim_nonzero CHECK (amount_claimed_minor IS NULL OR amount_claimed_minor <> 0),
      ADD CONSTRAINT settlement_disputes_resolved_complete CHECK ((status = 'open') = (resolved_at IS NULL))`);
  // One open dispute per statement line at a time; a resolved line may be disputed again.
  await knex.raw("CREATE UNIQUE INDEX settlement_disputes_open_line_uq ON settlement_disputes (statement_id, line_no) WHERE status = 'open'");
  await knex.raw("CREATE INDEX settlement_disputes_partner_idx ON settlement_disputes (partner_id, id)");
  await knex.raw("CREATE INDEX settlement_disputes_status_idx ON settlement_disputes (status, id)");

  await knex.schema.createTable("settlement_dispute_trail", (t) => {
    t.bigIncrements("id").primary();
    t.text("dispute_id").notNullable().references("settlement_disputes.id");
    t.timestamp("at", { useTz: true }).notNullable();
    t.text("kind").notNullable();
    t.text("actor").notNullable();
    t.text("actor_client_id");
    t.text("note");
    t.bigInteger("amount_minor");
  });
  await knex.raw(`
    ALTER TABLE settlement_dispute_trail
      ADD CONSTRAINT settlement_dispute_trail_kind_valid CHECK (kind IN ('opened', 'comment', 'rejected', 'accepted')),
      ADD CONSTRAINT settlement_dispute_trail_actor_valid CHECK (actor IN ('partner', 'operator'))`);
  await knex.raw("CREATE INDEX settlement_dispute_trail_dispute_idx ON settlement_dispute_trail (dispute_id, id)");
  await knex.raw(`
    CREATE FUNCTION settlement_dispute_trail_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'the dispute trail is append-only: % refused', TG_OP USING ERRCODE = 'P0001';
    END $$`);
  await knex.raw(
    "CREATE TRIGGER settlement_dispute_trail_append_only BEFORE UPDATE OR DELETE ON settlement_dispute_trail FOR EACH ROW EXECUTE FUNCTION settlement_dispute_trail_append_only()",
  );

  await knex.schema.createTable("settlement_adjustments", (t) => {
    t.text("id").primary();
    t.text("partner_id").notNullable().references("partners.id");
    t.string("currency", 3).notNullable();
    // Signed from the partner's side, like statement lines: positive, the operator owes the partner.
    t.bigInteger("amount_minor").notNullable();
    // The month it is booked into: the month in which it was accepted, always still open.
    t.text("period").notNullable();
    t.text("corrects_statement_id").notNullable().references("settlement_statements.id");
    t.integer("corrects_line_no").notNullable();
    t.text("dispute_id").unique().references("settlement_disputes.id");
    t.text("description").notNullable();
    // The statement that carries it, once clearing priced it.
    t.text("statement_id").references("settlement_statements.id");
    t.timestamp("created_at", { useTz: true }).notNullable();
  });
  await knex.raw(`
    ALTER TABLE settlement_adjustments
      ADD CONSTRAINT settlement_adjustments_amount_nonzero CHECK (amount_minor <> 0),
      ADD CONSTRAINT settlement_adjustments_period_valid CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$')`);
  await knex.raw("CREATE INDEX settlement_adjustments_partner_idx ON settlement_adjustments (partner_id, period) WHERE statement_id IS NULL");

  await knex.raw(`
    ALTER TABLE settlement_lines
      ADD COLUMN adjustment_id text REFERENCES settlement_adjustments(id),
      ADD COLUMN corrects_statement_id text REFERENCES settlement_statements(id),
      ADD COLUMN corrects_line_no integer,
      DROP CONSTRAINT settlement_lines_group_valid,
      ADD CONSTRAINT settlement_lines_group_valid CHECK (line_group IN (${quoted([...GROUPS, "adjustment"])})),
      ADD CONSTRAINT settlement_lines_adjustment_named CHECK ((line_group = 'adjustment') = (adjustment_id IS NOT NULL))`);

  // Final once the statement is closed: the same rule as the statement's own lines and items.
  for (const table of ["settlement_statement_pdfs", "settlement_adjustments"]) {
    await knex.raw(`CREATE TRIGGER ${table}_closed_final BEFORE UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION settlement_forbid_closed_change()`);
  }
}

export async function down(knex: Knex): Promise<void> {
  // Lines of open statements only: a closed statement's adjustment line is final (the trigger
  // refuses), so a database holding one cannot be rolled back past this migration — on purpose.
  await knex.raw("DELETE FROM settlement_lines WHERE line_group = 'adjustment'");
  await knex.raw(`
    ALTER TABLE settlement_lines
      DROP CONSTRAINT settlement_lines_adjustment_named,
      DROP CONSTRAINT settlement_lines_group_valid,
      ADD CONSTRAINT settlement_lines_group_valid CHECK (line_group IN (${quoted(GROUPS)})),
      DROP COLUMN corrects_line_no,
      DROP COLUMN corrects_statement_id,
      DROP COLUMN adjustment_id`);
  await knex.schema.dropTableIfExists("settlement_adjustments");
  await knex.raw("DROP TRIGGER IF EXISTS settlement_dispute_trail_append_only ON settlement_dispute_trail");
  await knex.raw("DROP FUNCTION IF EXISTS settlement_dispute_trail_append_only()");
  await knex.schema.dropTableIfExists("settlement_dispute_trail");
  await knex.schema.dropTableIfExists("settlement_disputes");
  await knex.raw("ALTER TABLE settlement_statements DROP COLUMN pdf_sha256");
  await knex.schema.dropTableIfExists("settlement_statement_pdfs");
}
