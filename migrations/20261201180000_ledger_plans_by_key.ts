import type { Knex } from "knex";

/**
 * The ledger's set-based functions look rows up by key only: the accounts of the members in a
 * batch (`ledger_earn_many`, the balance trigger), the postings of the entries just written (the
 * balanced-entry trigger), the keys and transaction ids already taken (`points_earn_batch`).
 *
 * PL/pgSQL plans each statement once per connection and keeps the plan. A connection that planned
 * them while the network was small (a new hub, the bench's fresh database) kept a sequential scan
 * of `ledger_accounts` for as long as it lived: on a network of 2,000 members the batched earn
 * spent ~10 ms of its ~13 ms per batch of 16 scanning every account (auto_explain, `npm run
 * bench`), until an ANALYZE happened to invalidate the plan. These functions now plan with
 * sequential scans off — every lookup they make has its index, and the planner picks it whatever
 * the statistics say — and with JIT off (a plan that could only scan would otherwise cost enough
 * to be compiled on every call). The settlement steps do the same with SET LOCAL.
 */
const FUNCTIONS = ["ledger_earn_many(jsonb)", "points_earn_batch(jsonb)", "ledger_apply_postings()", "ledger_check_entries_balanced()"];

export async function up(knex: Knex): Promise<void> {
  for (const fn of FUNCTIONS) await knex.raw(`ALTER FUNCTION ${fn} SET enable_seqscan = off SET jit = off`);
}

export async function down(knex: Knex): Promise<void> {
  for (const fn of FUNCTIONS) await knex.raw(`ALTER FUNCTION ${fn} RESET enable_seqscan RESET jit`);
}
