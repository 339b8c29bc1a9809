import type { Knex } from "knex";

/**
 * Clearing and settlement. A run clears one calendar month for every partner; each partner gets one
 * statement, its priced lines, and the trace of the ledger entries it cleared (its items).
 *
 * - A ledger entry (or, for breakage, one lot of an expiry entry) is cleared for a partner once:
 *   UNIQUE (partner_id, entry_id, lot_id) on the items. An entry not cleared when its month closed
 *   is picked up by the next run and priced there as an adjustment naming the month it belongs to.
 * - Runs and statements move through steps (collect → price → verify → render → close); every step
 *   is idempotent and commits with its step marker, so a run resumes where it stopped.
 * - Once closed, a statement, its lines and its items never change (triggers refuse it).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("settlement_runs", (t) => {
    t.text("id").primary();
    t.text("period").notNullable().unique();
    t.timestamp("period_start", { useTz: true }).notNullable();
    t.timestamp("period_end", { useTz: true }).notNullable();
    t.text("status").notNullable().defaultTo("running");
    t.text("step").notNullable().defaultTo("statements");
    t.integer("attempts").notNullable().defaultTo(0);
    // The last ledger posting the run clears (taken when it starts): what is posted later belongs
    // to the next run, so a crashed run resumes on exactly the same entries.
    t.bigInteger("posting_watermark");
    t.text("failure");
    t.jsonb("report");
    t.timestamp("created_at", { useTz: true }).notNullable();
    t.timestamp("updated_at", { useTz: true }).notNullable();
    t.timestamp("closed_at", { useTz: true });
  });
  await knex.raw(`
    ALTER TABLE settlement_runs
      ADD CONSTRAINT settlement_runs_period_valid CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$' AND period_end > period_start),
      ADD CONSTRAINT settlement_runs_status_valid CHECK (status IN ('running', 'failed', 'closed')),
      ADD CONSTRAINT settlement_runs_step_valid CHECK (step IN ('statements', 'clearing', 'network', 'close', 'done'))`);

  await knex.schema.createTable("settlement_statements", (t) => {
    t.text("id").primary();
    t.text("run_id").notNullable().references("settlement_runs.id");
    t.text("partner_id").notNullable().references("partners.id");
    t.text("period").notNullable();
    t.text("status").notNullable().defaultTo("open");
    t.text("step").notNullable().defaultTo("collect");
    t.string("currency", 3);
    t.bigInteger("opening_position_minor");
    t.bigInteger("net_amount_minor");
    t.bigInteger("closing_position_minor");
    t.date("due_date");
    t.text("content_sha256");
    t.text("csv_sha256");
    t.integer("item_count");
    t.integer("attempts").notNullable().defaultTo(0);
    t.text("failure");
    t.timestamp("created_at", { useTz: true }).notNullable();
    t.timestamp("closed_at", { useTz: true });
    t.unique(["partner_id", "period"]);
  });
  await knex.raw(`
    ALTER TABLE settlement_statements
      ADD CONSTRAINT settlement_statements_status_valid CHECK (status IN ('open', 'failed', 'closed')),
      ADD CONSTRAINT settlement_statements_step_valid CHECK (step IN ('collect', 'price', 'verify', 'render', 'ready', 'closed')),
      ADD CONSTRAINT settlement_statements_closed_complete CHECK (
        status <> 'closed' OR (net_amount_minor IS NOT NULL AND content_sha256 IS NOT NULL AND csv_sha256 IS NOT NULL AND closed_at IS NOT NULL))`);
  await knex.raw("CREATE INDEX settlement_statements_run_idx ON settlement_statements (run_id, partner_id)");
  await knex.raw("CREATE INDEX settlement_statements_partner_idx ON settlement_statements (partner_id, period DESC)");

  // The trace: which ledger entry (and, for breakage, which lot) a statement cleared, with how many
  // points it moved for the partner. Lines are aggregates of these rows.
  await knex.schema.createTable("settlement_items", (t) => {
    t.bigIncrements("id").primary();
    t.text("statement_id").notNullable().references("settlement_statements.id");
    t.text("partner_id").notNullable().references("partners.id");
    t.text("entry_id").notNullable().references("ledger_entries.id");
    // '' when the item is a whole entry; the lot for breakage (one expiry entry spans many lots).
    t.text("lot_id").notNullable().defaultTo("");
    t.text("line_group").notNullable();
    t.text("entry_kind").notNullable();
    t.text("ref_type");
    t.text("ref_id");
    t.timestamp("occurred_at", { useTz: true }).notNullable();
    // The month the entry belongs to, when it is not the statement's own (a late entry).
    t.text("corrects_period");
    t.text("contract_version_id").references("contract_versions.id");
    t.bigInteger("points").notNullable();
    // The statement line the item is priced in, and its place in the CSV (set when priced).
    t.integer("line_no");
    t.integer("seq");
    t.unique(["partner_id", "entry_id", "lot_id"]);
  });
  await knex.raw(`
    ALTER TABLE settlement_items
      ADD CONSTRAINT settlement_items_group_valid CHECK (line_group IN (
        'issuance', 'issuance_reversal', 'redemption', 'redemption_reversal', 'breakage_share', 'unclassified'))`);
  await knex.raw("CREATE INDEX settlement_items_statement_idx ON settlement_items (statement_id, seq)");
  await knex.raw("CREATE INDEX settlement_items_entry_idx ON settlement_items (entry_id)");

  await knex.schema.createTable("settlement_lines", (t) => {
    t.text("statement_id").notNullable().references("settlement_statements.id");
    t.integer("line_no").notNullable();
    t.text("line_group").notNullable();
    t.text("contract_version_id").references("contract_versions.id");
    t.integer("contract_version");
    t.text("corrects_period");
    t.bigInteger("points").notNullable();
    t.integer("item_count").notNullable();
    t.integer("transaction_count").notNullable();
    // The rate applied: a price in micro-units per point, a fee in minor units, a share in bps.
    t.bigInteger("price_micros");
    t.bigInteger("fee_minor");
    t.integer("share_bps");
    // Exact value before rounding, in micro-units × share bps ÷ 10,000 terms (see docs/settlement.md).
    t.text("exact_amount");
    // Signed from the partner's side: positive, the operator owes the partner; negative, the reverse.
    t.bigInteger("amount_minor").notNullable();
    t.text("rounding").notNullable();
    t.text("description").notNullable();
    t.primary(["statement_id", "line_no"]);
  });
  await knex.raw(`
    ALTER TABLE settlement_lines
      ADD CONSTRAINT settlement_lines_group_valid CHECK (line_group IN (
        'issuance', 'issuance_reversal', 'redemption', 'redemption_reversal', 'breakage_share', 'transaction_fee', 'monthly_fee'))`);

  // A closed statement is final: its row, lines and items never change again. Open ones may be
  // rewritten by their own run (a failed verification undoes its lines and items).
  await knex.raw(`
    CREATE FUNCTION settlement_forbid_closed_change() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      sid text;
    BEGIN
      IF TG_TABLE_NAME = 'settlement_statements' THEN
        IF OLD.status = 'closed' THEN
          RAISE EXCEPTION 'settlement statement % is closed: % refused', OLD.id, TG_OP USING ERRCODE = 'P0001';
        END IF;
        RETURN COALESCE(NEW, OLD);
      END IF;
      sid := OLD.statement_id;
      IF EXISTS (SELECT 1 FROM settlement_statements WHERE id = sid AND status = 'closed') THEN
        RAISE EXCEPTION 'settlement statement % is closed: % on % refused', sid, TG_OP, TG_TABLE_NAME USING ERRCODE = 'P0001';
      END IF;
      RETURN COALESCE(NEW, OLD);
    END $$`);
  for (const table of ["settlement_statements", "settlement_lines", "settlement_items"]) {
    await knex.raw(`CREATE TRIGGER ${table}_closed_final BEFORE UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION settlement_forbid_closed_change()`);
  }
  // Clearing reads expiry provenance by issuer.
  await knex.raw("CREATE INDEX settlement_lots_issuer_idx ON ledger_lots (issuing_partner_id)");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("DROP INDEX IF EXISTS settlement_lots_issuer_idx");
  for (const table of ["settlement_statements", "settlement_lines", "settlement_items"]) {
    await knex.raw(`DROP TRIGGER IF EXISTS ${table}_closed_final ON ${table}`);
  }
  await knex.raw("DROP FUNCTION IF EXISTS settlement_forbid_closed_change()");
  await knex.schema.dropTableIfExists("settlement_lines");
  await knex.schema.dropTableIfExists("settlement_items");
  await knex.schema.dropTableIfExists("settlement_statements");
  await knex.schema.dropTableIfExists("settlement_runs");
}
