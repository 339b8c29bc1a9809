import type { Knex } from "knex";

/**
 * `ledger_earn` (20261130090000) writes lots; since 20261130100000 every lot names its funder
 * (`ledger_lots.funded_by`, NOT NULL). The one-round-trip earn is the path of points funded by the
 * partner where they are earned (the contract's base rate), so its lot is `partner:<issuing partner>`.
 * Earns with other funders (operator-funded rules, a partner's promotion at another partner) go
 * through the ledger's multi-lot path in Node.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE OR REPLACE FUNCTION ledger_earn(
      p_member_id text, p_partner_id text, p_points bigint, p_contract_version_id text,
      p_earned_at timestamptz, p_expires_at timestamptz, p_ref_type text, p_ref_id text,
      p_entry_id text, p_lot_id text, p_memo jsonb)
    RETURNS TABLE (points bigint, held bigint, debt bigint, debt_floor bigint, repaid bigint, lot_id text)
    LANGUAGE plpgsql AS $$
    DECLARE
      v_points bigint;
      v_held bigint;
      v_debt bigint;
      v_floor bigint;
      v_repay bigint;
      v_credited bigint;
      v_lot text;
    BEGIN
      IF p_points IS NULL OR p_points <= 0 THEN
        RAISE EXCEPTION 'ledger_earn of % points: only a positive earn is posted', p_points USING ERRCODE = '22023';
      END IF;
      INSERT INTO ledger_accounts (id, kind, asset, member_id, partner_id, balance, floor) VALUES
        ('acc_pts_' || p_member_id, 'member_points', 'PTS', p_member_id, NULL, 0, 0),
        ('acc_held_' || p_member_id, 'member_points_held', 'PTS', p_member_id, NULL, 0, 0),
        ('acc_debt_' || p_member_id, 'member_points_debt', 'PTS', p_member_id, NULL, 0, 0),
        ('acc_iss_' || p_partner_id, 'partner_issuance', 'PTS', NULL, p_partner_id, NULL, NULL),
        ('acc_red_' || p_partner_id, 'partner_redemption', 'PTS', NULL, p_partner_id, NULL, NULL),
        ('acc_rec_' || p_partner_id, 'partner_recovery', 'PTS', NULL, p_partner_id, NULL, NULL),
        ('acc_breakage', 'breakage', 'PTS', NULL, NULL, NULL, NULL)
      ON CONFLICT DO NOTHING;
      -- The same lock, in the same order, as lockMember: one member's operations are serial.
      PERFORM 1 FROM ledger_accounts a
        WHERE a.id IN ('acc_debt_' || p_member_id, 'acc_held_' || p_member_id, 'acc_pts_' || p_member_id)
        ORDER BY a.id FOR UPDATE;
      SELECT a.balance INTO v_points FROM ledger_accounts a WHERE a.id = 'acc_pts_' || p_member_id;
      SELECT a.balance INTO v_held FROM ledger_accounts a WHERE a.id = 'acc_held_' || p_member_id;
      SELECT a.balance, a.floor INTO v_debt, v_floor FROM ledger_accounts a WHERE a.id = 'acc_debt_' || p_member_id;

      -- Earned points first pay off a points debt; the rest becomes a lot.
      v_repay := least(p_points, -v_debt);
      v_credited := p_points - v_repay;
      v_lot := CASE WHEN v_credited > 0 THEN p_lot_id END;
      IF v_credited > 0 AND p_lot_id IS NULL THEN
        RAISE EXCEPTION 'ledger_earn needs a lot id for % credited points', v_credited USING ERRCODE = '22023';
      END IF;

      INSERT INTO ledger_entries (id, kind, partner_id, member_id, ref_type, ref_id, contract_version_id, occurred_at, memo)
        VALUES (p_entry_id, 'earn', p_partner_id, p_member_id, p_ref_type, p_ref_id, p_contract_version_id, p_earned_at, p_memo);
      INSERT INTO ledger_postings (entry_id, account_id, asset, amount)
        SELECT p_entry_id, x.account_id, 'PTS', x.amount
          FROM (VALUES (1, 'acc_iss_' || p_partner_id, -p_points),
                       (2, 'acc_debt_' || p_member_id, v_repay),
                       (3, 'acc_pts_' || p_member_id, v_credited)) AS x(n, account_id, amount)
         WHERE x.amount <> 0
         ORDER BY x.n;
      IF v_lot IS NOT NULL THEN
        INSERT INTO ledger_lots (id, member_id, account_id, issuing_partner_id, contract_version_id, entry_id, earned_at, expires_at, amount, remaining, funded_by)
          VALUES (v_lot, p_member_id, 'acc_pts_' || p_member_id, p_partner_id, p_contract_version_id, p_entry_id, p_earned_at, p_expires_at, v_credited, v_credited, 'partner:' || p_partner_id);
      END IF;
      RETURN QUERY SELECT v_points + v_credited, v_held, v_debt + v_repay, v_floor, v_repay, v_lot;
    END $$`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE OR REPLACE FUNCTION ledger_earn(
      p_member_id text, p_partner_id text, p_points bigint, p_contract_version_id text,
      p_earned_at timestamptz, p_expires_at timestamptz, p_ref_type text, p_ref_id text,
      p_entry_id text, p_lot_id text, p_memo jsonb)
    RETURNS TABLE (points bigint, held bigint, debt bigint, debt_floor bigint, repaid bigint, lot_id text)
    LANGUAGE plpgsql AS $$
    DECLARE
      v_points bigint;
      v_held bigint;
      v_debt bigint;
      v_floor bigint;
      v_repay bigint;
      v_credited bigint;
      v_lot text;
    BEGIN
      IF p_points IS NULL OR p_points <= 0 THEN
        RAISE EXCEPTION 'ledger_earn of % points: only a positive earn is posted', p_points USING ERRCODE = '22023';
      END IF;
      INSERT INTO ledger_accounts (id, kind, asset, member_id, partner_id, balance, floor) VALUES
        ('acc_pts_' || p_member_id, 'member_points', 'PTS', p_member_id, NULL, 0, 0),
        ('acc_held_' || p_member_id, 'member_points_held', 'PTS', p_member_id, NULL, 0, 0),
        ('acc_debt_' || p_member_id, 'member_points_debt', 'PTS', p_member_id, NULL, 0, 0),
        ('acc_iss_' || p_partner_id, 'partner_issuance', 'PTS', NULL, p_partner_id, NULL, NULL),
        ('acc_red_' || p_partner_id, 'partner_redemption', 'PTS', NULL, p_partner_id, NULL, NULL),
        ('acc_rec_' || p_partner_id, 'partner_recovery', 'PTS', NULL, p_partner_id, NULL, NULL),
        ('acc_breakage', 'breakage', 'PTS', NULL, NULL, NULL, NULL)
      ON CONFLICT DO NOTHING;
      -- The same lock, in the same order, as lockMember: one member's operations are serial.
      PERFORM 1 FROM ledger_accounts a
        WHERE a.id IN ('acc_debt_' || p_member_id, 'acc_held_' || p_member_id, 'acc_pts_' || p_member_id)
        ORDER BY a.id FOR UPDATE;
      SELECT a.balance INTO v_points FROM ledger_accounts a WHERE a.id = 'acc_pts_' || p_member_id;
      SELECT a.balance INTO v_held FROM ledger_accounts a WHERE a.id = 'acc_held_' || p_member_id;
      SELECT a.balance, a.floor INTO v_debt, v_floor FROM ledger_accounts a WHERE a.id = 'acc_debt_' || p_member_id;

      -- Earned points first pay off a points debt; the rest becomes a lot.
      v_repay := least(p_points, -v_debt);
      v_credited := p_points - v_repay;
      v_lot := CASE WHEN v_credited > 0 THEN p_lot_id END;
      IF v_credited > 0 AND p_lot_id IS NULL THEN
        RAISE EXCEPTION 'ledger_earn needs a lot id for % credited points', v_credited USING ERRCODE = '22023';
      END IF;

      INSERT INTO ledger_entries (id, kind, partner_id, member_id, ref_type, ref_id, contract_version_id, occurred_at, memo)
        VALUES (p_entry_id, 'earn', p_partner_id, p_member_id, p_ref_type, p_ref_id, p_contract_version_id, p_earned_at, p_memo);
      INSERT INTO ledger_postings (entry_id, account_id, asset, amount)
        SELECT p_entry_id, x.account_id, 'PTS', x.amount
          FROM (VALUES (1, 'acc_iss_' || p_partner_id, -p_points),
                       (2, 'acc_debt_' || p_member_id, v_repay),
                       (3, 'acc_pts_' || p_member_id, v_credited)) AS x(n, account_id, amount)
         WHERE x.amount <> 0
         ORDER BY x.n;
      IF v_lot IS NOT NULL THEN
        INSERT INTO ledger_lots (id, member_id, account_id, issuing_partner_id, contract_version_id, entry_id, earned_at, expires_at, amount, remaining)
          VALUES (v_lot, p_member_id, 'acc_pts_' || p_member_id, p_partner_id, p_contract_version_id, p_entry_id, p_earned_at, p_expires_at, v_credited, v_credited);
      END IF;
      RETURN QUERY SELECT v_points + v_credited, v_held, v_debt + v_repay, v_floor, v_repay, v_lot;
    END $$`);
}
