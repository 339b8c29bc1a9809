import type { Knex } from "knex";
import { up as checkedInTheWrite } from "./20261201230000_earn_batch_checked_in_the_write.ts";

/**
 * The batched earn hands its items to the ledger as rows, not as jsonb.
 *
 * `points_earn_batch` already holds its items as an array of rows; to post their earns it packed
 * each back into a jsonb object of eleven keys (`jsonb_agg(jsonb_build_object(…))`) for
 * `ledger_earn_many(jsonb)`, which parsed them straight back into rows. The body of
 * `ledger_earn_many` now lives in `ledger_earn_rows(ledger_earn_many_item[])`, which the batch calls
 * with its rows; `ledger_earn_many(jsonb)` (the ledger's own batches, ledger.batch.ts) parses its
 * argument and calls it. Same statements, same locks in the same order, same rows and answers.
 */
const SETTINGS = "SET enable_seqscan = off SET jit = off";

/** The line of ledger_earn_many(jsonb) (20261201190000) that parses its argument into the rows the body works on. */
const PARSE = "      v ledger_earn_many_item[] := ARRAY(SELECT i FROM jsonb_populate_recordset(NULL::ledger_earn_many_item, p_items) AS i);\n";

async function source(knex: Knex, fn: string): Promise<string> {
  return ((await knex.raw(`SELECT prosrc AS src FROM pg_proc WHERE oid = '${fn}'::regprocedure`)).rows[0] as { src: string }).src;
}

export async function up(knex: Knex): Promise<void> {
  // ledger_earn_many's body, as 20261201190000 wrote it, minus the line that parses the jsonb: the
  // rows are its argument now.
  const earnMany = await source(knex, "ledger_earn_many(jsonb)");
  if (!earnMany.includes(PARSE)) throw new Error("ledger_earn_many is not as 20261201190000 made it");
  await knex.raw(`CREATE FUNCTION ledger_earn_rows(v ledger_earn_many_item[])
    RETURNS TABLE (idx integer, points bigint, held bigint, debt bigint, lot_id text, repaid bigint)
    LANGUAGE plpgsql ${SETTINGS} AS $fn$${earnMany.replace(PARSE, "")}$fn$`);

  await knex.raw(`
    CREATE OR REPLACE FUNCTION ledger_earn_many(p_items jsonb)
    RETURNS TABLE (idx integer, points bigint, held bigint, debt bigint, lot_id text, repaid bigint)
    LANGUAGE sql AS $$
      SELECT * FROM ledger_earn_rows(ARRAY(SELECT i FROM jsonb_populate_recordset(NULL::ledger_earn_many_item, p_items) AS i))
    $$`);
  await knex.raw("ALTER FUNCTION ledger_earn_many(jsonb) RESET ALL");

  // points_earn_batch as 20261201230000 made it, but for the call of the ledger: its rows as they are.
  const src = await source(knex, "points_earn_batch(jsonb, integer[])");
  const from = src.indexOf("FROM ledger_earn_many((SELECT jsonb_agg(");
  const to = src.indexOf("FROM unnest(v_items) AS i)) AS l;", from);
  if (from < 0 || to < 0) throw new Error("points_earn_batch is not as 20261201230000 made it");
  const call = `FROM ledger_earn_rows(ARRAY(SELECT ROW(i.idx, i.member_id, i.partner_id, i.points, i.contract_version_id, i.occurred_at,
                                                         i.expires_at::timestamptz, 'transaction', i.txn_id, i.entry_id, i.lot_id, NULL)::ledger_earn_many_item
                                              FROM unnest(v_items) AS i)) AS l;`;
  const body = src.slice(0, from) + call + src.slice(to + "FROM unnest(v_items) AS i)) AS l;".length);
  await knex.raw(`CREATE OR REPLACE FUNCTION points_earn_batch(p_items jsonb, p_refused integer[])
    RETURNS TABLE (idx integer, ok boolean, points bigint, held bigint, debt bigint, lot_id text, err_code text, err_message text)
    LANGUAGE plpgsql ${SETTINGS} AS $fn$${body}$fn$`);
}

export async function down(knex: Knex): Promise<void> {
  // 20261201230000's points_earn_batch (only that statement of its up), then ledger_earn_many(jsonb) as it was.
  await knex.raw("DROP FUNCTION points_earn_batch(jsonb, integer[])");
  const only = { raw: (sql: string) => (sql.includes("CREATE FUNCTION points_earn_batch") ? knex.raw(sql) : Promise.resolve()) };
  await checkedInTheWrite(only as unknown as Knex);
  const src = await source(knex, "ledger_earn_rows(ledger_earn_many_item[])");
  await knex.raw("DROP FUNCTION ledger_earn_many(jsonb)");
  await knex.raw(`CREATE FUNCTION ledger_earn_many(p_items jsonb)
    RETURNS TABLE (idx integer, points bigint, held bigint, debt bigint, lot_id text, repaid bigint)
    LANGUAGE plpgsql ${SETTINGS} AS $fn$${src.replace("DECLARE\n", `DECLARE\n${PARSE}`)}$fn$`);
  await knex.raw("DROP FUNCTION ledger_earn_rows(ledger_earn_many_item[])");
}
