import type { Knex } from "knex";

/**
 * The references of the rows an earn writes are checked once per statement, set-based, instead of
 * once per row by foreign-key triggers.
 *
 * A batched earn of n calls writes n transactions, entries, lots and events and 2n postings in five
 * INSERTs; their foreign keys ran 16 row-level checks per earn — each one an executor started and
 * stopped for `SELECT 1 … FOR KEY SHARE`, and a row lock written on the parent (the one partner's
 * row, by every earn of the network). Measured on a fresh 2,000-member database, one connection,
 * batches of 11 earns, runs alternated: 9.5–9.9 ms a batch with the foreign keys, 7.1 ms with none
 * at all — a quarter of PostgreSQL's time per earn; with the statement checks below in their place,
 * 8.8 -> 7.7 ms of backend CPU a batch (medians of 8 runs). The same move clearing made for its
 * items (20261201090000).
 *
 * What holds instead, in the database, whatever writes the rows:
 * - after every INSERT into `ledger_entries`, `ledger_postings`, `ledger_lots`,
 *   `point_transactions` and `events`, one query checks that every member, partner, contract
 *   version, account (with its asset) and entry the new rows name exists, and raises 23503
 *   (foreign_key_violation) naming the constraint it stands for;
 * - the parents cannot go away under a reference, so the check needs no lock: partners, members
 *   and ledger accounts cannot be deleted or truncated, nor their keys changed (nothing in the hub
 *   deletes them: a member is erased by deleting their personal data, the ledger keeps its
 *   pseudonymous id); ledger entries are append-only already (forbid_change); a contract version in
 *   force cannot be changed or deleted already (contract_version_frozen). The one parent that can
 *   still be deleted is a contract version not yet in force (a draft): deleting one first waits for
 *   every transaction writing to the tables that name versions (a SHARE lock on them, held to its
 *   commit), then refuses if any of their rows names it. The rare delete of a draft pays for the
 *   race, not every earn;
 * - a lot's provenance and a transaction's partner, member and contract version never change
 *   (BEFORE UPDATE OF those columns), so an UPDATE cannot break a reference either.
 *
 * The foreign keys of `ledger_accounts` (member, partner) stay: an account is written once, on a
 * member's or partner's first posting.
 */
/** A reference to check: the new rows' column(s), the parent and its key, the constraint it stands for. */
export interface Ref {
  column: string;
  parent: string;
  /** Extra parent key column matched to a new rows' column of the same name (the account's asset). */
  also?: string;
}

export const CHECKS: Record<string, Ref[]> = {
  ledger_entries: [
    { column: "member_id", parent: "members" },
    { column: "partner_id", parent: "partners" },
    { column: "contract_version_id", parent: "contract_versions" },
  ],
  ledger_postings: [
    { column: "entry_id", parent: "ledger_entries" },
    { column: "account_id", parent: "ledger_accounts", also: "asset" },
  ],
  ledger_lots: [
    { column: "member_id", parent: "members" },
    { column: "account_id", parent: "ledger_accounts" },
    { column: "issuing_partner_id", parent: "partners" },
    { column: "contract_version_id", parent: "contract_versions" },
    { column: "entry_id", parent: "ledger_entries" },
  ],
  point_transactions: [
    { column: "partner_id", parent: "partners" },
    { column: "member_id", parent: "members" },
    { column: "contract_version_id", parent: "contract_versions" },
  ],
  events: [{ column: "partner_id", parent: "partners" }],
};

/** The row-level foreign keys the checks replace: one per reference, named as the checks name it. */
const DROPPED = Object.entries(CHECKS).flatMap(([table, refs]) =>
  refs.map((r) => ({
    table,
    name: constraintName(table, r),
    columns: r.also ? `${r.column}, ${r.also}` : r.column,
    ref: `${r.parent}(id${r.also ? `, ${r.also}` : ""})`,
  })),
);

/** Columns whose change an UPDATE may not make (the rows are otherwise updatable). */
const FROZEN: Record<string, string[]> = {
  ledger_lots: ["member_id", "account_id", "issuing_partner_id", "contract_version_id", "entry_id"],
  point_transactions: ["partner_id", "member_id", "contract_version_id"],
};

/** Parents that cannot be deleted, and the key columns that cannot change. */
const UNDELETABLE: Record<string, string[]> = {
  partners: ["id"],
  members: ["id"],
  ledger_accounts: ["id", "asset"],
};

export function constraintName(table: string, ref: Ref) {
  return `${table}_${ref.column}${ref.also ? `_${ref.also}` : ""}_foreign`;
}

/**
 * One trigger function per table, one query: an anti-join of the statement's new rows with each
 * parent by key, UNION ALL, stopping at the first row that names a missing parent. (Anti-joins, not
 * NOT EXISTS under OR: that form hashes the whole parent table.)
 */
export function checkFunction(table: string, refs: Ref[]) {
  const branches = refs.map((r) => {
    const match = `p.id = n.${r.column}${r.also ? ` AND p.${r.also} = n.${r.also}` : ""}`;
    const value = r.also ? `(n.${r.column}, n.${r.also})::text` : `n.${r.column}::text`;
    return `SELECT '${constraintName(table, r)}' AS con, '${r.column}${r.also ? `, ${r.also}` : ""}' AS col, '${r.parent}' AS parent, ${value} AS val
                FROM new_rows n WHERE n.${r.column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${r.parent} p WHERE ${match})`;
  });
  return `
    CREATE FUNCTION ${table}_check_references() RETURNS trigger LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
    DECLARE
      bad record;
    BEGIN
      SELECT * INTO bad FROM (
              ${branches.join("\n              UNION ALL\n              ")}) x
       LIMIT 1;
      IF FOUND THEN
        RAISE EXCEPTION 'insert into ${table} violates %: % % is not in %', bad.con, bad.col, bad.val, bad.parent
          USING ERRCODE = '23503', CONSTRAINT = bad.con, TABLE = '${table}';
      END IF;
      RETURN NULL;
    END $$`;
}

export async function up(knex: Knex): Promise<void> {
  for (const fk of DROPPED) await knex.raw(`ALTER TABLE ${fk.table} DROP CONSTRAINT ${fk.name}`);

  for (const [table, refs] of Object.entries(CHECKS)) {
    await knex.raw(checkFunction(table, refs));
    await knex.raw(`CREATE TRIGGER ${table}_references AFTER INSERT ON ${table}
      REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${table}_check_references()`);
  }

  // Keys that may not change, whatever else an UPDATE sets (the trigger's arguments name them).
  await knex.raw(`
    CREATE FUNCTION forbid_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      col text;
    BEGIN
      FOREACH col IN ARRAY TG_ARGV LOOP
        IF to_jsonb(NEW) -> col IS DISTINCT FROM to_jsonb(OLD) -> col THEN
          RAISE EXCEPTION '%.% of % cannot change: other rows name it by that key, or it is provenance', TG_TABLE_NAME, col, to_jsonb(OLD) ->> 'id' USING ERRCODE = '23503';
        END IF;
      END LOOP;
      RETURN NEW;
    END $$`);
  await knex.raw(`
    CREATE FUNCTION forbid_delete_referenced() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION '% of %: refused, ledger rows may name them (nothing is deleted from %)', TG_OP, TG_TABLE_NAME, TG_TABLE_NAME USING ERRCODE = '23503';
    END $$`);
  for (const [table, keys] of Object.entries(UNDELETABLE)) {
    await knex.raw(`CREATE TRIGGER ${table}_never_deleted BEFORE DELETE OR TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION forbid_delete_referenced()`);
    await knex.raw(`CREATE TRIGGER ${table}_key_frozen BEFORE UPDATE OF ${keys.join(", ")} ON ${table}
      FOR EACH ROW EXECUTE FUNCTION forbid_key_change(${keys.map((k) => `'${k}'`).join(", ")})`);
  }
  for (const [table, cols] of Object.entries(FROZEN)) {
    await knex.raw(`CREATE TRIGGER ${table}_references_frozen BEFORE UPDATE OF ${cols.join(", ")} ON ${table}
      FOR EACH ROW EXECUTE FUNCTION forbid_key_change(${cols.map((k) => `'${k}'`).join(", ")})`);
  }
  await knex.raw(`CREATE TRIGGER contract_versions_key_frozen BEFORE UPDATE OF id ON contract_versions FOR EACH ROW EXECUTE FUNCTION forbid_key_change('id')`);

  // A contract version not yet in force can be deleted — unless ledger rows name it.
  await knex.raw(`
    CREATE FUNCTION contract_versions_ledger_referenced() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      named text;
    BEGIN
      -- Rows written by transactions still open would not be seen: wait for them, and keep new ones
      -- out until this transaction ends. Ledger rows name only versions the earn found in force.
      LOCK TABLE ledger_entries, ledger_lots, point_transactions IN SHARE MODE;
      SELECT o.id INTO named FROM old_rows o
       WHERE EXISTS (SELECT 1 FROM ledger_entries e WHERE e.contract_version_id = o.id)
          OR EXISTS (SELECT 1 FROM ledger_lots l WHERE l.contract_version_id = o.id)
          OR EXISTS (SELECT 1 FROM point_transactions t WHERE t.contract_version_id = o.id)
       LIMIT 1;
      IF named IS NOT NULL THEN
        RAISE EXCEPTION 'contract version % is named by ledger rows: DELETE refused', named USING ERRCODE = '23503';
      END IF;
      RETURN NULL;
    END $$`);
  await knex.raw(`CREATE TRIGGER contract_versions_ledger_referenced AFTER DELETE ON contract_versions
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION contract_versions_ledger_referenced()`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("DROP TRIGGER contract_versions_ledger_referenced ON contract_versions");
  await knex.raw("DROP FUNCTION contract_versions_ledger_referenced()");
  await knex.raw("DROP TRIGGER contract_versions_key_frozen ON contract_versions");
  for (const table of Object.keys(FROZEN)) await knex.raw(`DROP TRIGGER ${table}_references_frozen ON ${table}`);
  for (const table of Object.keys(UNDELETABLE)) {
    await knex.raw(`DROP TRIGGER ${table}_key_frozen ON ${table}`);
    await knex.raw(`DROP TRIGGER ${table}_never_deleted ON ${table}`);
  }
  await knex.raw("DROP FUNCTION forbid_delete_referenced()");
  await knex.raw("DROP FUNCTION forbid_key_change()");
  for (const table of Object.keys(CHECKS)) {
    await knex.raw(`DROP TRIGGER ${table}_references ON ${table}`);
    await knex.raw(`DROP FUNCTION ${table}_check_references()`);
  }
  for (const fk of DROPPED) {
    await knex.raw(`ALTER TABLE ${fk.table} ADD CONSTRAINT ${fk.name} FOREIGN KEY (${fk.columns}) REFERENCES ${fk.ref}`);
  }
}
