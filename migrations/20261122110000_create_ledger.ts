import type { Knex } from "knex";

/**
 * The double-entry points ledger. The database itself enforces what must never break:
 *
 * - the postings of an entry sum to zero per asset (a deferred constraint trigger, checked at commit);
 * - entries, postings and lot movements are append-only (corrections are new entries);
 * - every posting moves the maintained balance of its account (a trigger), so a balance row always
 *   equals the sum of postings, and a CHECK keeps it at or above the account's floor — the floor is
 *   a column (data), not code: 0 for a member's spendable points, the contract's negative floor for
 *   the member's points-debt account, NULL (unbounded) for the network's own accounts.
 *
 * Sign: a posting's amount is added to its account's balance. Issuance accounts go negative as points
 * enter circulation; the network's sum per asset is therefore always zero.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("ledger_accounts", (t) => {
    t.text("id").primary();
    t.text("kind").notNullable();
    // 'PTS' for points, or an ISO 4217 currency for money accounts (amounts in minor units).
    t.text("asset").notNullable();
    t.text("member_id").references("members.id");
    t.text("partner_id").references("partners.id");
    // NULL: not maintained (the network's own, unbounded accounts, written by every earn — a
    // maintained row there would serialise all of a partner's traffic); read as the sum of postings.
    t.bigInteger("balance");
    t.bigInteger("floor");
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(["id", "asset"]);
  });
  await knex.raw(`
    ALTER TABLE ledger_accounts
      ADD CONSTRAINT ledger_accounts_kind_valid CHECK (kind IN (
        'member_points', 'member_points_held', 'member_points_debt', 'member_cashback', 'member_roundup',
        'partner_issuance', 'partner_redemption', 'partner_recovery', 'partner_payable', 'partner_receivable',
        'operator_revenue', 'breakage', 'funding')),
      ADD CONSTRAINT ledger_accounts_asset_valid CHECK (asset = 'PTS' OR asset ~ '^[A-Z]{3}$'),
      ADD CONSTRAINT ledger_accounts_balance_floor CHECK (floor IS NULL OR (balance IS NOT NULL AND balance >= floor)),
      ADD CONSTRAINT ledger_accounts_debt_not_positive CHECK (kind <> 'member_points_debt' OR balance <= 0),
      ADD CONSTRAINT ledger_accounts_owner_valid CHECK (
        (kind LIKE 'member_%' AND member_id IS NOT NULL AND partner_id IS NULL) OR
        (kind LIKE 'partner_%' AND partner_id IS NOT NULL AND member_id IS NULL) OR
        (kind IN ('operator_revenue', 'breakage', 'funding') AND member_id IS NULL))`);
  await knex.raw(
    "CREATE UNIQUE INDEX ledger_accounts_owner_idx ON ledger_accounts (kind, asset, coalesce(member_id, ''), coalesce(partner_id, ''))",
  );

  await knex.schema.createTable("ledger_entries", (t) => {
    t.text("id").primary();
    t.text("kind").notNullable();
    t.text("partner_id").references("partners.id");
    t.text("member_id").references("members.id");
    // The business object the entry belongs to (a transaction, a redemption, a lot expiry run).
    t.text("ref_type");
    t.text("ref_id");
    t.text("contract_version_id").references("contract_versions.id");
    t.timestamp("occurred_at", { useTz: true }).notNullable();
    t.timestamp("posted_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.jsonb("memo");
  });
  await knex.raw(`
    ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_valid CHECK (kind IN (
      'earn', 'burn', 'hold', 'capture', 'release', 'refund', 'expire', 'adjust'))`);
  await knex.raw("CREATE INDEX ledger_entries_member_idx ON ledger_entries (member_id, id)");
  await knex.raw("CREATE INDEX ledger_entries_ref_idx ON ledger_entries (ref_type, ref_id)");

  await knex.schema.createTable("ledger_postings", (t) => {
    t.bigIncrements("id").primary();
    t.text("entry_id").notNullable().references("ledger_entries.id");
    t.text("account_id").notNullable();
    t.text("asset").notNullable();
    t.bigInteger("amount").notNullable();
    // The asset of a posting is the asset of its account.
    t.foreign(["account_id", "asset"]).references(["id", "asset"]).inTable("ledger_accounts");
  });
  await knex.raw("ALTER TABLE ledger_postings ADD CONSTRAINT ledger_postings_amount_nonzero CHECK (amount <> 0)");
  await knex.raw("CREATE INDEX ledger_postings_entry_idx ON ledger_postings (entry_id)");
  await knex.raw("CREATE INDEX ledger_postings_account_idx ON ledger_postings (account_id, id)");

  await knex.schema.createTable("ledger_lots", (t) => {
    t.text("id").primary();
    t.text("member_id").notNullable().references("members.id");
    t.text("account_id").notNullable().references("ledger_accounts.id");
    t.text("issuing_partner_id").notNullable().references("partners.id");
    t.text("contract_version_id").references("contract_versions.id");
    t.text("entry_id").notNullable().references("ledger_entries.id");
    t.timestamp("earned_at", { useTz: true }).notNullable();
    t.timestamp("expires_at", { useTz: true }).notNullable();
    t.bigInteger("amount").notNullable();
    t.bigInteger("remaining").notNullable();
    t.timestamp("expiry_notified_at", { useTz: true });
  });
  await knex.raw("ALTER TABLE ledger_lots ADD CONSTRAINT ledger_lots_remaining_valid CHECK (amount > 0 AND remaining >= 0 AND remaining <= amount)");
  await knex.raw("CREATE INDEX ledger_lots_member_open_idx ON ledger_lots (member_id, expires_at, id) WHERE remaining > 0");
  await knex.raw("CREATE INDEX ledger_lots_expiry_idx ON ledger_lots (expires_at) WHERE remaining > 0");

  // Which lots an entry consumed (positive) or gave back (negative): provenance for clearing.
  await knex.schema.createTable("ledger_lot_movements", (t) => {
    t.bigIncrements("id").primary();
    t.text("lot_id").notNullable().references("ledger_lots.id");
    t.text("entry_id").notNullable().references("ledger_entries.id");
    t.bigInteger("amount").notNullable();
  });
  await knex.raw("ALTER TABLE ledger_lot_movements ADD CONSTRAINT ledger_lot_movements_amount_nonzero CHECK (amount <> 0)");
  await knex.raw("CREATE INDEX ledger_lot_movements_entry_idx ON ledger_lot_movements (entry_id)");
  await knex.raw("CREATE INDEX ledger_lot_movements_lot_idx ON ledger_lot_movements (lot_id)");

  for (const table of ["ledger_entries", "ledger_postings", "ledger_lot_movements"]) {
    await knex.raw(`CREATE TRIGGER ${table}_append_only BEFORE UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION forbid_change()`);
  }

  // The maintained balance: one UPDATE per posting, in the posting's transaction. The floor CHECK
  // on ledger_accounts then refuses any posting that would take an account below its floor.
  await knex.raw(`
    CREATE FUNCTION ledger_apply_posting() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE ledger_accounts SET balance = balance + NEW.amount WHERE id = NEW.account_id AND balance IS NOT NULL;
      RETURN NULL;
    END $$`);
  await knex.raw("CREATE TRIGGER ledger_postings_apply AFTER INSERT ON ledger_postings FOR EACH ROW EXECUTE FUNCTION ledger_apply_posting()");

  // Checked at commit, once the whole entry is written: its postings sum to zero per asset and
  // there are at least two of them.
  await knex.raw(`
    CREATE FUNCTION ledger_check_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      bad record;
      n integer;
    BEGIN
      SELECT count(*) INTO n FROM ledger_postings WHERE entry_id = NEW.entry_id;
      IF n < 2 THEN
        RAISE EXCEPTION 'ledger entry % has % posting(s); an entry needs at least two', NEW.entry_id, n USING ERRCODE = '23514';
      END IF;
      SELECT asset, sum(amount) AS total INTO bad FROM ledger_postings WHERE entry_id = NEW.entry_id
        GROUP BY asset HAVING sum(amount) <> 0 LIMIT 1;
      IF FOUND THEN
        RAISE EXCEPTION 'ledger entry % does not balance: % sums to %', NEW.entry_id, bad.asset, bad.total USING ERRCODE = '23514';
      END IF;
      RETURN NULL;
    END $$`);
  await knex.raw(`
    CREATE CONSTRAINT TRIGGER ledger_postings_balanced AFTER INSERT ON ledger_postings
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced()`);

  // Balances equal the sum of postings: returns every account where they differ (none, always).
  await knex.raw(`
    CREATE FUNCTION ledger_balance_mismatches() RETURNS TABLE (account_id text, balance bigint, postings_sum numeric)
    LANGUAGE sql STABLE AS $$
      SELECT a.id, a.balance, coalesce(sum(p.amount), 0)
        FROM ledger_accounts a LEFT JOIN ledger_postings p ON p.account_id = a.id
       WHERE a.balance IS NOT NULL
       GROUP BY a.id, a.balance
      HAVING a.balance <> coalesce(sum(p.amount), 0)
    $$`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("DROP FUNCTION IF EXISTS ledger_balance_mismatches()");
  await knex.raw("DROP TRIGGER IF EXISTS ledger_postings_balanced ON ledger_postings");
  await knex.raw("DROP TRIGGER IF EXISTS ledger_postings_apply ON ledger_postings");
  for (const table of ["ledger_entries", "ledger_postings", "ledger_lot_movements"]) {
    await knex.raw(`DROP TRIGGER IF EXISTS ${table}_append_only ON ${table}`);
  }
  await knex.schema.dropTableIfExists("ledger_lot_movements");
  await knex.schema.dropTableIfExists("ledger_lots");
  await knex.schema.dropTableIfExists("ledger_postings");
  await knex.schema.dropTableIfExists("ledger_entries");
  await knex.schema.dropTableIfExists("ledger_accounts");
  await knex.raw("DROP FUNCTION IF EXISTS ledger_check_entry_balanced()");
  await knex.raw("DROP FUNCTION IF EXISTS ledger_apply_posting()");
}
