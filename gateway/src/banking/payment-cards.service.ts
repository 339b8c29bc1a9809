import type { Db, DbOrTrx, Trx } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";
import { newId } from "../infra/ids.ts";
import { pgErrorCode } from "../infra/db.ts";
import { recordEvent } from "../events/events.service.ts";
import { memberAccessErrors, type MemberAccess } from "../members/member-access.ts";
import { bankingErrors } from "./banking.errors.ts";

export interface LinkCardInput {
  member_id: string;
  card_token: string;
  bin: string;
  last_four: string;
  expiry_month: string;
}

interface CardRow {
  id: string;
  bank_partner_id: string;
  member_id: string;
  card_token: string;
  bin: string;
  last_four: string;
  expiry_month: string;
  status: "active" | "unlinked";
  linked_at: Date | string;
  unlinked_at: Date | string | null;
}

/** What a list shows: the card masked as BIN, padding and last four; the bank's token stays with the bank. */
export function paymentCardView(c: CardRow) {
  return {
    id: c.id,
    member_id: c.member_id,
    masked: `${c.bin}${"•".repeat(Math.max(0, 16 - c.bin.length - 4))}${c.last_four}`,
    bin: c.bin,
    last_four: c.last_four,
    expiry_month: c.expiry_month,
    status: c.status,
    linked_at: new Date(c.linked_at).toISOString(),
    unlinked_at: c.unlinked_at ? new Date(c.unlinked_at).toISOString() : null,
  };
}

/**
 * Payment cards a bank links to members. The member must be visible to the bank (it enrolled
 * them, or they used it); a card token is linked once per bank at a time.
 */
export function createPaymentCardsService(deps: { db: Db; clock: Clock; members: MemberAccess }) {
  const { clock, members } = deps;

  async function mustFind(conn: DbOrTrx, bankId: string, id: string): Promise<CardRow> {
    const c: CardRow | undefined = await conn("payment_cards").where({ id, bank_partner_id: bankId }).first();
    if (!c) throw bankingErrors.make("payment-card-not-found", `No payment card ${id} linked by this bank.`);
    return c;
  }

  return {
    async link(trx: Trx, bankId: string, input: LinkCardInput) {
      const { memberId } = await members.resolve(trx, bankId, { member_id: input.member_id });
      const now = clock.now();
      const row: CardRow = {
        id: newId("pmc", now.getTime()),
        bank_partner_id: bankId,
        member_id: memberId,
        card_token: input.card_token,
        bin: input.bin,
        last_four: input.last_four,
        expiry_month: input.expiry_month,
        status: "active",
        linked_at: now,
        unlinked_at: null,
      };
      try {
        await trx.transaction(async (sp) => {
          await sp("payment_cards").insert(row);
        });
      } catch (err) {
        if (pgErrorCode(err) === "23505") throw bankingErrors.make("payment-card-already-linked", "This card token is already linked by this bank; unlink it first.");
        throw err;
      }
      await recordEvent(trx, { type: "payment_card.linked", partnerId: bankId, occurredAt: now, data: { payment_card_id: row.id, member_id: memberId } });
      return paymentCardView(row);
    },

    async unlink(trx: Trx, bankId: string, id: string) {
      const c = await mustFind(trx, bankId, id);
      if (c.status === "unlinked") return paymentCardView(c);
      const now = clock.now();
      await trx("payment_cards").where({ id }).update({ status: "unlinked", unlinked_at: now });
      await recordEvent(trx, { type: "payment_card.unlinked", partnerId: bankId, occurredAt: now, data: { payment_card_id: id, member_id: c.member_id } });
      return paymentCardView({ ...c, status: "unlinked", unlinked_at: now });
    },

    async list(db: Db, bankId: string, memberId: string) {
      if (!(await members.canSee(db, bankId, memberId))) throw memberAccessErrors.make("member-not-found", `No member ${memberId}.`);
      const rows: CardRow[] = await db("payment_cards").where({ member_id: memberId, bank_partner_id: bankId }).orderBy("id").select("*");
      return rows.map(paymentCardView);
    },
  };
}

export type PaymentCardsService = ReturnType<typeof createPaymentCardsService>;
