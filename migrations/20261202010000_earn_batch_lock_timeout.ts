import type { Knex } from "knex";

/**
 * A batch of earns waits at most 25 ms for a row lock.
 *
 * The API writes one batch at a time (EARN_BATCH_MAX_IN_FLIGHT=1), so a batch that waits for a
 * member's accounts — locked by a burn, a refund, the expiry job or a bank's purchases being written
 * — holds up every earn that queues behind it, whoever their members. With `lock_timeout` set on
 * the function, such a batch fails after 25 ms (55P03, nothing of it written) and its calls go one by
 * one, each in its own transaction: the call for the locked member waits for its lock as any call
 * would; the others are answered at once. No other effect: under no contention a batch never waits.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw("ALTER FUNCTION points_earn_batch(jsonb, integer[]) SET lock_timeout = '25ms'");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("ALTER FUNCTION points_earn_batch(jsonb, integer[]) RESET lock_timeout");
}
