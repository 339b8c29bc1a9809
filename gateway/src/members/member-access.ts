import type { DbOrTrx } from "../infra/db.ts";
import { defineErrors, validationError } from "../http/problem.ts";

export const memberAccessErrors = defineErrors({
  "member-not-found": { status: 404, title: "Member not found" },
  "member-not-active": { status: 422, title: "The member's account is not active" },
});

export interface MemberRef {
  member_id?: string;
  /** A co-branded loyalty card number presented at the partner (resolved by the cards feature). */
  card_number?: string;
}

/**
 * Resolves a card number to its member; set by the cards feature. Null: no such card. A card that
 * exists but does not work (blocked, lost, replaced, expired) throws a 422 problem naming why.
 * Earn and burn get a ready access with it from `createNetworkMemberAccess({ clock })` in
 * `cards/cards.service.ts`.
 */
export type CardResolver = (trx: DbOrTrx, cardNumber: string) => Promise<{ memberId: string } | null>;

/**
 * The one rule of member visibility: a partner reaches a member it enrolled or that has used it,
 * and any member who presents a card there (which links them). Anything else is 404 — never a hint
 * that the member exists.
 */
export function createMemberAccess(deps: { resolveCard?: CardResolver } = {}) {
  return {
    async resolve(trx: DbOrTrx, partnerId: string, ref: MemberRef, opts: { link?: boolean } = {}): Promise<{ memberId: string }> {
      let memberId: string | undefined;
      if (ref.card_number !== undefined) {
        const card = deps.resolveCard ? await deps.resolveCard(trx, ref.card_number) : null;
        if (!card) throw memberAccessErrors.make("member-not-found", "No active card with that number.");
        // Both named: they must agree — the card is never silently preferred over a member_id.
        if (ref.member_id !== undefined && ref.member_id !== card.memberId) {
          throw validationError([{ field: "body/member_id", reason: "is not the member of card_number; send one of them" }]);
        }
        memberId = card.memberId;
      } else if (ref.member_id !== undefined) {
        memberId = ref.member_id;
      }
      if (!memberId) throw validationError([{ field: "body/member_id", reason: "is required (or card_number)" }]);
      // One query: the member, whether it is in the partner's network (sandbox or live) — a sandbox
      // partner never reaches a live member, nor a live partner a sandbox one — and, named by
      // member_id, whether the partner knows it (a link); a card is proof enough.
      const found = await trx.raw<{ rows: Array<{ id: string; status: string; same_network: boolean; linked: boolean }> }>(
        `SELECT m.id, m.status, (m.sandbox = p.sandbox) AS same_network,
                EXISTS (SELECT 1 FROM member_partner_links l WHERE l.member_id = m.id AND l.partner_id = p.id) AS linked
           FROM members m JOIN partners p ON p.id = ? WHERE m.id = ?`,
        [partnerId, memberId],
      );
      const member = found.rows[0];
      const byCard = ref.card_number !== undefined;
      if (!member || !member.same_network || (!byCard && !member.linked)) throw memberAccessErrors.make("member-not-found", `No member ${memberId}.`);
      if (member.status !== "active") throw memberAccessErrors.make("member-not-active", `Member ${memberId} is ${member.status}.`);
      if (opts.link) await linkMember(trx, memberId, partnerId, "used");
      return { memberId };
    },
    /** True when the partner may see this member. */
    async canSee(trx: DbOrTrx, partnerId: string, memberId: string): Promise<boolean> {
      return Boolean(await trx("member_partner_links").where({ member_id: memberId, partner_id: partnerId }).first("member_id"));
    },
  };
}

export type MemberAccess = ReturnType<typeof createMemberAccess>;

export async function linkMember(trx: DbOrTrx, memberId: string, partnerId: string, relation: "enrolled" | "used"): Promise<void> {
  await trx("member_partner_links").insert({ member_id: memberId, partner_id: partnerId, relation }).onConflict(["member_id", "partner_id"]).ignore();
}
