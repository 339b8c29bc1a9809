import type { Db, Trx } from "../infra/db.ts";
import type { Ledger } from "../ledger/ledger.service.ts";
import type { AccountKind, EntryRef, NewEntry } from "../ledger/ledger.types.ts";

/**
 * The money side of banking in the ledger: cashback and round-up accounts of members, and the
 * partners' and banks' money accounts, each in one currency, amounts in minor units. Sign: a
 * balance is what the hub owes the holder (positive) or the holder owes the hub (negative); every
 * entry sums to zero per currency, so the money of the network sums to zero like the points do.
 *
 * The accounts are opened through the ledger (`ledger.openAccounts`, idempotent) before the first
 * posting to them; nothing here writes a ledger table.
 */
export const moneyAccounts = {
  cashback: (memberId: string, currency: string) => `acc_cb_${memberId}_${currency}`,
  roundup: (memberId: string, currency: string) => `acc_ru_${memberId}_${currency}`,
  /** What a partner owes the hub: cashback and round-up matches it funds. */
  receivable: (partnerId: string, currency: string) => `acc_rcv_${partnerId}_${currency}`,
  /** What the hub owes a bank: cashback it paid out and matches it credited for the hub. */
  payable: (partnerId: string, currency: string) => `acc_pay_${partnerId}_${currency}`,
  /** The members' money held at a bank (round-up savings it moved). */
  heldAtBank: (partnerId: string, currency: string) => `acc_fund_${partnerId}_${currency}`,
  /** The operator's own share of cashback it funds (the contract's cashback_funding_bps below 100%). */
  operator: (currency: string) => `acc_opfund_${currency}`,
};

type Spec = { id: string; kind: AccountKind; memberId: string | null; partnerId: string | null; maintained: boolean };

export interface CashbackInput {
  memberId: string;
  partnerId: string;
  currency: string;
  /** Credited (> 0) or clawed back (< 0). */
  amount: bigint;
  fundingBps: number;
  occurredAt: Date;
  ref: EntryRef;
  contractVersionId: string | null;
}

export function createMoneyLedger(deps: { ledger: Ledger }) {
  const { ledger } = deps;

  const open = (trx: Trx, currency: string, specs: Spec[]) => ledger.openAccounts(trx, specs.map((s) => ({ ...s, asset: currency })));

  const member = (kind: "member_cashback" | "member_roundup", memberId: string, currency: string): Spec => ({
    id: kind === "member_cashback" ? moneyAccounts.cashback(memberId, currency) : moneyAccounts.roundup(memberId, currency),
    kind,
    memberId,
    partnerId: null,
    maintained: true,
  });
  const partner = (kind: "partner_receivable" | "partner_payable" | "funding", partnerId: string, currency: string): Spec => ({
    id: kind === "partner_receivable" ? moneyAccounts.receivable(partnerId, currency) : kind === "partner_payable" ? moneyAccounts.payable(partnerId, currency) : moneyAccounts.heldAtBank(partnerId, currency),
    kind,
    memberId: null,
    partnerId,
    maintained: false,
  });

  function cashbackEntry(input: CashbackInput): NewEntry {
    const { memberId, partnerId, currency } = input;
    const abs = input.amount < 0n ? -input.amount : input.amount;
    const sign = input.amount < 0n ? -1n : 1n;
    // Rule: the merchant's share rounds down; the operator's is the remainder.
    const merchant = (abs * BigInt(input.fundingBps)) / 10000n;
    const operator = abs - merchant;
    return {
      kind: input.amount > 0n ? "earn" : "refund",
      partnerId,
      memberId,
      ref: input.ref,
      contractVersionId: input.contractVersionId,
      occurredAt: input.occurredAt,
      memo: { money: "cashback", merchant_share: (sign * merchant).toString(), operator_share: (sign * operator).toString() },
      postings: [
        { accountId: moneyAccounts.cashback(memberId, currency), asset: currency, amount: input.amount },
        { accountId: moneyAccounts.receivable(partnerId, currency), asset: currency, amount: -sign * merchant },
        { accountId: moneyAccounts.operator(currency), asset: currency, amount: -sign * operator },
      ],
    };
  }

  /** Many purchases' cashback in one posting call (a batch of card events); ids in input order, null for 0. */
  async function cashbackMany(trx: Trx, inputs: CashbackInput[]): Promise<Array<string | null>> {
    const moving = inputs.filter((i) => i.amount !== 0n);
    if (moving.length === 0) return inputs.map(() => null);
    const byCurrency = new Map<string, Spec[]>();
    for (const i of moving) {
      const specs = byCurrency.get(i.currency) ?? [{ id: moneyAccounts.operator(i.currency), kind: "funding", memberId: null, partnerId: null, maintained: false }];
      specs.push(member("member_cashback", i.memberId, i.currency), partner("partner_receivable", i.partnerId, i.currency));
      byCurrency.set(i.currency, specs);
    }
    for (const [currency, specs] of byCurrency) await open(trx, currency, specs);
    const ids = await ledger.postMany(trx, moving.map(cashbackEntry));
    let k = 0;
    return inputs.map((i) => (i.amount === 0n ? null : ids[k++]!));
  }

  return {
    /**
     * Opens the network's side of the money accounts (partners' receivable and payable, the
     * operator's funding) ahead of a large batch, in a transaction of their own: lanes that open the
     * same shared account for the first time at once would otherwise wait on each other's insert.
     */
    async openNetwork(trx: Trx, partnerIds: string[], currencies: string[]): Promise<void> {
      for (const c of currencies) {
        await open(trx, c, [
          ...partnerIds.flatMap((p) => [partner("partner_receivable", p, c), partner("partner_payable", p, c)]),
          { id: moneyAccounts.operator(c), kind: "funding", memberId: null, partnerId: null, maintained: false },
        ]);
      }
    },

    /**
     * Credits (amount > 0) or claws back (amount < 0) a purchase's cashback: the merchant funds its
     * share floor(|amount| × funding_bps / 10000), the operator the rest.
     */
    async cashback(trx: Trx, input: CashbackInput): Promise<string | null> {
      const [id] = await cashbackMany(trx, [input]);
      return id ?? null;
    },

    cashbackMany,

    /** A payout instruction: the cashback leaves the member's account; the hub owes the bank that pays it. */
    async payout(trx: Trx, input: { memberId: string; bankId: string; currency: string; amount: bigint; occurredAt: Date; ref: EntryRef }): Promise<string> {
      await open(trx, input.currency, [member("member_cashback", input.memberId, input.currency), partner("partner_payable", input.bankId, input.currency)]);
      return ledger.post(trx, {
        kind: "adjust",
        partnerId: input.bankId,
        memberId: input.memberId,
        ref: input.ref,
        occurredAt: input.occurredAt,
        memo: { money: "cashback_payout" },
        postings: [
          { accountId: moneyAccounts.cashback(input.memberId, input.currency), asset: input.currency, amount: -input.amount },
          { accountId: moneyAccounts.payable(input.bankId, input.currency), asset: input.currency, amount: input.amount },
        ],
      });
    },

    /**
     * What a bank confirmed it moved into the member's savings: the round-up (the member's own money,
     * now held at the bank) and the partners' matches (owed to the hub by each partner, owed by the
     * hub to the bank that credited them).
     */
    async roundup(
      trx: Trx,
      input: { memberId: string; bankId: string; currency: string; roundup: bigint; matches: Array<{ partnerId: string; amount: bigint }>; occurredAt: Date; ref: EntryRef },
    ): Promise<string | null> {
      const matchTotal = input.matches.reduce((s, m) => s + m.amount, 0n);
      if (input.roundup + matchTotal === 0n) return null;
      const c = input.currency;
      await open(trx, c, [
        member("member_roundup", input.memberId, c),
        partner("funding", input.bankId, c),
        partner("partner_payable", input.bankId, c),
        ...input.matches.map((m) => partner("partner_receivable", m.partnerId, c)),
      ]);
      return ledger.post(trx, {
        kind: "adjust",
        partnerId: input.bankId,
        memberId: input.memberId,
        ref: input.ref,
        occurredAt: input.occurredAt,
        memo: { money: "roundup_sweep", roundup: input.roundup.toString(), match: matchTotal.toString() },
        postings: [
          { accountId: moneyAccounts.roundup(input.memberId, c), asset: c, amount: input.roundup + matchTotal },
          { accountId: moneyAccounts.heldAtBank(input.bankId, c), asset: c, amount: -(input.roundup + matchTotal) },
          { accountId: moneyAccounts.payable(input.bankId, c), asset: c, amount: matchTotal },
          ...input.matches.map((m) => ({ accountId: moneyAccounts.receivable(m.partnerId, c), asset: c, amount: -m.amount })),
        ],
      });
    },

    async balance(conn: Trx | Db, accountId: string): Promise<bigint> {
      return ledger.accountBalance(conn, accountId);
    },

    /** Serialises the payouts of one member's cashback account: locks it for the transaction. */
    async lockCashback(trx: Trx, memberId: string, currency: string): Promise<void> {
      await ledger.lockAccounts(trx, [moneyAccounts.cashback(memberId, currency)]);
    },
  };
}

export type MoneyLedger = ReturnType<typeof createMoneyLedger>;
