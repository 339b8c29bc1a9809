import type { Knex } from "knex";

/**
 * Clearing writes a month's trace — a million items for a million transactions — in one INSERT.
 * Row-level foreign keys checked each of those rows four times, one index probe and one row lock
 * each (FOR KEY SHARE, which also writes the locked ledger entry's header): most of the cost of
 * clearing a month. The same references are now checked once per statement, set-based:
 *
 * - after every INSERT or UPDATE of items, the new rows' statement, entry and contract version exist,
 *   and each item's partner is its statement's partner (so the partner exists: the statement's own
 *   foreign key holds it);
 * - a statement or a contract version that items name cannot be deleted (ledger entries cannot be
 *   deleted at all: the ledger is append-only).
 *
 * `settlement_items.member_id`: the member of the item's ledger entry, copied when the item is
 * collected, so the statement's CSV reads it from the item instead of from the ledger. NULL on items
 * collected before (the CSV looks it up for them, as it always did).
 */
const FOREIGN_KEYS = [
  { column: "statement_id", table: "settlement_statements" },
  { column: "partner_id", table: "partners" },
  { column: "entry_id", table: "ledger_entries" },
  { column: "contract_version_id", table: "contract_versions" },
];

export async function up(knex: Knex): Promise<void> {
  for (const fk of FOREIGN_KEYS) await knex.raw(`ALTER TABLE settlement_items DROP CONSTRAINT settlement_items_${fk.column}_foreign`);
  await knex.raw("ALTER TABLE settlement_items ADD COLUMN member_id text");

  // A month of items is checked against the ledger in one hash join, never a probe per item.
  await knex.raw(`
    CREATE FUNCTION settlement_items_check_references() RETURNS trigger LANGUAGE plpgsql SET enable_nestloop = off AS $$
    DECLARE
      bad record;
    BEGIN
      SELECT k.statement_id, k.partner_id, k.contract_version_id, s.partner_id AS statement_partner INTO bad
        FROM (SELECT DISTINCT statement_id, partner_id, contract_version_id FROM new_items) k
        LEFT JOIN settlement_statements s ON s.id = k.statement_id
       WHERE s.id IS NULL OR s.partner_id <> k.partner_id
          OR (k.contract_version_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM contract_versions c WHERE c.id = k.contract_version_id))
       LIMIT 1;
      IF FOUND THEN
        RAISE EXCEPTION 'settlement item of statement % (partner %, contract version %): no such statement of that partner, or no such contract version',
          bad.statement_id, bad.partner_id, bad.contract_version_id USING ERRCODE = '23503';
      END IF;
      SELECT n.entry_id INTO bad FROM new_items n WHERE NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.id = n.entry_id) LIMIT 1;
      IF FOUND THEN
        RAISE EXCEPTION 'settlement item names ledger entry %, which does not exist', bad.entry_id USING ERRCODE = '23503';
      END IF;
      RETURN NULL;
    END $$`);
  await knex.raw(`CREATE TRIGGER settlement_items_references_on_insert AFTER INSERT ON settlement_items
    REFERENCING NEW TABLE AS new_items FOR EACH STATEMENT EXECUTE FUNCTION settlement_items_check_references()`);
  await knex.raw(`CREATE TRIGGER settlement_items_references_on_update AFTER UPDATE ON settlement_items
    REFERENCING NEW TABLE AS new_items FOR EACH STATEMENT EXECUTE FUNCTION settlement_items_check_references()`);

  await knex.raw(`
    CREATE FUNCTION settlement_items_referenced() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      named text;
    BEGIN
      IF TG_TABLE_NAME = 'settlement_statements' THEN
        SELECT o.id INTO named FROM old_rows o WHERE EXISTS (SELECT 1 FROM settlement_items i WHERE i.statement_id = o.id) LIMIT 1;
      ELSE
        SELECT o.id INTO named FROM old_rows o WHERE EXISTS (SELECT 1 FROM settlement_items i WHERE i.contract_version_id = o.id) LIMIT 1;
      END IF;
      IF named IS NOT NULL THEN
        RAISE EXCEPTION '% % is named by settlement items: DELETE refused', TG_TABLE_NAME, named USING ERRCODE = '23503';
      END IF;
      RETURN NULL;
    END $$`);
  for (const table of ["settlement_statements", "contract_versions"]) {
    await knex.raw(`CREATE TRIGGER ${table}_items_referenced AFTER DELETE ON ${table}
      REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION settlement_items_referenced()`);
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ["settlement_statements", "contract_versions"]) await knex.raw(`DROP TRIGGER IF EXISTS ${table}_items_referenced ON ${table}`);
  await knex.raw("DROP FUNCTION IF EXISTS settlement_items_referenced()");
  await knex.raw("DROP TRIGGER IF EXISTS settlement_items_references_on_update ON settlement_items");
  await knex.raw("DROP TRIGGER IF EXISTS settlement_items_references_on_insert ON settlement_items");
  await knex.raw("DROP FUNCTION IF EXISTS settlement_items_check_references()");
  await knex.raw("ALTER TABLE settlement_items DROP COLUMN member_id");
  for (const fk of FOREIGN_KEYS) {
    await knex.raw(`ALTER TABLE settlement_items ADD CONSTRAINT settlement_items_${fk.column}_foreign FOREIGN KEY (${fk.column}) REFERENCES ${fk.table} (id)`);
  }
}
