import type { Knex } from "knex";

/**
 * The ledger's posting triggers, once per statement instead of once per row: a bank's clearing file
 * posts thousands of entries in one statement, and the row-level triggers ran an UPDATE per posting
 * and, at commit, two queries per posting (a third of the time of a chunk of card events).
 *
 * - Maintained balances: one UPDATE per INSERT statement moves every maintained account touched by
 *   the statement's postings (REFERENCING NEW TABLE) by their sum, after locking those accounts in id
 *   order. The floor CHECK on ledger_accounts still refuses a balance below its floor.
 * - Balanced entries: after every INSERT statement, each entry the statement posted to must have at
 *   least two postings and sum to zero per asset, counting all its postings. Postings are
 *   append-only, so an entry's last posting statement leaves it as it is at commit: this is at least
 *   as strict as the deferred check it replaces, and stricter in one way — an entry must be complete
 *   in one statement (every writer posts an entry's postings in one INSERT).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw("DROP TRIGGER ledger_postings_balanced ON ledger_postings");
  await knex.raw("DROP TRIGGER ledger_postings_apply ON ledger_postings");

  await knex.raw(`
    CREATE FUNCTION ledger_apply_postings() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM 1 FROM ledger_accounts a
        WHERE a.id = ANY (ARRAY(SELECT DISTINCT account_id FROM new_postings)) AND a.balance IS NOT NULL
        ORDER BY a.id FOR UPDATE;
      UPDATE ledger_accounts a SET balance = a.balance + d.amount
        FROM (SELECT account_id, sum(amount)::bigint AS amount FROM new_postings GROUP BY account_id) d
       WHERE a.id = ANY (ARRAY(SELECT DISTINCT account_id FROM new_postings)) AND a.id = d.account_id
         AND a.balance IS NOT NULL AND d.amount <> 0;
      RETURN NULL;
    END $$`);
  await knex.raw(`
    CREATE TRIGGER ledger_postings_apply AFTER INSERT ON ledger_postings
      REFERENCING NEW TABLE AS new_postings FOR EACH STATEMENT EXECUTE FUNCTION ledger_apply_postings()`);

  await knex.raw(`
    CREATE FUNCTION ledger_check_entries_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      bad record;
    BEGIN
      SELECT s.entry_id, sum(s.n)::integer AS n,
             (array_agg(s.asset ORDER BY s.asset) FILTER (WHERE s.total <> 0))[1] AS asset,
             (array_agg(s.total ORDER BY s.asset) FILTER (WHERE s.total <> 0))[1] AS total
        INTO bad
        FROM (SELECT p.entry_id, p.asset, sum(p.amount) AS total, count(*) AS n
                FROM ledger_postings p
               WHERE p.entry_id = ANY (ARRAY(SELECT DISTINCT entry_id FROM new_postings))
               GROUP BY p.entry_id, p.asset) s
       GROUP BY s.entry_id
      HAVING sum(s.n) < 2 OR bool_or(s.total <> 0)
       LIMIT 1;
      IF NOT FOUND THEN
        RETURN NULL;
      END IF;
      IF bad.n < 2 THEN
        RAISE EXCEPTION 'ledger entry % has % posting(s); an entry needs at least two', bad.entry_id, bad.n USING ERRCODE = '23514';
      END IF;
      RAISE EXCEPTION 'ledger entry % does not balance: % sums to %', bad.entry_id, bad.asset, bad.total USING ERRCODE = '23514';
    END $$`);
  await knex.raw(`
    CREATE TRIGGER ledger_postings_balanced AFTER INSERT ON ledger_postings
      REFERENCING NEW TABLE AS new_postings FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_entries_balanced()`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("DROP TRIGGER ledger_postings_balanced ON ledger_postings");
  await knex.raw("DROP TRIGGER ledger_postings_apply ON ledger_postings");
  await knex.raw("DROP FUNCTION ledger_check_entries_balanced()");
  await knex.raw("DROP FUNCTION ledger_apply_postings()");
  await knex.raw("CREATE TRIGGER ledger_postings_apply AFTER INSERT ON ledger_postings FOR EACH ROW EXECUTE FUNCTION ledger_apply_posting()");
  await knex.raw(`
    CREATE CONSTRAINT TRIGGER ledger_postings_balanced AFTER INSERT ON ledger_postings
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced()`);
}
