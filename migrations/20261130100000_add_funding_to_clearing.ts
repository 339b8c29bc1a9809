import type { Knex } from "knex";

/**
 * Who pays for points, and money in clearing.
 *
 * - `ledger_lots.funded_by`: the funder of the lot's points — `operator` (a network-wide rule, a tier
 *   multiplier) or `partner:<id>` (the contract's base rate, a partner's own promotion). An earn
 *   whose points have several funders writes one lot per funder, so expiry, spending and refunds keep
 *   the funder exactly. Existing lots were all funded by their issuing partner.
 * - `settlement_items.amount_minor`: money items (cashback and round-up match funding, payouts the
 *   hub owes a bank) carry their amount in minor units; points items keep `points`.
 * - The line groups clearing may write: the operator-funded points a partner's members earned with it
 *   (memo lines, no charge), and the money groups.
 */
const ITEM_GROUPS_BEFORE = ["issuance", "issuance_reversal", "redemption", "redemption_reversal", "breakage_share", "unclassified"];
const LINE_GROUPS_BEFORE = ["issuance", "issuance_reversal", "redemption", "redemption_reversal", "breakage_share", "transaction_fee", "monthly_fee"];
const NEW_GROUPS = [
  "operator_funded_issuance",
  "operator_funded_reversal",
  "operator_funded_breakage",
  "cashback_funding",
  "cashback_funding_reversal",
  "roundup_match_funding",
  "cashback_payout",
  "roundup_match_credited",
];

const list = (xs: string[]) => xs.map((x) => `'${x}'`).join(", ");

export async function up(knex: Knex): Promise<void> {
  await knex.raw("ALTER TABLE ledger_lots ADD COLUMN funded_by text");
  await knex.raw("UPDATE ledger_lots SET funded_by = 'partner:' || issuing_partner_id");
  await knex.raw("ALTER TABLE ledger_lots ALTER COLUMN funded_by SET NOT NULL");
  await knex.raw("ALTER TABLE ledger_lots ADD CONSTRAINT ledger_lots_funded_by_valid CHECK (funded_by = 'operator' OR funded_by ~ '^partner:.+$')");

  await knex.raw("ALTER TABLE settlement_items ADD COLUMN amount_minor bigint");
  // One entry can now clear into several groups of one partner (a purchase whose points the partner
  // and the operator both fund; a sweep that both bills and pays one bank): the group is in the key.
  await knex.raw("ALTER TABLE settlement_items DROP CONSTRAINT settlement_items_partner_id_entry_id_lot_id_unique");
  await knex.raw("ALTER TABLE settlement_items ADD CONSTRAINT settlement_items_partner_entry_lot_group_unique UNIQUE (partner_id, entry_id, lot_id, line_group)");
  await knex.raw(`
    ALTER TABLE settlement_items
      DROP CONSTRAINT settlement_items_group_valid,
      ADD CONSTRAINT settlement_items_group_valid CHECK (line_group IN (${list([...ITEM_GROUPS_BEFORE, ...NEW_GROUPS])}))`);
  await knex.raw(`
    ALTER TABLE settlement_lines
      DROP CONSTRAINT settlement_lines_group_valid,
      ADD CONSTRAINT settlement_lines_group_valid CHECK (line_group IN (${list([...LINE_GROUPS_BEFORE, ...NEW_GROUPS])}))`);
  // Clearing reads money postings by the partner's money accounts (posting id ≤ the watermark).
  await knex.raw("CREATE INDEX IF NOT EXISTS ledger_accounts_partner_kind_idx ON ledger_accounts (partner_id, kind) WHERE partner_id IS NOT NULL");
  // Operator-funded lots by the partner where they were issued, and partners' lots by funder.
  await knex.raw("CREATE INDEX ledger_lots_funded_by_idx ON ledger_lots (funded_by)");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("DROP INDEX IF EXISTS ledger_lots_funded_by_idx");
  await knex.raw("DROP INDEX IF EXISTS ledger_accounts_partner_kind_idx");
  // Rows of the new groups cannot survive the narrower constraints: a rollback is for a database
  // that has not cleared them yet, and says so rather than deleting statements.
  await knex.raw(`
    ALTER TABLE settlement_lines
      DROP CONSTRAINT settlement_lines_group_valid,
      ADD CONSTRAINT settlement_lines_group_valid CHECK (line_group IN (${list(LINE_GROUPS_BEFORE)}))`);
  await knex.raw(`
    ALTER TABLE settlement_items
      DROP CONSTRAINT settlement_items_group_valid,
      ADD CONSTRAINT settlement_items_group_valid CHECK (line_group IN (${list(ITEM_GROUPS_BEFORE)}))`);
  await knex.raw("ALTER TABLE settlement_items DROP CONSTRAINT settlement_items_partner_entry_lot_group_unique");
  await knex.raw("ALTER TABLE settlement_items ADD CONSTRAINT settlement_items_partner_id_entry_id_lot_id_unique UNIQUE (partner_id, entry_id, lot_id)");
  await knex.raw("ALTER TABLE settlement_items DROP COLUMN amount_minor");
  await knex.raw("ALTER TABLE ledger_lots DROP CONSTRAINT ledger_lots_funded_by_valid");
  await knex.raw("ALTER TABLE ledger_lots DROP COLUMN funded_by");
}
