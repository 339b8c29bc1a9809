import type { Knex } from "knex";

/**
 * Burns that arrive together, written in one transaction: `points_burn_batch(items)` runs
 * `points_burn` (20261201210000) for each item in order and answers one row per item, so a batch
 * pays one round trip and one commit instead of one each. A member burned twice in a batch is
 * exact: the second call sees the first one's rows, as it would one after the other.
 *
 * Every member's three points accounts are locked first, all of them, member by member in id order
 * (the order `lockMember` and the earn batch use), so that the batch takes its locks in the same
 * order as any other writer — members, then the partners' accounts its postings touch — and two
 * batches never wait on each other in a cycle. `lock_timeout = 25ms`, as the earn batch: a member
 * held by a long transaction fails the batch at once, and its calls go one by one, instead of
 * holding up every burn of the process.
 *
 * An item `points_burn` sets aside (a reason, nothing written) is answered with its reason and
 * the caller sends it the one-by-one way. Anything raised (a key or transaction id taken meanwhile:
 * 40001; a lock not granted in time: 55P03) undoes the whole batch: every call goes one by one.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE FUNCTION points_burn_batch(p_items jsonb)
    RETURNS TABLE (idx integer, ok boolean, reason text, points bigint, held bigint, debt bigint)
    LANGUAGE plpgsql SET enable_seqscan = off SET jit = off SET lock_timeout = '25ms' AS $$
    DECLARE
      v_item jsonb;
      v_i integer := 0;
      r record;
    BEGIN
      PERFORM 1 FROM ledger_accounts a
        WHERE a.id = ANY (ARRAY(SELECT unnest(ARRAY['acc_debt_' || m.member_id, 'acc_held_' || m.member_id, 'acc_pts_' || m.member_id])
                                  FROM (SELECT DISTINCT x->>'member_id' AS member_id FROM jsonb_array_elements(p_items) AS x) m))
        ORDER BY a.member_id, a.id FOR UPDATE;
      FOR v_item IN SELECT x FROM jsonb_array_elements(p_items) AS x LOOP
        SELECT * INTO r FROM points_burn(v_item);
        idx := v_i;
        ok := r.ok;
        reason := r.reason;
        points := r.points;
        held := r.held;
        debt := r.debt;
        RETURN NEXT;
        v_i := v_i + 1;
      END LOOP;
    END $$`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("DROP FUNCTION points_burn_batch(jsonb)");
}
