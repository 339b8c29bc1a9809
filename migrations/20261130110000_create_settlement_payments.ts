import type { Knex } from "knex";

/**
 * Paying and reconciling closed statements.
 *
 * - `payment_obligations`: one per closed statement whose net is not zero — who pays whom, how
 *   much, by when, on which rail, and where it stands. A trigger creates it in the very transaction
 *   that closes the statement, so a closed statement is never without its obligation (and clearing
 *   does not need to know about payments).
 * - `payments`: every amount recorded against an obligation, append-only. `external_key` names the
 *   money movement (a Stripe transfer or invoice, a bank entry), so a webhook, a balance-transaction
 *   import and a bank statement that all see the same movement record it once.
 * - `reconciliation_imports` / `reconciliation_items`: each imported file (hashed: the same bytes
 *   twice change nothing) and each of its entries with what it matched.
 * - `partner_stripe_accounts`: the partner's Stripe connected account (paid by transfer) and
 *   customer (invoiced).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("partner_stripe_accounts", (t) => {
    t.text("partner_id").primary().references("partners.id");
    t.text("connected_account_id");
    t.text("customer_id");
    t.timestamp("updated_at", { useTz: true }).notNullable();
  });
  await knex.raw(`
    ALTER TABLE partner_stripe_accounts
      ADD CONSTRAINT partner_stripe_accounts_account_format CHECK (connected_account_id IS NULL OR connected_account_id ~ '^acct_[A-Za-z0-9]{1,64}$'),
      ADD CONSTRAINT partner_stripe_accounts_customer_format CHECK (customer_id IS NULL OR customer_id ~ '^cus_[A-Za-z0-9]{1,64}$')`);

  await knex.schema.createTable("payment_obligations", (t) => {
    t.text("id").primary();
    t.text("statement_id").notNullable().unique().references("settlement_statements.id");
    t.text("run_id").notNullable().references("settlement_runs.id");
    t.text("partner_id").notNullable().references("partners.id");
    t.text("period").notNullable();
    t.string("currency", 3).notNullable();
    t.text("direction").notNullable();
    t.bigInteger("amount_due_minor").notNullable();
    // Σ payments.amount_minor, kept in the same transaction as each payment row.
    t.bigInteger("amount_paid_minor").notNullable().defaultTo(0);
    t.date("due_date").notNullable();
    // The end-to-end / remittance reference the money must carry (the pain.001 EndToEndId).
    t.text("reference").notNullable().unique();
    t.text("status").notNullable().defaultTo("pending");
    t.text("rail");
    t.timestamp("instructed_at", { useTz: true });
    // How many times the operator instructed it (a failed one may be instructed again): part of the
    // Stripe idempotency key and of the job id, so a retry of one instruction never pays twice.
    t.integer("instructions").notNullable().defaultTo(0);
    t.text("stripe_transfer_id").unique();
    t.text("stripe_invoice_id").unique();
    t.text("failure");
    t.timestamp("created_at", { useTz: true }).notNullable();
    t.timestamp("updated_at", { useTz: true }).notNullable();
  });
  await knex.raw(`
    ALTER TABLE payment_obligations
      ADD CONSTRAINT payment_obligations_direction_valid CHECK (direction IN ('payable_to_partner', 'receivable_from_partner')),
      ADD CONSTRAINT payment_obligations_amount_positive CHECK (amount_due_minor > 0),
      ADD CONSTRAINT payment_obligations_status_valid CHECK (status IN ('pending', 'instructed', 'paid', 'partially_paid', 'failed')),
      ADD CONSTRAINT payment_obligations_rail_valid CHECK (rail IS NULL OR rail IN ('stripe', 'bank')),
      ADD CONSTRAINT payment_obligations_instructed_has_rail CHECK (instructed_at IS NULL OR rail IS NOT NULL)`);
  await knex.raw("CREATE INDEX payment_obligations_run_idx ON payment_obligations (run_id, partner_id)");

  await knex.schema.createTable("payments", (t) => {
    t.text("id").primary();
    t.text("obligation_id").notNullable().references("payment_obligations.id");
    // Signed toward settling the obligation: a reversal (a Stripe transfer reversed) is negative.
    t.bigInteger("amount_minor").notNullable();
    t.string("currency", 3).notNullable();
    t.text("rail").notNullable();
    t.text("source").notNullable();
    t.text("reference").notNullable();
    t.text("external_key").notNullable().unique();
    t.date("value_date").notNullable();
    t.text("reconciliation_item_id");
    t.timestamp("recorded_at", { useTz: true }).notNullable();
  });
  await knex.raw(`
    ALTER TABLE payments
      ADD CONSTRAINT payments_amount_nonzero CHECK (amount_minor <> 0),
      ADD CONSTRAINT payments_rail_valid CHECK (rail IN ('stripe', 'bank')),
      ADD CONSTRAINT payments_source_valid CHECK (source IN ('stripe_webhook', 'stripe_balance', 'camt053', 'bank_csv'))`);
  await knex.raw("CREATE INDEX payments_obligation_idx ON payments (obligation_id, recorded_at)");
  // Append-only: a correction is a new (negative) row.
  await knex.raw(`
    CREATE FUNCTION payments_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'payments are append-only: % refused', TG_OP USING ERRCODE = 'P0001';
    END $$`);
  await knex.raw("CREATE TRIGGER payments_append_only BEFORE UPDATE OR DELETE ON payments FOR EACH ROW EXECUTE FUNCTION payments_append_only()");

  await knex.schema.createTable("reconciliation_imports", (t) => {
    t.text("id").primary();
    t.text("source").notNullable();
    t.text("file_sha256").notNullable();
    t.text("account");
    t.text("statement_ref");
    t.integer("entry_count").notNullable();
    t.jsonb("summary").notNullable();
    t.timestamp("created_at", { useTz: true }).notNullable();
    t.unique(["source", "file_sha256"]);
  });
  await knex.raw("ALTER TABLE reconciliation_imports ADD CONSTRAINT reconciliation_imports_source_valid CHECK (source IN ('camt053', 'bank_csv', 'stripe_balance'))");

  await knex.schema.createTable("reconciliation_items", (t) => {
    t.text("id").primary();
    t.text("import_id").notNullable().references("reconciliation_imports.id");
    t.integer("seq").notNullable();
    // credit: money the operator received; debit: money the operator paid out.
    t.text("direction").notNullable();
    t.bigInteger("amount_minor").notNullable();
    t.string("currency", 3).notNullable();
    t.date("booking_date").notNullable();
    t.text("reference");
    t.text("remittance");
    t.text("counterparty");
    // The bank's or Stripe's own id of the entry (AcctSvcrRef, balance transaction id).
    t.text("entry_ref");
    t.text("outcome").notNullable();
    t.text("obligation_id").references("payment_obligations.id");
    t.text("payment_id").references("payments.id");
    t.bigInteger("difference_minor");
    t.unique(["import_id", "seq"]);
  });
  await knex.raw(`
    ALTER TABLE reconciliation_items
      ADD CONSTRAINT reconciliation_items_direction_valid CHECK (direction IN ('credit', 'debit')),
      ADD CONSTRAINT reconciliation_items_amount_positive CHECK (amount_minor > 0),
      ADD CONSTRAINT reconciliation_items_outcome_valid CHECK (outcome IN ('matched', 'short', 'over', 'unexpected', 'duplicate', 'ignored'))`);
  await knex.raw("CREATE INDEX reconciliation_items_obligation_idx ON reconciliation_items (obligation_id)");
  await knex.raw("CREATE INDEX reconciliation_items_entry_ref_idx ON reconciliation_items (entry_ref)");
  await knex.raw("CREATE INDEX reconciliation_items_outcome_idx ON reconciliation_items (outcome, booking_date)");

  // The obligation is born with the statement's close, in the same transaction. Its reference is the
  // one the pain.001 file puts in EndToEndId: the period and the partner id without its prefix.
  await knex.raw(`
    CREATE FUNCTION payment_obligation_on_close() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.status = 'closed' AND OLD.status IS DISTINCT FROM 'closed' AND NEW.net_amount_minor <> 0 AND NEW.currency IS NOT NULL THEN
        INSERT INTO payment_obligations (id, statement_id, run_id, partner_id, period, currency, direction, amount_due_minor,
                                         due_date, reference, created_at, updated_at)
        VALUES ('pob_' || substring(NEW.id FROM 5), NEW.id, NEW.run_id, NEW.partner_id, NEW.period, NEW.currency,
                CASE WHEN NEW.net_amount_minor > 0 THEN 'payable_to_partner' ELSE 'receivable_from_partner' END,
                abs(NEW.net_amount_minor), COALESCE(NEW.due_date, NEW.closed_at::date),
                left(replace(NEW.period, '-', '') || regexp_replace(NEW.partner_id, '^ptn_', ''), 35),
                NEW.closed_at, NEW.closed_at)
        ON CONFLICT (statement_id) DO NOTHING;
      END IF;
      RETURN NEW;
    END $$`);
  await knex.raw(
    "CREATE TRIGGER settlement_statements_obligation AFTER UPDATE OF status ON settlement_statements FOR EACH ROW EXECUTE FUNCTION payment_obligation_on_close()",
  );
  // Statements closed before this migration get theirs now.
  await knex.raw(`
    INSERT INTO payment_obligations (id, statement_id, run_id, partner_id, period, currency, direction, amount_due_minor,
                                     due_date, reference, created_at, updated_at)
    SELECT 'pob_' || substring(s.id FROM 5), s.id, s.run_id, s.partner_id, s.period, s.currency,
           CASE WHEN s.net_amount_minor > 0 THEN 'payable_to_partner' ELSE 'receivable_from_partner' END,
           abs(s.net_amount_minor), COALESCE(s.due_date, s.closed_at::date),
           left(replace(s.period, '-', '') || regexp_replace(s.partner_id, '^ptn_', ''), 35), s.closed_at, s.closed_at
    FROM settlement_statements s
    WHERE s.status = 'closed' AND s.net_amount_minor <> 0 AND s.currency IS NOT NULL
    ON CONFLICT (statement_id) DO NOTHING`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("DROP TRIGGER IF EXISTS settlement_statements_obligation ON settlement_statements");
  await knex.raw("DROP FUNCTION IF EXISTS payment_obligation_on_close()");
  await knex.schema.dropTableIfExists("reconciliation_items");
  await knex.schema.dropTableIfExists("reconciliation_imports");
  await knex.raw("DROP TRIGGER IF EXISTS payments_append_only ON payments");
  await knex.schema.dropTableIfExists("payments");
  await knex.raw("DROP FUNCTION IF EXISTS payments_append_only()");
  await knex.schema.dropTableIfExists("payment_obligations");
  await knex.schema.dropTableIfExists("partner_stripe_accounts");
}
