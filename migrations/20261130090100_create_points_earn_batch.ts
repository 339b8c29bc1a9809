import type { Knex } from "knex";

/**
 * The batched earn: many partners' earns written in one statement, so one commit (one WAL flush)
 * serves them all — group commit, as TigerBeetle batches transfers.
 *
 * `points_earn_batch(items)` takes earns that Node has already validated and priced (partner
 * active, contract in force, member reachable, points computed by the contract's base rate), and
 * writes for each, in its own subtransaction: the purchase row, the ledger earn (through the
 * ledger's own `ledger_earn`), the `earn.posted` event and its outbox row, and last the
 * Idempotency-Key row with the answer — the same rows, with the same values, as the one-by-one
 * path writes.
 *
 * An item that cannot be written as given — its Idempotency-Key or partner transaction id already
 * taken (a retry, a concurrent twin), a constraint, a lock timeout — is rolled back alone to its
 * subtransaction and reported `ok = false`; the caller then runs it through the one-by-one path,
 * which gives the exact answer (a replay, a 409, a 422) under the usual rules. The other items are
 * unaffected. Items are written in the order given (the caller sorts them by member, so two
 * batches lock members in one order).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE FUNCTION points_earn_batch(p_items jsonb)
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
          -- Last, so that a twin of this key in flight elsewhere is waited for, then handed to the
          -- one-by-one path, which replays the answer that committed first.
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

export async function down(knex: Knex): Promise<void> {
  await knex.raw("DROP FUNCTION IF EXISTS points_earn_batch(jsonb)");
}
