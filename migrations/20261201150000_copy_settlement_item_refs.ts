import type { Knex } from "knex";

/**
 * What a statement's CSV prints of each settlement item, copied when the item is collected, so the
 * CSV is read from the items alone instead of looking up, item by item, the purchase, redemption or
 * refund behind each ledger entry (and, for breakage, the purchase that earned the lot) and the
 * contract's rates — a month of index probes on every render and every download.
 *
 * - `partner_transaction_id`, `partner_refund_id`, `hub_transaction_id`: as the CSV prints them
 *   (see renderCsv in settlement/src/statements.service.ts).
 * - `corrects_statement_id`: for a reversal, the earlier closed statement that cleared the purchase
 *   it reverses (months close in order, so every earlier statement is closed when a month is
 *   collected: the answer cannot change between collect and render, or later).
 * - `price_micros`, `share_bps`: the rate the CSV prints for the item, from its contract version.
 * - `refs_collected`: true when the columns above were filled at collect. Items collected
 *   before have false, and the CSV looks their ids up as it always did: the bytes of a closed
 *   statement's CSV never change.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE settlement_items
      ADD COLUMN partner_transaction_id text,
      ADD COLUMN partner_refund_id text,
      ADD COLUMN hub_transaction_id text,
      ADD COLUMN corrects_statement_id text,
      ADD COLUMN price_micros bigint,
      ADD COLUMN share_bps integer,
      ADD COLUMN refs_collected boolean NOT NULL DEFAULT false`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE settlement_items
      DROP COLUMN refs_collected,
      DROP COLUMN share_bps,
      DROP COLUMN price_micros,
      DROP COLUMN corrects_statement_id,
      DROP COLUMN hub_transaction_id,
      DROP COLUMN partner_refund_id,
      DROP COLUMN partner_transaction_id`);
}
