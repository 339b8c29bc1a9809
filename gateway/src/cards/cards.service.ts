import type { Db, DbOrTrx, Trx } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";
import type { Logger } from "../infra/logger.ts";
import { newId } from "../infra/ids.ts";
import { recordEvent } from "../events/events.service.ts";
import { toIso } from "../partners/audit.service.ts";
import { assertPartnerActive } from "../partners/partners.service.ts";
import { createMemberAccess, linkMember, type CardResolver, type MemberAccess } from "../members/member-access.ts";
import { memberErrors } from "../members/members.errors.ts";
import { readProgramme } from "../members/programme.service.ts";
import { cardErrors } from "./cards.errors.ts";
import { generateCardNumber } from "./luhn.ts";

export type CardStatus = "active" | "blocked" | "lost" | "replaced" | "expired";

/** Moves a partner may ask for; `replaced` comes only with a replacement, `expired` only with time. */
const CARD_TRANSITIONS: Record<CardStatus, CardStatus[]> = {
  active: ["blocked", "lost"],
  blocked: ["active", "lost"],
  lost: [],
  replaced: [],
  expired: [],
};

const REPLACEABLE: CardStatus[] = ["active", "blocked", "lost", "expired"];
const VALIDITY_YEARS = 3;

interface CardRow {
  id: string;
  member_id: string;
  partner_id: string;
  number: string;
  form: "virtual" | "physical";
  status: CardStatus;
  issued_at: Date | string;
  expires_at: Date | string;
  status_changed_at: Date | string | null;
  status_reason: string | null;
  replaces_card_id: string | null;
  replaced_by_card_id: string | null;
}

/** An active card past its date is expired, whether or not a job has written that down yet. */
function effectiveStatus(c: CardRow, now: Date): CardStatus {
  return c.status === "active" && new Date(c.expires_at as string).getTime() <= now.getTime() ? "expired" : c.status;
}

function cardView(c: CardRow, now: Date, opts: { withNumber?: boolean } = {}) {
  return {
    id: c.id,
    member_id: c.member_id,
    partner_id: c.partner_id,
    ...(opts.withNumber ? { number: c.number } : {}),
    last4: c.number.slice(-4),
    form: c.form,
    status: effectiveStatus(c, now),
    issued_at: toIso(c.issued_at),
    expires_at: toIso(c.expires_at),
    status_changed_at: c.status_changed_at ? toIso(c.status_changed_at) : null,
    replaces_card_id: c.replaces_card_id,
    replaced_by_card_id: c.replaced_by_card_id,
  };
}

function refuseUnusable(c: CardRow, now: Date): never {
  const s = effectiveStatus(c, now);
  const code = s === "lost" ? "card-lost" : s === "replaced" ? "card-replaced" : s === "expired" ? "card-expired" : "card-blocked";
  throw cardErrors.make(code, `Card ending ${c.number.slice(-4)} is ${s}; earn and burn with it are refused.`, { card_id: c.id, card_status: s });
}

/**
 * The card resolver for member access: an active, unexpired card gives its member; a blocked,
 * lost, replaced or expired card is refused with 422 (`card-blocked`, `card-lost`, …); an unknown
 * number gives null (the caller answers 404).
 */
export function createCardResolver(deps: { clock: Clock }): CardResolver {
  return async (trx, cardNumber) => {
    const c = await trx<CardRow>("loyalty_cards").where({ number: cardNumber }).first();
    if (!c) return null;
    if (effectiveStatus(c, deps.clock.now()) !== "active") refuseUnusable(c, deps.clock.now());
    return { memberId: c.member_id };
  };
}

/** Member access that also resolves co-branded card numbers: what earn and burn should use. */
export function createNetworkMemberAccess(deps: { clock: Clock }): MemberAccess {
  return createMemberAccess({ resolveCard: createCardResolver(deps) });
}

export function createCardsService(deps: { db: Db; clock: Clock; log: Logger }) {
  const { db, clock } = deps;
  const access = createNetworkMemberAccess({ clock });

  async function visibleCard(trx: DbOrTrx, partnerId: string, cardId: string, forUpdate = false): Promise<CardRow> {
    const q = trx<CardRow>("loyalty_cards").where({ id: cardId }).first();
    if (forUpdate) void q.forUpdate();
    const c = await q;
    if (!c || !(await access.canSee(trx, partnerId, c.member_id))) throw cardErrors.make("card-not-found", `No card ${cardId}.`);
    return c;
  }

  /** Blocking and replacing are the issuer's business: the co-brand answers for its cards. */
  function mustBeIssuer(c: CardRow, partnerId: string): void {
    if (c.partner_id !== partnerId) throw cardErrors.make("not-card-issuer", `Card ${c.id} is co-branded with another partner; ask the member to contact it.`, { card_id: c.id });
  }

  async function activeMember(trx: DbOrTrx, partnerId: string, memberId: string) {
    if (!(await access.canSee(trx, partnerId, memberId))) throw memberErrors.make("member-not-found", `No member ${memberId}.`);
    const m = await trx("members").where({ id: memberId }).forUpdate().first("status");
    if (!m) throw memberErrors.make("member-not-found", `No member ${memberId}.`);
    if (m.status !== "active") throw memberErrors.make("member-erased", `Member ${memberId} is ${m.status}.`);
  }

  /** Inserts a card under a fresh random number; a collision (one in 10^11) just draws again. */
  async function insertCard(trx: Trx, row: Omit<CardRow, "number">): Promise<CardRow> {
    const { card_prefix } = await readProgramme(trx);
    for (let attempt = 0; attempt < 5; attempt++) {
      const number = generateCardNumber(card_prefix);
      await trx.raw("SAVEPOINT card_number");
      try {
        await trx("loyalty_cards").insert({ ...row, number });
        await trx.raw("RELEASE SAVEPOINT card_number");
        return { ...row, number };
      } catch (err) {
        await trx.raw("ROLLBACK TO SAVEPOINT card_number");
        if ((err as { code?: string }).code !== "23505") throw err;
      }
    }
    throw cardErrors.make("card-number-collision", "No free card number after 5 draws.");
  }

  return {
    async issue(partnerId: string, memberId: string, input: { form: "virtual" | "physical" }) {
      return db.transaction(async (trx) => {
        await assertPartnerActive(trx, partnerId);
        await activeMember(trx, partnerId, memberId);
        const now = clock.now();
        const expires = new Date(now);
        expires.setUTCFullYear(expires.getUTCFullYear() + VALIDITY_YEARS);
        const card = await insertCard(trx, {
          id: newId("crd", now.getTime()),
          member_id: memberId,
          partner_id: partnerId,
          form: input.form,
          status: "active",
          issued_at: now,
          expires_at: expires,
          status_changed_at: null,
          status_reason: null,
          replaces_card_id: null,
          replaced_by_card_id: null,
        });
        await recordEvent(trx, { type: "card.issued", partnerId, occurredAt: now, data: { card_id: card.id, member_id: memberId } });
        return cardView(card, now, { withNumber: true });
      });
    },

    async listForMember(partnerId: string, memberId: string) {
      if (!(await access.canSee(db, partnerId, memberId))) throw memberErrors.make("member-not-found", `No member ${memberId}.`);
      const now = clock.now();
      return (await db<CardRow>("loyalty_cards").where({ member_id: memberId }).orderBy("issued_at")).map((c) => cardView(c, now));
    },

    async get(partnerId: string, cardId: string) {
      return cardView(await visibleCard(db, partnerId, cardId), clock.now());
    },

    /** Blocks, unblocks, or reports a card lost. A lost card never works again; replace it. */
    async setStatus(partnerId: string, cardId: string, input: { status: "active" | "blocked" | "lost"; reason?: string }) {
      return db.transaction(async (trx) => {
        const c = await visibleCard(trx, partnerId, cardId, true);
        mustBeIssuer(c, partnerId);
        const now = clock.now();
        const from = effectiveStatus(c, now);
        if (!CARD_TRANSITIONS[from].includes(input.status)) {
          throw cardErrors.make("invalid-card-transition", `A ${from} card cannot become ${input.status}.`, { card_status: from, allowed: CARD_TRANSITIONS[from] });
        }
        await trx("loyalty_cards").where({ id: cardId }).update({ status: input.status, status_changed_at: now, status_reason: input.reason ?? null });
        if (input.status !== "active") {
          await recordEvent(trx, { type: "card.blocked", partnerId: c.partner_id, occurredAt: now, data: { card_id: c.id, member_id: c.member_id, status: input.status } });
        }
        return cardView({ ...c, status: input.status, status_changed_at: now }, now);
      });
    },

    /**
     * Replaces a card: the new card inherits the member and the co-brand; the old one is marked
     * `replaced` in the same transaction, so it stops working the moment the new one exists.
     */
    async replace(partnerId: string, cardId: string, input: { form?: "virtual" | "physical" }) {
      return db.transaction(async (trx) => {
        const old = await visibleCard(trx, partnerId, cardId, true);
        mustBeIssuer(old, partnerId);
        const now = clock.now();
        const from = effectiveStatus(old, now);
        if (!REPLACEABLE.includes(from)) {
          throw cardErrors.make("invalid-card-transition", `A ${from} card cannot be replaced.`, { card_status: from, allowed: [] });
        }
        await activeMember(trx, partnerId, old.member_id);
        const expires = new Date(now);
        expires.setUTCFullYear(expires.getUTCFullYear() + VALIDITY_YEARS);
        const card = await insertCard(trx, {
          id: newId("crd", now.getTime()),
          member_id: old.member_id,
          partner_id: old.partner_id,
          form: input.form ?? old.form,
          status: "active",
          issued_at: now,
          expires_at: expires,
          status_changed_at: null,
          status_reason: null,
          replaces_card_id: old.id,
          replaced_by_card_id: null,
        });
        await trx("loyalty_cards").where({ id: old.id }).update({ status: "replaced", status_changed_at: now, replaced_by_card_id: card.id });
        await recordEvent(trx, { type: "card.replaced", partnerId: old.partner_id, occurredAt: now, data: { card_id: card.id, replaces_card_id: old.id, member_id: old.member_id } });
        return {
          card: cardView(card, now, { withNumber: true }),
          replaced_card: cardView({ ...old, status: "replaced", status_changed_at: now, replaced_by_card_id: card.id }, now),
        };
      });
    },

    /**
     * Finds the member behind a card presented at the partner. An active card links the member to
     * the partner (they used it), as any card presentation does; a card that does not work is
     * refused with 422 naming why; an unknown number is 404.
     */
    async lookup(partnerId: string, cardNumber: string) {
      return db.transaction(async (trx) => {
        await assertPartnerActive(trx, partnerId);
        const c = await trx<CardRow>("loyalty_cards").where({ number: cardNumber }).first();
        if (!c) throw cardErrors.make("card-not-found", "No card with that number.");
        const now = clock.now();
        if (effectiveStatus(c, now) !== "active") refuseUnusable(c, now);
        const { memberId } = await access.resolve(trx, partnerId, { card_number: cardNumber });
        await linkMember(trx, memberId, partnerId, "used");
        return { member_id: memberId, card: cardView(c, now) };
      });
    },
  };
}

export type CardsService = ReturnType<typeof createCardsService>;
