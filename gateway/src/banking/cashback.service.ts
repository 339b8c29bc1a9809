import type { Db, Trx } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";
import { newId } from "../infra/ids.ts";
import { recordEvent } from "../events/events.service.ts";
import type { MoneyLedger } from "./money-ledger.ts";
import { moneyAccounts } from "./money-ledger.ts";

interface PayoutRow {
  id: string;
  member_id: string;
  bank_partner_id: string;
  currency: string;
  amount_minor: bigint;
  business_day: string | Date;
  ledger_entry_id: string;
  instructed_at: Date | string;
}

const dayText = (d: string | Date) => (typeof d === "string" ? d.slice(0, 10) : d.toISOString().slice(0, 10));

export function payoutView(p: PayoutRow) {
  return {
    id: p.id,
    member_id: p.member_id,
    currency: p.currency,
    amount_minor: Number(p.amount_minor),
    business_day: dayText(p.business_day),
    instructed_at: new Date(p.instructed_at).toISOString(),
  };
}

/**
 * The cashback account. A purchase's cashback is booked in the ledger when it clears, stays pending
 * through the offer's return period (counted from the purchase), then becomes available; what is
 * available through one bank is paid out through that bank once it reaches the threshold. The
 * ledger holds the money (one account per member and currency); which part is pending, and through
 * which bank, is read from the purchases and payouts here:
 *
 *   available(member, bank, currency) = Σ cashback of the bank's purchases past their return period
 *                                       − Σ payouts instructed through the bank
 *   ledger balance = Σ over banks of (available + pending)
 */
export function createCashbackService(deps: { db: Db; clock: Clock; money: MoneyLedger; payoutThresholdMinor: bigint }) {
  const { db, clock, money } = deps;

  async function availableByBank(conn: Db | Trx, memberId: string, currency: string, now: Date) {
    const rows: Array<{ bank: string; released: string | null; pending: string | null }> = await conn("card_purchases")
      .where({ member_id: memberId, currency })
      .andWhere("booked_cashback_minor", ">", 0)
      .groupBy("bank_partner_id")
      .select(
        "bank_partner_id as bank",
        conn.raw("sum(booked_cashback_minor) FILTER (WHERE cashback_available_at <= ?)::bigint AS released", [now]),
        conn.raw("sum(booked_cashback_minor) FILTER (WHERE cashback_available_at > ?)::bigint AS pending", [now]),
      );
    const paid: Array<{ bank: string; s: string }> = await conn("cashback_payouts")
      .where({ member_id: memberId, currency })
      .groupBy("bank_partner_id")
      .select("bank_partner_id as bank", conn.raw("sum(amount_minor)::bigint AS s"));
    const paidBy = new Map(paid.map((p) => [p.bank, BigInt(p.s)]));
    const banks = new Set([...rows.map((r) => r.bank), ...paidBy.keys()]);
    return [...banks].sort().map((bank) => {
      const r = rows.find((x) => x.bank === bank);
      return { bank, available: BigInt(r?.released ?? 0) - (paidBy.get(bank) ?? 0n), pending: BigInt(r?.pending ?? 0) };
    });
  }

  return {
    availableByBank,

    /** The member's cashback in one currency: booked balance, pending, available, and still authorised. */
    async account(memberId: string, currency: string, now: Date = clock.now()) {
      const byBank = await availableByBank(db, memberId, currency, now);
      const authorised: { s: string | null } | undefined = await db("card_purchases")
        .where({ member_id: memberId, currency, status: "authorized" })
        .first(db.raw("sum(pending_cashback_minor)::bigint AS s"));
      return {
        currency,
        balance_minor: Number(await money.balance(db, moneyAccounts.cashback(memberId, currency))),
        pending_minor: Number(byBank.reduce((s, b) => s + b.pending, 0n)),
        available_minor: Number(byBank.reduce((s, b) => s + b.available, 0n)),
        authorized_minor: Number(authorised?.s ?? 0),
        paid_out_minor: Number(
          ((await db("cashback_payouts").where({ member_id: memberId, currency }).first(db.raw("sum(amount_minor)::bigint AS s"))) as { s: string | null } | undefined)?.s ?? 0,
        ),
      };
    },

    /**
     * The daily run: announces the cashback whose return period ended (`cashback.available`, once
     * per purchase), then instructs a payout for every member, bank and currency whose available
     * cashback reached the threshold — at most one per business day (a rerun adds nothing).
     */
    async releaseAndPay(day: string, now: Date = clock.now()): Promise<{ released: number; payouts: number }> {
      let released = 0;
      const touched = new Set<string>();
      for (;;) {
        const batch = await db.transaction(async (trx) => {
          const rows: Array<{ id: string; member_id: string; bank_partner_id: string; currency: string; booked_cashback_minor: bigint; purchase_ref: string }> = await trx("card_purchases")
            .whereNull("cashback_released_at")
            .andWhere("booked_cashback_minor", ">", 0)
            .andWhere("cashback_available_at", "<=", now)
            .orderBy("id")
            .limit(500)
            .forUpdate()
            .skipLocked()
            .select("id", "member_id", "bank_partner_id", "currency", "booked_cashback_minor", "purchase_ref");
          if (rows.length === 0) return 0;
          await trx("card_purchases").whereIn("id", rows.map((r) => r.id)).update({ cashback_released_at: now });
          for (const r of rows) {
            touched.add(`${r.member_id}|${r.bank_partner_id}|${r.currency}`);
            await recordEvent(trx, {
              type: "cashback.available",
              partnerId: r.bank_partner_id,
              occurredAt: now,
              data: { card_purchase_id: r.id, purchase_id: r.purchase_ref, member_id: r.member_id, currency: r.currency, amount_minor: Number(r.booked_cashback_minor) },
            });
          }
          return rows.length;
        });
        released += batch;
        if (batch === 0) break;
      }
      // Members whose cashback became available earlier but stayed under the threshold are
      // reconsidered too: any member with released cashback not yet paid out.
      const candidates: Array<{ member_id: string; bank_partner_id: string; currency: string }> = await db("card_purchases")
        .whereNotNull("cashback_released_at")
        .andWhere("booked_cashback_minor", ">", 0)
        .distinct("member_id", "bank_partner_id", "currency");
      for (const c of candidates) touched.add(`${c.member_id}|${c.bank_partner_id}|${c.currency}`);

      let payouts = 0;
      for (const key of [...touched].sort()) {
        const [memberId, bankId, currency] = key.split("|") as [string, string, string];
        const made = await db.transaction(async (trx) => {
          // Serialise payouts of one member's cashback account: lock it first.
          await money.lockCashback(trx, memberId, currency);
          const mine = (await availableByBank(trx, memberId, currency, now)).find((b) => b.bank === bankId);
          if (!mine || mine.available < deps.payoutThresholdMinor || mine.available <= 0n) return false;
          const id = newId("pay", now.getTime());
          const ins = (
            await trx.raw(
              `INSERT INTO cashback_payouts (id, member_id, bank_partner_id, currency, amount_minor, business_day, ledger_entry_id, instructed_at)
               VALUES (?, ?, ?, ?, ?, ?, 'pending', ?) ON CONFLICT (member_id, bank_partner_id, currency, business_day) DO NOTHING RETURNING id`,
              [id, memberId, bankId, currency, mine.available.toString(), day, now],
            )
          ).rows as unknown[];
          if (ins.length === 0) return false;
          const entryId = await money.payout(trx, { memberId, bankId, currency, amount: mine.available, occurredAt: now, ref: { type: "cashback_payout", id } });
          await trx("cashback_payouts").where({ id }).update({ ledger_entry_id: entryId });
          await recordEvent(trx, {
            type: "payout.instructed",
            partnerId: bankId,
            occurredAt: now,
            data: { payout_id: id, member_id: memberId, currency, amount_minor: Number(mine.available), business_day: day },
          });
          return true;
        });
        if (made) payouts++;
      }
      return { released, payouts };
    },

    async listPayouts(bankId: string, day: string) {
      const rows: PayoutRow[] = await db("cashback_payouts").where({ bank_partner_id: bankId, business_day: day }).orderBy("id").select("*");
      return rows.map(payoutView);
    },
  };
}

export type CashbackService = ReturnType<typeof createCashbackService>;
