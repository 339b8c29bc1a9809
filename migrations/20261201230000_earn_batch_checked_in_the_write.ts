import type { Knex } from "knex";
import { up as oneParse } from "./20261201190000_earn_batch_one_parse.ts";

/**
 * The batched earn checks its calls in the statement that writes them: one round trip a batch
 * instead of two.
 *
 * Until now a batch read its checks first (partner active, contract in force at each call's
 * instant, member active, in the partner's network and linked, no rule that needs the database),
 * priced the calls in Node with the contract that read returned, then sent the write: two round
 * trips, two transactions. On the bench's machine the checks' round trip was a fifth of a batch's
 * time (1.2 of 5.2 ms, most of it waiting for the API's busy event loop), and removing it outright
 * raised the earn rate by a tenth.
 *
 * Now Node prices each call with the contract version it has cached — only versions already in
 * force when read, which the database freezes (contract_version_frozen), so their terms cannot
 * change under the cache — and the write statement runs the same checks first, in its own snapshot,
 * including that the version it priced with is the one in force at the call's instant. The calls
 * the checks refuse are passed here as `p_refused`: set aside like a taken key, answered with
 * `checks`, and sent the one-by-one way by the caller, which gives their exact answer (the problem,
 * or the earn priced by the version now in force) and drops its cached versions of that partner.
 *
 * It replaces `points_earn_batch(p_items)` (20261201190000), which nothing calls any more.
 */
const SETTINGS = "SET enable_seqscan = off SET jit = off";

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE FUNCTION points_earn_batch(p_items jsonb, p_refused integer[])
    RETURNS TABLE (idx integer, ok boolean, points bigint, held bigint, debt bigint, lot_id text, err_code text, err_message text)
    LANGUAGE plpgsql ${SETTINGS} AS $$
    DECLARE
      v_items points_earn_batch_item[] := ARRAY(SELECT i FROM jsonb_populate_recordset(NULL::points_earn_batch_item, p_items) AS i);
      v_taken integer[];
      v_refused integer[];
      v_asked integer;
      v_written integer;
      l_idx integer[];
      l_points bigint[];
      l_held bigint[];
      l_debt bigint[];
      l_lot text[];
    BEGIN
      -- Set aside what cannot be written as given: a key or partner transaction id committed
      -- already, or the second call with one of them in this batch. Every probe is a LATERAL …
      -- LIMIT 1 by key: a plan cached while the tables were small would otherwise hash whole tables.
      SELECT coalesce(array_agg(t.idx), '{}') INTO v_taken
        FROM (SELECT i.idx, i.principal, i.key, i.partner_id, i.partner_transaction_id,
                     row_number() OVER (PARTITION BY i.principal, i.key ORDER BY i.ordinality) AS nk,
                     row_number() OVER (PARTITION BY i.partner_id, i.partner_transaction_id ORDER BY i.ordinality) AS nt
                FROM unnest(v_items) WITH ORDINALITY AS i) t
        LEFT JOIN LATERAL (SELECT true AS taken FROM idempotency_keys k WHERE k.principal = t.principal AND k.key = t.key LIMIT 1) k ON true
        LEFT JOIN LATERAL (SELECT true AS taken FROM point_transactions pt
                            WHERE pt.partner_id = t.partner_id AND pt.kind = 'earn' AND pt.partner_transaction_id = t.partner_transaction_id LIMIT 1) pt ON true
       WHERE t.nk > 1 OR t.nt > 1 OR k.taken OR pt.taken;
      -- And what the caller's checks, run in the same statement before this call, refused.
      v_refused := ARRAY(SELECT r FROM unnest(coalesce(p_refused, '{}')) AS r WHERE NOT (r = ANY (v_taken)));
      IF cardinality(v_taken) > 0 OR cardinality(v_refused) > 0 THEN
        v_items := ARRAY(SELECT i FROM unnest(v_items) AS i WHERE NOT (i.idx = ANY (v_taken)) AND NOT (i.idx = ANY (v_refused)));
      END IF;
      v_asked := coalesce(cardinality(v_items), 0);

      IF v_asked > 0 THEN
        INSERT INTO point_transactions (id, partner_id, partner_transaction_id, kind, member_id, amount_minor, currency, occurred_at,
                                        contract_version_id, points_earned, points_burned, burn_amount_minor, ledger_ref_type, ledger_ref_id, computation)
          SELECT i.txn_id, i.partner_id, i.partner_transaction_id, 'earn', i.member_id, i.amount_minor, i.currency, i.occurred_at,
                 i.contract_version_id, i.points, 0, 0, 'transaction', i.txn_id, i.computation
            FROM unnest(v_items) AS i
          ON CONFLICT (partner_id, kind, partner_transaction_id) DO NOTHING;
        GET DIAGNOSTICS v_written = ROW_COUNT;
        IF v_written <> v_asked THEN
          RAISE EXCEPTION 'earn batch: a partner transaction id was taken by a concurrent call' USING ERRCODE = '40001';
        END IF;

        SELECT array_agg(l.idx), array_agg(l.points), array_agg(l.held), array_agg(l.debt), array_agg(l.lot_id)
          INTO l_idx, l_points, l_held, l_debt, l_lot
          FROM ledger_earn_many((SELECT jsonb_agg(jsonb_build_object('idx', i.idx, 'member_id', i.member_id, 'partner_id', i.partner_id, 'points', i.points,
                                                                     'contract_version_id', i.contract_version_id, 'earned_at', i.occurred_at,
                                                                     'expires_at', i.expires_at, 'ref_type', 'transaction', 'ref_id', i.txn_id,
                                                                     'entry_id', i.entry_id, 'lot_id', i.lot_id))
                                   FROM unnest(v_items) AS i)) AS l;

        WITH ev AS (INSERT INTO events (id, type, partner_id, occurred_at, data)
                      SELECT i.event_id, 'earn.posted', i.partner_id, i.occurred_at, i.event_data
                        FROM unnest(v_items) WITH ORDINALITY AS i
                       ORDER BY i.ordinality)
        INSERT INTO outbox (queue, job_id, payload)
          SELECT 'events.dispatch', 'evt:' || i.event_id, jsonb_build_object('eventId', i.event_id)
            FROM unnest(v_items) WITH ORDINALITY AS i
           ORDER BY i.ordinality;
        INSERT INTO idempotency_keys (principal, key, request_hash, method, path, response_status, response_body)
          SELECT i.principal, i.key, i.request_hash, i.method, i.path, 201,
                 i.body || jsonb_build_object('lot', CASE WHEN l.lot_id IS NULL THEN 'null'::jsonb
                                                          ELSE jsonb_build_object('id', l.lot_id, 'expires_at', i.expires_at) END,
                                              'balance', jsonb_build_object('available', l.points, 'held', l.held, 'owed', -l.debt))
            FROM unnest(v_items) AS i
            JOIN unnest(l_idx, l_points, l_held, l_debt, l_lot) AS l(idx, points, held, debt, lot_id) ON l.idx = i.idx
          ON CONFLICT (principal, key) DO NOTHING;
        GET DIAGNOSTICS v_written = ROW_COUNT;
        IF v_written <> v_asked THEN
          RAISE EXCEPTION 'earn batch: an idempotency key was taken by a concurrent call' USING ERRCODE = '40001';
        END IF;
      END IF;

      RETURN QUERY
        SELECT l.idx, true, l.points, l.held, l.debt, l.lot_id, NULL::text, NULL::text
          FROM unnest(l_idx, l_points, l_held, l_debt, l_lot) AS l(idx, points, held, debt, lot_id)
        UNION ALL
        SELECT t, false, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text, '23505'::text, 'already taken'::text
          FROM unnest(v_taken) AS t
        UNION ALL
        SELECT r, false, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text, 'checks'::text, 'refused by the checks'::text
          FROM unnest(v_refused) AS r;
    END $$`);
  await knex.raw("DROP FUNCTION points_earn_batch(jsonb)");
}

export async function down(knex: Knex): Promise<void> {
  // The one-argument function exactly as 20261201190000 created it (only that statement of its up).
  const only = { raw: (sql: string) => (sql.includes("FUNCTION points_earn_batch(p_items jsonb)") ? knex.raw(sql) : Promise.resolve()) };
  await oneParse(only as unknown as Knex);
  await knex.raw("DROP FUNCTION points_earn_batch(jsonb, integer[])");
}
