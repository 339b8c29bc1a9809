import type { Knex } from "knex";

/**
 * A burn in one statement, for the common case. The one-by-one burn makes ~11 round trips (BEGIN,
 * the key's claim, partner and contract, member, the purchase row, the accounts' lock, the open
 * lots, the entry with its postings and lot moves, the event and its outbox row, the key's answer,
 * COMMIT), and on the bench's machine each socket write costs the API ~0.35 ms of CPU: a burn cost
 * 3.6–5.3 ms of API and 6.4–8.4 ms of PostgreSQL CPU.
 *
 * `points_burn` writes the same rows as the one-by-one path — the purchase row, the `burn` entry
 * (member points −n, the partner's redemption account +n), the lots consumed soonest-expiring first
 * and the record of each move, the `burn.posted` event and its outbox row, and the Idempotency-Key
 * row with the answer — under the same lock, taken in the same order (the member's three points
 * accounts, by id, FOR UPDATE). It writes nothing, and says why, for anything but the common case,
 * which the caller then sends the one-by-one way for its exact answer:
 * - `key-taken`, `transaction-taken`: the Idempotency-Key or the partner transaction id is used
 *   already (a replay, a refusal, a duplicate);
 * - `checks`: the partner is not active, no contract is in force at the instant or it is in another
 *   currency, the member is not active, not in the partner's network or not linked to it;
 * - `accounts`: the member's or the partner's accounts do not exist yet (created on first use);
 * - `expiry-due`: a lot of the member is past its date (the one-by-one path expires it first);
 * - `insufficient`: fewer points than asked (the one-by-one path refuses with the balance).
 * A key or transaction id taken meanwhile by a concurrent call raises 40001: nothing is written, and
 * the caller's retry the one-by-one way replays or refuses as usual.
 */
const SETTINGS = "SET enable_seqscan = off SET jit = off";

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE FUNCTION points_burn(p jsonb)
    RETURNS TABLE (ok boolean, reason text, points bigint, held bigint, debt bigint)
    LANGUAGE plpgsql ${SETTINGS} AS $$
    DECLARE
      v_member text := p->>'member_id';
      v_partner text := p->>'partner_id';
      v_points bigint := (p->>'points')::bigint;
      v_at timestamptz := (p->>'occurred_at')::timestamptz;
      v_now timestamptz := (p->>'now')::timestamptz;
      v_txn text := p->>'txn_id';
      v_entry text := p->>'entry_id';
      v_event text := p->>'event_id';
      v_contract text;
      v_currency text;
      v_pts bigint;
      v_held bigint;
      v_debt bigint;
      v_n integer;
    BEGIN
      IF v_points IS NULL OR v_points <= 0 THEN
        RAISE EXCEPTION 'points_burn: only a positive number of points is burned' USING ERRCODE = '22023';
      END IF;
      IF EXISTS (SELECT 1 FROM idempotency_keys k WHERE k.principal = p->>'principal' AND k.key = p->>'key') THEN
        RETURN QUERY SELECT false, 'key-taken', NULL::bigint, NULL::bigint, NULL::bigint;
        RETURN;
      END IF;
      IF EXISTS (SELECT 1 FROM point_transactions t
                  WHERE t.partner_id = v_partner AND t.kind = 'burn' AND t.partner_transaction_id = p->>'partner_transaction_id') THEN
        RETURN QUERY SELECT false, 'transaction-taken', NULL::bigint, NULL::bigint, NULL::bigint;
        RETURN;
      END IF;

      -- The partner active, its contract in force at the instant; the member active, in the
      -- partner's network (sandbox or live) and linked to it: what activePartnerContract and
      -- members.resolve check.
      SELECT c.id, c.currency INTO v_contract, v_currency
        FROM partners pa
        JOIN LATERAL (SELECT cv.id, cv.currency FROM contract_versions cv
                       WHERE cv.partner_id = pa.id AND cv.effective_from <= v_at
                       ORDER BY cv.effective_from DESC LIMIT 1) c ON true
        JOIN members m ON m.id = v_member AND m.status = 'active' AND m.sandbox = pa.sandbox
       WHERE pa.id = v_partner AND pa.status = 'active'
         AND EXISTS (SELECT 1 FROM member_partner_links l WHERE l.member_id = v_member AND l.partner_id = v_partner);
      IF v_contract IS NULL OR v_currency <> p->>'currency' THEN
        RETURN QUERY SELECT false, 'checks', NULL::bigint, NULL::bigint, NULL::bigint;
        RETURN;
      END IF;

      -- The same lock, in the same order, as lockMember: one member's operations are serial.
      SELECT max(a.balance) FILTER (WHERE a.kind = 'member_points'),
             max(a.balance) FILTER (WHERE a.kind = 'member_points_held'),
             max(a.balance) FILTER (WHERE a.kind = 'member_points_debt'),
             count(*)
        INTO v_pts, v_held, v_debt, v_n
        FROM (SELECT a.kind, a.balance FROM ledger_accounts a
               WHERE a.id IN ('acc_debt_' || v_member, 'acc_held_' || v_member, 'acc_pts_' || v_member)
               ORDER BY a.id FOR UPDATE) a;
      IF v_n < 3 OR NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.id = 'acc_red_' || v_partner) THEN
        RETURN QUERY SELECT false, 'accounts', NULL::bigint, NULL::bigint, NULL::bigint;
        RETURN;
      END IF;
      IF EXISTS (SELECT 1 FROM ledger_lots l WHERE l.member_id = v_member AND l.remaining > 0 AND l.expires_at <= v_now) THEN
        RETURN QUERY SELECT false, 'expiry-due', NULL::bigint, NULL::bigint, NULL::bigint;
        RETURN;
      END IF;
      IF v_pts < v_points THEN
        RETURN QUERY SELECT false, 'insufficient', NULL::bigint, NULL::bigint, NULL::bigint;
        RETURN;
      END IF;

      INSERT INTO point_transactions (id, partner_id, partner_transaction_id, kind, member_id, amount_minor, currency, occurred_at,
                                      contract_version_id, points_burned, burn_amount_minor, ledger_ref_type, ledger_ref_id)
        VALUES (v_txn, v_partner, p->>'partner_transaction_id', 'burn', v_member, (p->>'amount_minor')::bigint, p->>'currency', v_at,
                v_contract, v_points, (p->>'amount_minor')::bigint, 'transaction', v_txn)
        ON CONFLICT (partner_id, kind, partner_transaction_id) DO NOTHING;
      GET DIAGNOSTICS v_n = ROW_COUNT;
      IF v_n = 0 THEN
        RAISE EXCEPTION 'points_burn: the partner transaction id was taken by a concurrent call' USING ERRCODE = '40001';
      END IF;

      -- The entry, its lots (soonest-expiring first, as pickFrom takes them) and its postings: one
      -- statement, as ledger.post writes them; the database checks that it balances.
      WITH o AS (SELECT l.id, l.remaining, sum(l.remaining) OVER (ORDER BY l.expires_at, l.id) AS upto
                   FROM ledger_lots l WHERE l.member_id = v_member AND l.remaining > 0),
           take AS MATERIALIZED (SELECT o.id, least(o.remaining, v_points - (o.upto - o.remaining)) AS amount
                                   FROM o WHERE o.upto - o.remaining < v_points),
           e AS (INSERT INTO ledger_entries (id, kind, partner_id, member_id, ref_type, ref_id, contract_version_id, occurred_at, memo)
                   VALUES (v_entry, 'burn', v_partner, v_member, 'transaction', v_txn, v_contract, v_at, NULL)),
           lots_moved AS (UPDATE ledger_lots l SET remaining = l.remaining - t.amount FROM take t WHERE l.id = t.id),
           moves_recorded AS (INSERT INTO ledger_lot_movements (lot_id, entry_id, amount) SELECT t.id, v_entry, t.amount FROM take t)
      INSERT INTO ledger_postings (entry_id, account_id, asset, amount)
        VALUES (v_entry, 'acc_pts_' || v_member, 'PTS', -v_points), (v_entry, 'acc_red_' || v_partner, 'PTS', v_points);

      WITH ev AS (INSERT INTO events (id, type, partner_id, occurred_at, data) VALUES (v_event, 'burn.posted', v_partner, v_at, p->'event_data'))
      INSERT INTO outbox (queue, job_id, payload) VALUES ('events.dispatch', 'evt:' || v_event, jsonb_build_object('eventId', v_event));

      INSERT INTO idempotency_keys (principal, key, request_hash, method, path, response_status, response_body)
        VALUES (p->>'principal', p->>'key', p->>'request_hash', p->>'method', p->>'path', 201,
                (p->'body') || jsonb_build_object('balance', jsonb_build_object('available', v_pts - v_points, 'held', v_held, 'owed', -v_debt)))
        ON CONFLICT (principal, key) DO NOTHING;
      GET DIAGNOSTICS v_n = ROW_COUNT;
      IF v_n = 0 THEN
        RAISE EXCEPTION 'points_burn: the idempotency key was taken by a concurrent call' USING ERRCODE = '40001';
      END IF;

      RETURN QUERY SELECT true, NULL::text, v_pts - v_points, v_held, v_debt;
    END $$`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("DROP FUNCTION points_burn(jsonb)");
}
