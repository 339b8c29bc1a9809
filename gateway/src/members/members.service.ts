import { randomInt } from "node:crypto";
import type { Db, DbOrTrx, Trx } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";
import type { Logger } from "../infra/logger.ts";
import { newId } from "../infra/ids.ts";
import { recordEvent } from "../events/events.service.ts";
import { assertPartnerActive } from "../partners/partners.service.ts";
import { writeAudit, toIso, type Actor } from "../partners/audit.service.ts";
import { memberErrors } from "./members.errors.ts";
import { linkMember, type CardResolver } from "./member-access.ts";
import { admissionRefusal, readProgramme, type AdmissionEvidence } from "./programme.service.ts";

export interface ConsentInput {
  purpose: string;
  version: string;
  state: "given" | "withdrawn";
  /** When the member gave or withdrew it; defaults to now. */
  occurred_at?: string;
}

export interface EnrolInput {
  customer_ref: string;
  email?: string;
  email_verified?: boolean;
  phone?: string;
  given_name?: string;
  family_name?: string;
  date_of_birth?: string;
  /** The referral code of the member who referred this one. */
  referral_code?: string;
  /** A co-branded card the person already holds: the strongest match there is. */
  card_number?: string;
  consents?: ConsentInput[];
  admission?: AdmissionEvidence;
}

export interface ProfilePatch {
  email?: string | null;
  email_verified?: boolean;
  phone?: string | null;
  given_name?: string | null;
  family_name?: string | null;
  date_of_birth?: string | null;
}

/** Who is asking: a partner sees only its members; the operator sees all. */
export type Viewer = { kind: "partner"; partnerId: string } | { kind: "admin" };

const CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ";

function referralCode(): string {
  let s = "";
  for (let i = 0; i < 8; i++) s += CODE_ALPHABET[randomInt(CODE_ALPHABET.length)];
  return s;
}

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string } | null)?.code === "23505";
}

/**
 * The month and day of a member's birthday, for birthday rules; null when unknown or erased. The
 * rules feature asks this instead of reading the personal data tables, and never stores the date.
 */
export async function memberBirthday(trx: DbOrTrx, memberId: string): Promise<{ month: number; day: number } | null> {
  const row = await trx("member_profiles as p").join("members as m", "m.id", "p.member_id").where("p.member_id", memberId).where("m.status", "active").first("p.date_of_birth");
  const dob = row?.date_of_birth as string | null | undefined;
  if (!dob) return null;
  const [, month, day] = dob.split("-").map(Number);
  return { month: month!, day: day! };
}

export function createMembersService(deps: { db: Db; clock: Clock; log: Logger; resolveCard?: CardResolver }) {
  const { db, clock } = deps;

  async function visibleMember(trx: DbOrTrx, viewer: Viewer, memberId: string, forUpdate = false) {
    if (viewer.kind === "partner") {
      const link = await trx("member_partner_links").where({ member_id: memberId, partner_id: viewer.partnerId }).first("member_id");
      if (!link) throw memberErrors.make("member-not-found", `No member ${memberId}.`);
    }
    const q = trx("members").where({ id: memberId }).first();
    if (forUpdate) void q.forUpdate();
    const m = await q;
    if (!m) throw memberErrors.make("member-not-found", `No member ${memberId}.`);
    return m;
  }

  async function memberView(trx: DbOrTrx, viewer: Viewer, m: Record<string, unknown>) {
    const id = m.id as string;
    const profile = await trx("member_profiles").where({ member_id: id }).first();
    const refs = await trx("member_partner_refs")
      .where({ member_id: id })
      .modify((b) => {
        if (viewer.kind === "partner") b.where("partner_id", viewer.partnerId);
      })
      .orderBy("created_at");
    const consents = await trx("member_consents").where({ member_id: id }).orderBy("id");
    return {
      id,
      status: m.status as string,
      enrolled_at: toIso(m.created_at),
      referral_code: (m.referral_code as string | null) ?? null,
      profile: profile
        ? {
            email: profile.email ?? null,
            email_verified: Boolean(profile.email_verified),
            phone: profile.phone ?? null,
            given_name: profile.given_name ?? null,
            family_name: profile.family_name ?? null,
            date_of_birth: profile.date_of_birth ?? null,
          }
        : null,
      customer_refs: refs.map((r: Record<string, unknown>) => ({ partner_id: r.partner_id as string, customer_ref: r.customer_ref as string })),
      consents: consents.map(consentView),
    };
  }

  async function insertConsents(trx: Trx, memberId: string, partnerId: string, consents: ConsentInput[]) {
    const now = clock.now();
    for (const c of consents) {
      await trx("member_consents").insert({ member_id: memberId, purpose: c.purpose, version: c.version, state: c.state, occurred_at: c.occurred_at ? new Date(c.occurred_at) : now, partner_id: partnerId, recorded_at: now });
    }
  }

  async function addCustomerRef(trx: Trx, memberId: string, partnerId: string, customerRef: string) {
    const taken = await trx("member_partner_refs").where({ partner_id: partnerId, customer_ref: customerRef }).first("member_id");
    if (taken) throw memberErrors.make("customer-reference-taken", `Customer reference ${customerRef} is enrolled as member ${taken.member_id}.`, { member_id: taken.member_id });
    const existing = await trx("member_partner_refs").where({ partner_id: partnerId, member_id: memberId }).first("customer_ref");
    if (existing) {
      throw memberErrors.make("already-enrolled", `Member ${memberId} is already enrolled through this partner under another customer reference.`, { member_id: memberId });
    }
    try {
      await trx("member_partner_refs").insert({ member_id: memberId, partner_id: partnerId, customer_ref: customerRef, created_at: clock.now() });
    } catch (err) {
      // A concurrent enrolment of the same reference won the race.
      if (isUniqueViolation(err)) throw memberErrors.make("customer-reference-taken", `Customer reference ${customerRef} is already enrolled.`);
      throw err;
    }
  }

  /** The operator's matching rule: a card the person holds, else (if configured) a verified email. */
  async function findExisting(trx: Trx, input: EnrolInput, rule: "none" | "verified_email", sandbox: boolean): Promise<{ memberId: string; matchedBy: "card" | "verified_email" } | null> {
    if (input.card_number !== undefined && deps.resolveCard) {
      const card = await deps.resolveCard(trx, input.card_number);
      // A card of the other network (sandbox or live) is not this network's member.
      if (card && (await trx("members").where({ id: card.memberId, sandbox }).first("id"))) return { memberId: card.memberId, matchedBy: "card" };
    }
    if (rule === "verified_email" && input.email && input.email_verified === true) {
      const hit = await trx("member_profiles as p")
        .join("members as m", "m.id", "p.member_id")
        .where("m.status", "active")
        .where("m.sandbox", sandbox)
        .where("p.email_verified", true)
        .whereRaw("lower(p.email) = lower(?)", [input.email])
        .orderBy("m.created_at")
        .first("m.id");
      if (hit) return { memberId: hit.id as string, matchedBy: "verified_email" };
    }
    return null;
  }

  return {
    /**
     * Enrols a person through a partner. When the operator's matching rule recognises an existing
     * member, that member is linked to this partner — never merged: their profile is not changed,
     * and the answer says so (`outcome: linked_existing`, HTTP 200). Otherwise a new member (201).
     */
    async enrol(partnerId: string, input: EnrolInput) {
      return db.transaction(async (trx) => {
        await assertPartnerActive(trx, partnerId);
        // Members belong to the network of the partner that enrols them: sandbox or live, never both.
        const { sandbox } = (await trx("partners").where({ id: partnerId }).first("sandbox")) as { sandbox: boolean };
        const programme = await readProgramme(trx);
        // Serialise enrolments of one verified email, so two partners enrolling the same person at
        // once make one member and one link, not two members.
        if (input.email) await trx.raw("SELECT pg_advisory_xact_lock(hashtext(?))", [`email:${input.email.toLowerCase()}`]);
        const existing = await findExisting(trx, input, programme.matching_rule, sandbox);
        const now = clock.now();
        if (existing) {
          await addCustomerRef(trx, existing.memberId, partnerId, input.customer_ref);
          await linkMember(trx, existing.memberId, partnerId, "enrolled");
          // A member who had only used this partner is now enrolled through it as well.
          await trx("member_partner_links").where({ member_id: existing.memberId, partner_id: partnerId }).update({ relation: "enrolled" });
          await insertConsents(trx, existing.memberId, partnerId, input.consents ?? []);
          const m = await trx("members").where({ id: existing.memberId }).first();
          return { created: false, matched_by: existing.matchedBy, member: await memberView(trx, { kind: "partner", partnerId }, m) };
        }
        const refusal = admissionRefusal(programme, input.admission);
        if (refusal) throw memberErrors.make("admission-criteria-not-met", refusal, { admission: programme.admission });
        let referredBy: string | null = null;
        if (input.referral_code !== undefined) {
          const referrer = await trx("members").where({ referral_code: input.referral_code.toUpperCase(), status: "active", sandbox }).first("id");
          if (!referrer) throw memberErrors.make("unknown-referral-code", `No active member holds referral code ${input.referral_code}.`);
          referredBy = referrer.id as string;
        }
        const id = newId("mem", now.getTime());
        await trx("members").insert({ id, status: "active", enrolled_by_partner_id: partnerId, created_at: now, referral_code: referralCode(), referred_by_member_id: referredBy, sandbox });
        await trx("member_profiles").insert({
          member_id: id,
          email: input.email ?? null,
          email_verified: input.email ? input.email_verified === true : false,
          phone: input.phone ?? null,
          given_name: input.given_name ?? null,
          family_name: input.family_name ?? null,
          date_of_birth: input.date_of_birth ?? null,
          updated_at: now,
        });
        await addCustomerRef(trx, id, partnerId, input.customer_ref);
        await linkMember(trx, id, partnerId, "enrolled");
        await insertConsents(trx, id, partnerId, input.consents ?? []);
        await recordEvent(trx, { type: "member.enrolled", partnerId, occurredAt: now, data: { member_id: id, referred_by_member_id: referredBy } });
        const m = await trx("members").where({ id }).first();
        return { created: true, matched_by: null, member: await memberView(trx, { kind: "partner", partnerId }, m) };
      });
    },

    async get(viewer: Viewer, memberId: string) {
      const m = await visibleMember(db, viewer, memberId);
      return memberView(db, viewer, m);
    },

    /**
     * Corrects the member's contact data or date of birth (GDPR Art. 16). Fields sent as null are
     * cleared; fields left out stay. Never merges members, whatever the new email.
     */
    async updateProfile(partnerId: string, memberId: string, patch: ProfilePatch) {
      return db.transaction(async (trx) => {
        const m = await visibleMember(trx, { kind: "partner", partnerId }, memberId, true);
        if (m.status === "erased") throw memberErrors.make("member-erased", `Member ${memberId} is erased.`);
        const changes: Record<string, unknown> = { updated_at: clock.now() };
        for (const k of ["email", "phone", "given_name", "family_name", "date_of_birth"] as const) if (patch[k] !== undefined) changes[k] = patch[k];
        if (patch.email_verified !== undefined) changes.email_verified = patch.email_verified;
        // A new address is unverified unless the partner says it verified it.
        else if (patch.email !== undefined) changes.email_verified = false;
        if (changes.email === null) changes.email_verified = false;
        const exists = await trx("member_profiles").where({ member_id: memberId }).first("member_id");
        if (exists) await trx("member_profiles").where({ member_id: memberId }).update(changes);
        else await trx("member_profiles").insert({ member_id: memberId, ...changes });
        const fresh = await trx("members").where({ id: memberId }).first();
        return memberView(trx, { kind: "partner", partnerId }, fresh);
      });
    },

    async recordConsent(partnerId: string, memberId: string, input: ConsentInput) {
      return db.transaction(async (trx) => {
        const m = await visibleMember(trx, { kind: "partner", partnerId }, memberId);
        if (m.status === "erased") throw memberErrors.make("member-erased", `Member ${memberId} is erased.`);
        await insertConsents(trx, memberId, partnerId, [input]);
        const rows = await trx("member_consents").where({ member_id: memberId }).orderBy("id");
        return rows.map(consentView);
      });
    },

    /**
     * Everything the hub holds on the member, machine-readable (GDPR Art. 15 and 20). A partner's
     * export leaves out the customer references other partners hold; the operator's has them all.
     */
    async export(viewer: Viewer, memberId: string) {
      const m = await visibleMember(db, viewer, memberId);
      const view = await memberView(db, viewer, m);
      const links = await db("member_partner_links as l").join("partners as p", "p.id", "l.partner_id").where("l.member_id", memberId).orderBy("l.created_at").select("l.partner_id", "p.name", "l.relation", "l.created_at");
      const cards = await db("loyalty_cards").where({ member_id: memberId }).orderBy("issued_at");
      return {
        format: "coalition-hub.member-export.v1",
        generated_at: clock.now().toISOString(),
        member: {
          id: view.id,
          status: view.status,
          enrolled_at: view.enrolled_at,
          enrolled_by_partner_id: m.enrolled_by_partner_id as string,
          referral_code: view.referral_code,
          referred_by_member_id: (m.referred_by_member_id as string | null) ?? null,
          erased_at: m.erased_at ? toIso(m.erased_at) : null,
        },
        profile: view.profile,
        customer_refs: view.customer_refs,
        partners: links.map((l) => ({ partner_id: l.partner_id as string, name: l.name as string, relation: l.relation as string, since: toIso(l.created_at) })),
        consents: view.consents,
        cards: cards.map((c) => ({
          id: c.id as string,
          number: c.number as string,
          partner_id: c.partner_id as string,
          form: c.form as string,
          // An active card past its date is expired, as the cards feature reports it.
          status: c.status === "active" && new Date(c.expires_at).getTime() <= clock.now().getTime() ? "expired" : (c.status as string),
          issued_at: toIso(c.issued_at),
          expires_at: toIso(c.expires_at),
        })),
      };
    },

    /**
     * Erases the member's personal data: the profile and every customer reference are deleted, the
     * member's cards stop working, the status becomes `erased`. The consent history (no personal
     * data in it) and the ledger (opaque ids only) stay as they are, so balances still tie.
     * Repeating an erasure is harmless and answers the same.
     */
    async erase(actor: Actor, viewer: Viewer, memberId: string, reason: string | null) {
      return db.transaction(async (trx) => {
        const m = await visibleMember(trx, viewer, memberId, true);
        if (m.status === "erased") return { member_id: memberId, status: "erased", erased_at: toIso(m.erased_at) };
        const now = clock.now();
        // Counted by reading, not from the driver's answer: the two drivers report it differently.
        const profiles = (await trx("member_profiles").where({ member_id: memberId }).pluck("member_id")).length;
        const refs = (await trx("member_partner_refs").where({ member_id: memberId }).pluck("partner_id")).length;
        const cards = (await trx("loyalty_cards").where({ member_id: memberId }).whereIn("status", ["active", "blocked"]).pluck("id")).length;
        await trx("member_profiles").where({ member_id: memberId }).delete();
        await trx("member_partner_refs").where({ member_id: memberId }).delete();
        await trx("loyalty_cards").where({ member_id: memberId }).whereIn("status", ["active", "blocked"]).update({ status: "blocked", status_changed_at: now, status_reason: "member-erased" });
        // Payment cards banks linked are unlinked: purchases after the erasure earn nothing.
        const paymentCards: Array<{ id: string; bank_partner_id: string }> = await trx("payment_cards")
          .where({ member_id: memberId, status: "active" })
          .update({ status: "unlinked", unlinked_at: now })
          .returning(["id", "bank_partner_id"]);
        await trx("members").where({ id: memberId }).update({ status: "erased", erased_at: now, referral_code: null });
        // Only ids and counts: the audit log is append-only and must never hold personal data.
        await writeAudit(trx, actor, {
          action: "member.erased",
          objectType: "member",
          objectId: memberId,
          before: { status: m.status },
          after: { status: "erased", profile_rows_deleted: profiles, customer_refs_deleted: refs, cards_blocked: cards, payment_cards_unlinked: paymentCards.length },
          reason,
        });
        // Tell every partner that knows the member, so each can erase its own copy.
        const partners = await trx("member_partner_links").where({ member_id: memberId }).pluck("partner_id");
        for (const p of partners) await recordEvent(trx, { type: "member.erased", partnerId: p as string, occurredAt: now, data: { member_id: memberId } });
        for (const c of paymentCards) {
          await recordEvent(trx, { type: "payment_card.unlinked", partnerId: c.bank_partner_id, occurredAt: now, data: { payment_card_id: c.id, member_id: memberId } });
        }
        return { member_id: memberId, status: "erased", erased_at: now.toISOString() };
      });
    },
  };
}

function consentView(c: Record<string, unknown>) {
  return { purpose: c.purpose as string, version: c.version as string, state: c.state as string, occurred_at: toIso(c.occurred_at), partner_id: c.partner_id as string, recorded_at: toIso(c.recorded_at) };
}

export type MembersService = ReturnType<typeof createMembersService>;
