import type { Knex } from "knex";

/**
 * The batched earn, set-based. `points_earn_batch` (20261130090100) wrote each call with a dozen
 * statements in a subtransaction of its own — per earn: the purchase row, seven account upserts,
 * a lock, three reads, the entry, its postings, the lot, the event, the outbox row and the key.
 * Now one statement per table serves the whole batch:
 *
 * - `ledger_earn_many(items)` is the ledger's many-earn (`ledger.earnMany` calls it too, for a bank's
 *   clearing file, so there is one implementation of many earns): it creates missing accounts, locks every
 *   member's three point accounts (member by member, in id order — the order `lockMember` and the
 *   old batch used), reads their balances once, and computes each earn's debt repayment and credit
 *   with running sums (a member twice in one batch is exact: the second earn sees the first), then
 *   inserts every entry, every posting (one INSERT, so the statement-level balance and balanced-
 *   entry triggers check them all) and every lot. Same rows and values as `ledger_earn` one by one.
 * - `points_earn_batch(items)` first sets aside the calls that cannot be written as given — an
 *   Idempotency-Key or partner transaction id already committed, or a second call with one of them
 *   in this batch — answering them `ok = false, err_code = 23505` (the caller runs them one by one,
 *   which replays, refuses with 409 or waits for the twin). Then purchases, the ledger, events,
 *   outbox rows and keys, one INSERT each. A key or transaction id taken meanwhile by a concurrent
 *   call (seen as an INSERT … ON CONFLICT that wrote fewer rows than asked) raises 40001: nothing of
 *   the batch stays and the caller answers every call one by one. So does any other error — one
 *   caller's failure costs the others the batch, never their answer.
 */
const ITEM_COLUMNS = `idx integer, member_id text, principal text, key text, request_hash text, method text, path text, txn_id text,
  partner_id text, partner_transaction_id text, amount_minor bigint, currency text, occurred_at timestamptz, contract_version_id text,
  points bigint, computation jsonb, entry_id text, lot_id text, expires_at text, event_id text, event_data jsonb, body jsonb`;

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE FUNCTION ledger_earn_many(p_items jsonb)
    RETURNS TABLE (idx integer, points bigint, held bigint, debt bigint, lot_id text, repaid bigint)
    LANGUAGE plpgsql AS $$
    BEGIN
      IF EXISTS (SELECT 1 FROM jsonb_to_recordset(p_items) AS i(points bigint, lot_id text) WHERE i.points IS NULL OR i.points <= 0 OR i.lot_id IS NULL) THEN
        RAISE EXCEPTION 'ledger_earn_many: only positive earns, each with a lot id, are posted' USING ERRCODE = '22023';
      END IF;
      -- The accounts an earn posts to, created on first use (a probe by key first: most exist).
      INSERT INTO ledger_accounts (id, kind, asset, member_id, partner_id, balance, floor)
        SELECT a.id, a.kind, 'PTS', a.member_id, a.partner_id, a.balance, a.floor
          FROM (SELECT DISTINCT x.* FROM jsonb_to_recordset(p_items) AS i(member_id text, partner_id text)
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

      RETURN QUERY
      WITH i AS MATERIALIZED (
             SELECT * FROM jsonb_to_recordset(p_items) AS i(idx integer, member_id text, partner_id text, points bigint, contract_version_id text,
                                                            earned_at timestamptz, expires_at timestamptz, ref_type text, ref_id text, entry_id text, lot_id text,
                                                            memo jsonb)),
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
    CREATE OR REPLACE FUNCTION points_earn_batch(p_items jsonb)
    RETURNS TABLE (idx integer, ok boolean, points bigint, held bigint, debt bigint, lot_id text, err_code text, err_message text)
    LANGUAGE plpgsql AS $$
    DECLARE
      v_taken integer[];
      v_items jsonb;
      v_ledger jsonb;
      v_asked integer;
      v_written integer;
    BEGIN
      -- Set aside what cannot be written as given: a key or partner transaction id committed
      -- already, or the second call with one of them in this batch. Every probe is a LATERAL …
      -- LIMIT 1 by key: the planner guesses 100 rows for jsonb_to_recordset, and a plan cached
      -- while the tables were small would otherwise hash whole tables on every batch.
      SELECT coalesce(array_agg(t.idx), '{}') INTO v_taken
        FROM (SELECT i.*, row_number() OVER (PARTITION BY i.principal, i.key ORDER BY i.ord) AS nk,
                     row_number() OVER (PARTITION BY i.partner_id, i.partner_transaction_id ORDER BY i.ord) AS nt
                FROM ROWS FROM (jsonb_to_recordset(p_items) AS (idx integer, principal text, key text, partner_id text, partner_transaction_id text))
                     WITH ORDINALITY AS i(idx, principal, key, partner_id, partner_transaction_id, ord)) t
        LEFT JOIN LATERAL (SELECT true AS taken FROM idempotency_keys k WHERE k.principal = t.principal AND k.key = t.key LIMIT 1) k ON true
        LEFT JOIN LATERAL (SELECT true AS taken FROM point_transactions pt
                            WHERE pt.partner_id = t.partner_id AND pt.kind = 'earn' AND pt.partner_transaction_id = t.partner_transaction_id LIMIT 1) pt ON true
       WHERE t.nk > 1 OR t.nt > 1 OR k.taken OR pt.taken;
      SELECT jsonb_agg(e.value ORDER BY e.ord), count(*) INTO v_items, v_asked
        FROM jsonb_array_elements(p_items) WITH ORDINALITY AS e(value, ord)
       WHERE NOT ((e.value->>'idx')::integer = ANY (v_taken));

      IF v_asked > 0 THEN
        INSERT INTO point_transactions (id, partner_id, partner_transaction_id, kind, member_id, amount_minor, currency, occurred_at,
                                        contract_version_id, points_earned, points_burned, burn_amount_minor, ledger_ref_type, ledger_ref_id, computation)
          SELECT i.txn_id, i.partner_id, i.partner_transaction_id, 'earn', i.member_id, i.amount_minor, i.currency, i.occurred_at,
                 i.contract_version_id, i.points, 0, 0, 'transaction', i.txn_id, i.computation
            FROM jsonb_to_recordset(v_items) AS i(${ITEM_COLUMNS})
          ON CONFLICT (partner_id, kind, partner_transaction_id) DO NOTHING;
        GET DIAGNOSTICS v_written = ROW_COUNT;
        IF v_written <> v_asked THEN
          RAISE EXCEPTION 'earn batch: a partner transaction id was taken by a concurrent call' USING ERRCODE = '40001';
        END IF;

        SELECT jsonb_agg(to_jsonb(l)) INTO v_ledger
          FROM ledger_earn_many((SELECT jsonb_agg(jsonb_build_object('idx', i.idx, 'member_id', i.member_id, 'partner_id', i.partner_id, 'points', i.points,
                                                                     'contract_version_id', i.contract_version_id, 'earned_at', i.occurred_at,
                                                                     'expires_at', i.expires_at, 'ref_type', 'transaction', 'ref_id', i.txn_id,
                                                                     'entry_id', i.entry_id, 'lot_id', i.lot_id))
                                   FROM jsonb_to_recordset(v_items) AS i(${ITEM_COLUMNS}))) AS l;

        INSERT INTO events (id, type, partner_id, occurred_at, data)
          SELECT i.event_id, 'earn.posted', i.partner_id, i.occurred_at, i.event_data
            FROM ROWS FROM (jsonb_to_recordset(v_items) AS (${ITEM_COLUMNS})) WITH ORDINALITY AS i
           ORDER BY i.ordinality;
        INSERT INTO outbox (queue, job_id, payload)
          SELECT 'events.dispatch', 'evt:' || i.event_id, jsonb_build_object('eventId', i.event_id)
            FROM ROWS FROM (jsonb_to_recordset(v_items) AS (${ITEM_COLUMNS})) WITH ORDINALITY AS i
           ORDER BY i.ordinality;
        INSERT INTO idempotency_keys (principal, key, request_hash, method, path, response_status, response_body)
          SELECT i.principal, i.key, i.request_hash, i.method, i.path, 201,
                 i.body || jsonb_build_object('lot', CASE WHEN l.lot_id IS NULL THEN 'null'::jsonb
                                                          ELSE jsonb_build_object('id', l.lot_id, 'expires_at', i.expires_at) END,
                                              'balance', jsonb_build_object('available', l.points, 'held', l.held, 'owed', -l.debt))
            FROM jsonb_to_recordset(v_items) AS i(${ITEM_COLUMNS})
            JOIN jsonb_to_recordset(v_ledger) AS l(idx integer, points bigint, held bigint, debt bigint, lot_id text) ON l.idx = i.idx
          ON CONFLICT (principal, key) DO NOTHING;
        GET DIAGNOSTICS v_written = ROW_COUNT;
        IF v_written <> v_asked THEN
          RAISE EXCEPTION 'earn batch: an idempotency key was taken by a concurrent call' USING ERRCODE = '40001';
        END IF;
      END IF;

      RETURN QUERY
        SELECT l.idx, true, l.points, l.held, l.debt, l.lot_id, NULL::text, NULL::text
          FROM jsonb_to_recordset(v_ledger) AS l(idx integer, points bigint, held bigint, debt bigint, lot_id text)
        UNION ALL
        SELECT t, false, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text, '23505'::text, 'already taken'::text
          FROM unnest(v_taken) AS t;
    END $$`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("DROP FUNCTION IF EXISTS ledger_earn_many(jsonb)");
  // The per-item batch of 20261130090100.
  await knex.raw(`
    CREATE OR REPLACE FUNCTION points_earn_batch(p_items jsonb)
    RETURNS TABLE (idx integer, ok boolean, points bigint, held bigint, debt bigint, lot_id text, err_code text, err_message text)
    LANGUAGE plpgsql AS $$
    DECLARE
      it jsonb;
      r record;
      v_body jsonb;
    BEGIN
      FOR it IN SELECT value FROM jsonb_array_elements(p_items) LOOP
        idx := (it->>'idx')::integer;
        BEGIN
          INSERT INTO point_transactions (id, partner_id, partner_transaction_id, kind, member_id, amount_minor, currency, occurred_at,
                                          contract_version_id, points_earned, points_burned, burn_amount_minor, ledger_ref_type, ledger_ref_id, computation)
            VALUES (it->>'txn_id', it->>'partner_id', it->>'partner_transaction_id', 'earn', it->>'member_id', (it->>'amount_minor')::bigint,
                    it->>'currency', (it->>'occurred_at')::timestamptz, it->>'contract_version_id', (it->>'points')::bigint, 0, 0,
                    'transaction', it->>'txn_id', it->'computation')
            ON CONFLICT (partner_id, kind, partner_transaction_id) DO NOTHING;
          IF NOT FOUND THEN
            RAISE EXCEPTION 'partner transaction % was already sent', it->>'partner_transaction_id' USING ERRCODE = '23505';
          END IF;

          SELECT * INTO r FROM ledger_earn(it->>'member_id', it->>'partner_id', (it->>'points')::bigint, it->>'contract_version_id',
                                           (it->>'occurred_at')::timestamptz, (it->>'expires_at')::timestamptz, 'transaction', it->>'txn_id',
                                           it->>'entry_id', it->>'lot_id', NULL);

          INSERT INTO events (id, type, partner_id, occurred_at, data)
            VALUES (it->>'event_id', 'earn.posted', it->>'partner_id', (it->>'occurred_at')::timestamptz, it->'event_data');
          INSERT INTO outbox (queue, job_id, payload)
            VALUES ('events.dispatch', 'evt:' || (it->>'event_id'), jsonb_build_object('eventId', it->>'event_id'));

          v_body := (it->'body') || jsonb_build_object('lot',
                      CASE WHEN r.lot_id IS NULL THEN 'null'::jsonb
                           ELSE jsonb_build_object('id', r.lot_id, 'expires_at', it->>'expires_at') END,
                      'balance', jsonb_build_object('available', r.points, 'held', r.held, 'owed', -r.debt));
          INSERT INTO idempotency_keys (principal, key, request_hash, method, path, response_status, response_body)
            VALUES (it->>'principal', it->>'key', it->>'request_hash', it->>'method', it->>'path', 201, v_body)
            ON CONFLICT (principal, key) DO NOTHING;
          IF NOT FOUND THEN
            RAISE EXCEPTION 'idempotency key % was already used', it->>'key' USING ERRCODE = '23505';
          END IF;

          ok := true; points := r.points; held := r.held; debt := r.debt; lot_id := r.lot_id; err_code := NULL; err_message := NULL;
        EXCEPTION WHEN OTHERS THEN
          GET STACKED DIAGNOSTICS err_code = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT;
          ok := false; points := NULL; held := NULL; debt := NULL; lot_id := NULL;
        END;
        RETURN NEXT;
      END LOOP;
    END $$`);
}
