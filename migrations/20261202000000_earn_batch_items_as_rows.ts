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

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE FUNCTION ledger_earn_rows(v ledger_earn_many_item[])
    RETURNS TABLE (idx integer, points bigint, held bigint, debt bigint, lot_id text, repaid bigint)
    LANGUAGE plpgsql ${SETTINGS} AS $$
    DECLARE
      v_accounts text[];
    BEGIN
      IF EXISTS (SELECT 1 FROM unnest(v) AS i WHERE i.points IS NULL OR i.points <= 0 OR i.lot_id IS NULL) THEN
        RAISE EXCEPTION 'ledger_earn_many: only positive earns, each with a lot id, are posted' USING ERRCODE = '22023';
      END IF;
      -- The accounts an earn posts to, created on first use: one probe by key of them all first (most exist).
      v_accounts := ARRAY(SELECT DISTINCT x.id FROM unnest(v) AS i
                            CROSS JOIN LATERAL (VALUES ('acc_pts_' || i.member_id), ('acc_held_' || i.member_id), ('acc_debt_' || i.member_id),
                                                       ('acc_iss_' || i.partner_id), ('acc_red_' || i.partner_id), ('acc_rec_' || i.partner_id),
                                                       ('acc_breakage')) AS x(id));
      IF (SELECT count(*) FROM ledger_accounts a WHERE a.id = ANY (v_accounts)) < cardinality(v_accounts) THEN
        INSERT INTO ledger_accounts (id, kind, asset, member_id, partner_id, balance, floor)
          SELECT a.id, a.kind, 'PTS', a.member_id, a.partner_id, a.balance, a.floor
            FROM (SELECT DISTINCT x.* FROM unnest(v) AS i
                   CROSS JOIN LATERAL (VALUES
                     ('acc_pts_' || i.member_id, 'member_points', i.member_id, NULL::text, 0::bigint, 0::bigint),
                     ('acc_held_' || i.member_id, 'member_points_held', i.member_id, NULL, 0, 0),
                     ('acc_debt_' || i.member_id, 'member_points_debt', i.member_id, NULL, 0, 0),
                     ('acc_iss_' || i.partner_id, 'partner_issuance', NULL, i.partner_id, NULL, NULL),
                     ('acc_red_' || i.partner_id, 'partner_redemption', NULL, i.partner_id, NULL, NULL),
                     ('acc_rec_' || i.partner_id, 'partner_recovery', NULL, i.partner_id, NULL, NULL),
                     ('acc_breakage', 'breakage', NULL, NULL, NULL, NULL)) AS x(id, kind, member_id, partner_id, balance, floor)) a
            LEFT JOIN LATERAL (SELECT true AS found FROM ledger_accounts e WHERE e.id = a.id LIMIT 1) e ON true
           WHERE e.found IS NULL
           ORDER BY a.id
          ON CONFLICT DO NOTHING;
      END IF;

      RETURN QUERY
      WITH i AS MATERIALIZED (SELECT * FROM unnest(v)),
           -- The same lock, in the same order, as lockMember: one member's operations are serial.
           locked AS MATERIALIZED (
             SELECT a.id, a.member_id, a.kind, a.balance FROM ledger_accounts a
              WHERE a.id = ANY (ARRAY(SELECT unnest(ARRAY['acc_debt_' || m.member_id, 'acc_held_' || m.member_id, 'acc_pts_' || m.member_id])
                                        FROM (SELECT DISTINCT i.member_id FROM i) m))
              ORDER BY a.member_id, a.id FOR UPDATE),
           b AS (SELECT l.member_id,
                        max(l.balance) FILTER (WHERE l.kind = 'member_points') AS pts,
                        max(l.balance) FILTER (WHERE l.kind = 'member_points_held') AS held,
                        max(l.balance) FILTER (WHERE l.kind = 'member_points_debt') AS debt
                   FROM locked l GROUP BY l.member_id),
           -- Earned points first pay off a points debt; the rest becomes a lot. Earlier earns of the
           -- same member in this batch have paid what they could.
           r AS (SELECT i.*, b.pts, b.held, b.debt,
                        least(i.points, greatest(-b.debt - coalesce(sum(i.points) OVER before, 0)::bigint, 0)) AS repay
                   FROM i JOIN b ON b.member_id = i.member_id
                 WINDOW before AS (PARTITION BY i.member_id ORDER BY i.idx ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)),
           c AS MATERIALIZED (
             SELECT r.*, r.points - r.repay AS credited,
                    (sum(r.points - r.repay) OVER upto)::bigint AS credited_upto, (sum(r.repay) OVER upto)::bigint AS repaid_upto
               FROM r WINDOW upto AS (PARTITION BY r.member_id ORDER BY r.idx)),
           e AS (INSERT INTO ledger_entries (id, kind, partner_id, member_id, ref_type, ref_id, contract_version_id, occurred_at, memo)
                   SELECT c.entry_id, 'earn', c.partner_id, c.member_id, c.ref_type, c.ref_id, c.contract_version_id, c.earned_at, c.memo
                     FROM c ORDER BY c.member_id, c.idx
                 RETURNING 1),
           p AS (INSERT INTO ledger_postings (entry_id, account_id, asset, amount)
                   SELECT c.entry_id, x.account_id, 'PTS', x.amount
                     FROM c CROSS JOIN LATERAL (VALUES (1, 'acc_iss_' || c.partner_id, -c.points),
                                                      (2, 'acc_debt_' || c.member_id, c.repay),
                                                      (3, 'acc_pts_' || c.member_id, c.credited)) AS x(n, account_id, amount)
                    WHERE x.amount <> 0
                    ORDER BY c.member_id, c.idx, x.n
                 RETURNING 1),
           lo AS (INSERT INTO ledger_lots (id, member_id, account_id, issuing_partner_id, contract_version_id, entry_id, earned_at, expires_at, amount, remaining, funded_by)
                   SELECT c.lot_id, c.member_id, 'acc_pts_' || c.member_id, c.partner_id, c.contract_version_id, c.entry_id, c.earned_at, c.expires_at,
                          c.credited, c.credited, 'partner:' || c.partner_id
                     FROM c WHERE c.credited > 0 ORDER BY c.member_id, c.idx
                 RETURNING 1)
      SELECT c.idx, c.pts + c.credited_upto, c.held, c.debt + c.repaid_upto, CASE WHEN c.credited > 0 THEN c.lot_id END, c.repay
        FROM c ORDER BY c.idx;
    END $$`);

  await knex.raw(`
    CREATE OR REPLACE FUNCTION ledger_earn_many(p_items jsonb)
    RETURNS TABLE (idx integer, points bigint, held bigint, debt bigint, lot_id text, repaid bigint)
    LANGUAGE sql AS $$
      SELECT * FROM ledger_earn_rows(ARRAY(SELECT i FROM jsonb_populate_recordset(NULL::ledger_earn_many_item, p_items) AS i))
    $$`);
  await knex.raw("ALTER FUNCTION ledger_earn_many(jsonb) RESET ALL");

  // points_earn_batch as 20261201230000 made it, but for the call of the ledger: its rows as they are.
  const { src } = (await knex.raw("SELECT prosrc AS src FROM pg_proc WHERE oid = 'points_earn_batch(jsonb, integer[])'::regprocedure")).rows[0] as { src: string };
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
  const { src } = (await knex.raw("SELECT prosrc AS src FROM pg_proc WHERE oid = 'ledger_earn_rows(ledger_earn_many_item[])'::regprocedure")).rows[0] as { src: string };
  await knex.raw("DROP FUNCTION ledger_earn_many(jsonb)");
  await knex.raw(`CREATE FUNCTION ledger_earn_many(p_items jsonb)
    RETURNS TABLE (idx integer, points bigint, held bigint, debt bigint, lot_id text, repaid bigint)
    LANGUAGE plpgsql ${SETTINGS} AS $fn$${src.replace(
      "DECLARE\n",
      "DECLARE\n      v ledger_earn_many_item[] := ARRAY(SELECT i FROM jsonb_populate_recordset(NULL::ledger_earn_many_item, p_items) AS i);\n",
    )}$fn$`);
  await knex.raw("DROP FUNCTION ledger_earn_rows(ledger_earn_many_item[])");
}
