import type { Knex } from "knex";

/**
 * The batched earn's statements are planned once, not at every batch.
 *
 * PL/pgSQL plans a statement that reads its variables (the batch's items, as arrays) with their
 * values for the first five calls, then keeps a generic plan only if it looks no dearer than those.
 * The items are unnested from arrays, whose row count a custom plan knows and a generic one guesses
 * (100), so the generic plans always looked dearer and every batch planned its statements again:
 * ~0.1 ms a batch. Forced generic plans — index probes by key and inserts from the arrays, the same
 * shapes — measured with `npm run bench:earn-batch` (PostgreSQL CPU a batch): 1 call 1.38–1.43 →
 * 1.25 ms, 16 calls 3.27–3.35 → 3.12 ms, 32 calls 4.88–5.00 → 4.88 ms, 64 calls 8.90 → 8.70 ms,
 * 128 calls 16.75 → 16.95 ms. Not for `ledger_earn_rows`, whose generic plans were dearer (16 calls
 * 3.42 ms).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw("ALTER FUNCTION points_earn_batch(jsonb, integer[]) SET plan_cache_mode = force_generic_plan");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("ALTER FUNCTION points_earn_batch(jsonb, integer[]) RESET plan_cache_mode");
}
