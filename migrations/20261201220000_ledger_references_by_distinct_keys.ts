import type { Knex } from "knex";
import { CHECKS, checkFunction, constraintName, type Ref } from "./20261201200000_ledger_references_per_statement.ts";

/**
 * The statement-level reference checks (20261201200000) probe each parent once per distinct key
 * instead of once per new row.
 *
 * They were anti-joins of the new rows with each parent: for a batch of n earns, 5n probes after
 * its lots and 4n after its postings, most of them the same key again (one partner, one contract
 * version, each entry named by two postings, each member's account by its posting and its lot).
 * `pg_stat_statements` on the earn bench (batches of ~10 earns): the lots' check 0.43 ms and the
 * postings' 0.42 ms a batch, a quarter of `points_earn_batch`'s 3.2 ms.
 *
 * Now each reference first takes the distinct keys of the new rows (a hash of a few dozen rows),
 * then looks each one up by the parent's key: a LATERAL … LIMIT 1, so that the lookup is an index
 * probe whatever the statistics were when the trigger's plan was cached — an `id = ANY (keys)` form
 * was tried and, planned while the tables were small, scanned a whole index with a filter later.
 * Same error as before, naming the first key that names no row (23503, the constraint it stands
 * for); the account's asset is part of its key.
 */
function branch(table: string, ref: Ref) {
  const cols = ref.also ? `n.${ref.column}, n.${ref.also}` : `n.${ref.column}`;
  const match = `p.id = x.${ref.column}${ref.also ? ` AND p.${ref.also} = x.${ref.also}` : ""}`;
  const value = ref.also ? `(x.${ref.column}, x.${ref.also})::text` : `x.${ref.column}::text`;
  return `SELECT '${constraintName(table, ref)}' AS con, '${ref.column}${ref.also ? `, ${ref.also}` : ""}' AS col, '${ref.parent}' AS parent, ${value} AS val
                FROM (SELECT DISTINCT ${cols} FROM new_rows n WHERE n.${ref.column} IS NOT NULL) x
                LEFT JOIN LATERAL (SELECT true AS found FROM ${ref.parent} p WHERE ${match} LIMIT 1) f ON true
               WHERE f.found IS NULL`;
}

function distinctKeysFunction(table: string, refs: Ref[]) {
  return `
    CREATE OR REPLACE FUNCTION ${table}_check_references() RETURNS trigger LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
    DECLARE
      bad record;
    BEGIN
      SELECT * INTO bad FROM (
              ${refs.map((r) => branch(table, r)).join("\n              UNION ALL\n              ")}) x
       LIMIT 1;
      IF FOUND THEN
        RAISE EXCEPTION 'insert into ${table} violates %: % % is not in %', bad.con, bad.col, bad.val, bad.parent
          USING ERRCODE = '23503', CONSTRAINT = bad.con, TABLE = '${table}';
      END IF;
      RETURN NULL;
    END $$`;
}

export async function up(knex: Knex): Promise<void> {
  for (const [table, refs] of Object.entries(CHECKS)) await knex.raw(distinctKeysFunction(table, refs));
}

export async function down(knex: Knex): Promise<void> {
  for (const [table, refs] of Object.entries(CHECKS)) await knex.raw(checkFunction(table, refs).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"));
}
