import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../../../test/harness.ts";
import { createPartner, createMember, setProgramme } from "../../../test/factories/network.ts";
import type { Db } from "../infra/db.ts";
import { fixedClock } from "../infra/clock.ts";
import { createLogger } from "../infra/logger.ts";
import { createMembersService, memberBirthday } from "./members.service.ts";
import { createCardResolver, createCardsService, createNetworkMemberAccess } from "../cards/cards.service.ts";

let db: Db;
const clock = fixedClock("2026-11-22T10:00:00Z");
const log = createLogger("silent");
let members: ReturnType<typeof createMembersService>;
let cards: ReturnType<typeof createCardsService>;
const admin = { type: "admin" as const, id: "staff" };

beforeAll(async () => {
  db = await createTestDb();
  members = createMembersService({ db, clock, log, resolveCard: createCardResolver({ clock }) });
  cards = createCardsService({ db, clock, log });
});
afterAll(async () => db.destroy());

describe("enrolment and matching", () => {
  it("links the same person enrolled by a second partner when the verified email matches, and says so", async () => {
    const a = await createPartner(db);
    const b = await createPartner(db);
    const first = await members.enrol(a.id, { customer_ref: "A-1", email: "Anna@Example.com", email_verified: true, given_name: "Anna" });
    expect(first.created).toBe(true);
    const second = await members.enrol(b.id, { customer_ref: "B-77", email: "anna@example.com", email_verified: true, given_name: "Anya" });
    expect(second).toMatchObject({ created: false, matched_by: "verified_email" });
    expect(second.member.id).toBe(first.member.id);
    // Linked, not merged: the profile is the first one, untouched.
    expect(second.member.profile?.given_name).toBe("Anna");
    expect(second.member.customer_refs).toEqual([{ partner_id: b.id, customer_ref: "B-77" }]);
    expect(await db("member_profiles").whereRaw("lower(email) = 'anna@example.com'").pluck("member_id")).toEqual([first.member.id]);
  });

  it("makes one member when two partners enrol the same verified email at the same moment", async () => {
    const a = await createPartner(db);
    const b = await createPartner(db);
    const [x, y] = await Promise.all([
      members.enrol(a.id, { customer_ref: "race-a", email: "race@example.com", email_verified: true }),
      members.enrol(b.id, { customer_ref: "race-b", email: "race@example.com", email_verified: true }),
    ]);
    expect(x.member.id).toBe(y.member.id);
    expect([x.created, y.created].sort()).toEqual([false, true]);
  });

  it("never links on an unverified email", async () => {
    const a = await createPartner(db);
    const b = await createPartner(db);
    const first = await members.enrol(a.id, { customer_ref: "A-2", email: "bob@example.com", email_verified: true });
    const second = await members.enrol(b.id, { customer_ref: "B-2", email: "bob@example.com" });
    expect(second.created).toBe(true);
    expect(second.member.id).not.toBe(first.member.id);
  });

  it("links through a card the person presents", async () => {
    const a = await createPartner(db);
    const b = await createPartner(db);
    const m = await members.enrol(a.id, { customer_ref: "A-3" });
    const card = await cards.issue(a.id, m.member.id, { form: "virtual" });
    const again = await members.enrol(b.id, { customer_ref: "B-3", card_number: card.number! });
    expect(again).toMatchObject({ created: false, matched_by: "card" });
    expect(again.member.id).toBe(m.member.id);
  });

  it("refuses a customer reference the partner already used", async () => {
    const a = await createPartner(db);
    await members.enrol(a.id, { customer_ref: "dup" });
    await expect(members.enrol(a.id, { customer_ref: "dup" })).rejects.toMatchObject({ status: 409, code: "customer-reference-taken" });
  });

  it("applies a closed programme's admission criteria to new members only", async () => {
    const a = await createPartner(db);
    await setProgramme(db, { type: "closed", admission: { min_purchases: 3, questionnaire: true } });
    try {
      await expect(members.enrol(a.id, { customer_ref: "c-1", admission: { purchases: 2 } })).rejects.toMatchObject({ status: 422, code: "admission-criteria-not-met" });
      expect((await members.enrol(a.id, { customer_ref: "c-2", admission: { purchases: 3 } })).created).toBe(true);
      expect((await members.enrol(a.id, { customer_ref: "c-3", admission: { questionnaire_completed: true } })).created).toBe(true);
    } finally {
      await setProgramme(db, { type: "open", admission: {} });
    }
  });

  it("records who referred whom, and refuses an unknown referral code", async () => {
    const a = await createPartner(db);
    const referrer = await members.enrol(a.id, { customer_ref: "ref-1" });
    const referred = await members.enrol(a.id, { customer_ref: "ref-2", referral_code: referrer.member.referral_code! });
    expect((await members.export({ kind: "admin" }, referred.member.id)).member.referred_by_member_id).toBe(referrer.member.id);
    await expect(members.enrol(a.id, { customer_ref: "ref-3", referral_code: "NOSUCHCD" })).rejects.toMatchObject({ status: 422, code: "unknown-referral-code" });
  });

  it("refuses enrolment through a suspended partner", async () => {
    const s = await createPartner(db, { status: "suspended" });
    await expect(members.enrol(s.id, { customer_ref: "x" })).rejects.toMatchObject({ status: 403, code: "partner-not-active" });
  });
});

describe("visibility", () => {
  it("hides members a partner neither enrolled nor served", async () => {
    const a = await createPartner(db);
    const b = await createPartner(db);
    const m = await createMember(db, a.id);
    await expect(members.get({ kind: "partner", partnerId: b.id }, m.id)).rejects.toMatchObject({ status: 404 });
    expect((await members.get({ kind: "partner", partnerId: a.id }, m.id)).id).toBe(m.id);
  });
});

describe("erasure", () => {
  it("removes personal data, keeps consents and ids, stops the cards, and leaves nothing personal in events or audit", async () => {
    const a = await createPartner(db);
    const enrolled = await members.enrol(a.id, {
      customer_ref: "erase-me",
      email: "erase@example.com",
      email_verified: true,
      phone: "+37120000000",
      given_name: "Erika",
      family_name: "Ozola",
      date_of_birth: "1990-05-17",
      consents: [{ purpose: "marketing", version: "v3", state: "given" }],
    });
    const id = enrolled.member.id;
    const card = await cards.issue(a.id, id, { form: "physical" });
    await members.recordConsent(a.id, id, { purpose: "marketing", version: "v3", state: "withdrawn" });

    expect(await memberBirthday(db, id)).toEqual({ month: 5, day: 17 });
    const result = await members.erase(admin, { kind: "admin" }, id, "Art. 17 request 2026-11-22");
    expect(await memberBirthday(db, id)).toBeNull();
    expect(result).toMatchObject({ member_id: id, status: "erased" });

    expect(await db("member_profiles").where({ member_id: id })).toEqual([]);
    expect(await db("member_partner_refs").where({ member_id: id })).toEqual([]);
    const member = await db("members").where({ id }).first();
    expect(member).toMatchObject({ id, status: "erased", referral_code: null });
    expect((await db("member_consents").where({ member_id: id })).map((c) => c.state)).toEqual(["given", "withdrawn"]);

    const exported = await members.export({ kind: "admin" }, id);
    expect(exported.profile).toBeNull();
    expect(exported.consents).toHaveLength(2);

    // The old card stops working at once.
    await expect(createNetworkMemberAccess({ clock }).resolve(db, a.id, { card_number: card.number! })).rejects.toMatchObject({ status: 422, code: "card-blocked" });

    const everything = JSON.stringify([await db("events").select("data"), await db("audit_log").select("before", "after", "reason")]);
    for (const pii of ["erase@example.com", "+37120000000", "Erika", "Ozola", "1990-05-17", "erase-me"]) expect(everything).not.toContain(pii);

    // Again: harmless, same answer.
    expect((await members.erase(admin, { kind: "admin" }, id, null)).status).toBe("erased");
    // And the person may enrol afresh as a new member.
    const fresh = await members.enrol(a.id, { customer_ref: "erase-me", email: "erase@example.com", email_verified: true });
    expect(fresh.created).toBe(true);
    expect(fresh.member.id).not.toBe(id);
  });
});

describe("cards", () => {
  it("replaces a lost card: the new card inherits the member and the old one stops working", async () => {
    const a = await createPartner(db);
    const m = await members.enrol(a.id, { customer_ref: "card-1" });
    const access = createNetworkMemberAccess({ clock });
    const old = await cards.issue(a.id, m.member.id, { form: "physical" });
    expect(old.number).toMatch(/^6390\d{12}$/);
    expect(await access.resolve(db, a.id, { card_number: old.number! })).toEqual({ memberId: m.member.id });

    await cards.setStatus(a.id, old.id, { status: "lost" });
    await expect(access.resolve(db, a.id, { card_number: old.number! })).rejects.toMatchObject({ status: 422, code: "card-lost" });

    const { card, replaced_card } = await cards.replace(a.id, old.id, {});
    expect(card).toMatchObject({ member_id: m.member.id, partner_id: a.id, form: "physical", status: "active", replaces_card_id: old.id });
    expect(card.number).not.toBe(old.number);
    expect(replaced_card).toMatchObject({ id: old.id, status: "replaced", replaced_by_card_id: card.id });
    await expect(access.resolve(db, a.id, { card_number: old.number! })).rejects.toMatchObject({ status: 422, code: "card-replaced" });
    expect(await access.resolve(db, a.id, { card_number: card.number! })).toEqual({ memberId: m.member.id });
    await expect(cards.replace(a.id, old.id, {})).rejects.toMatchObject({ status: 409, code: "invalid-card-transition" });
  });

  it("refuses earn and burn with a blocked card until it is unblocked, and expires cards by date", async () => {
    const a = await createPartner(db);
    const m = await members.enrol(a.id, { customer_ref: "card-2" });
    const c = await cards.issue(a.id, m.member.id, { form: "virtual" });
    const access = createNetworkMemberAccess({ clock });
    await cards.setStatus(a.id, c.id, { status: "blocked" });
    await expect(access.resolve(db, a.id, { card_number: c.number! })).rejects.toMatchObject({ status: 422, code: "card-blocked" });
    await cards.setStatus(a.id, c.id, { status: "active" });
    expect(await access.resolve(db, a.id, { card_number: c.number! })).toEqual({ memberId: m.member.id });
    const later = fixedClock("2030-01-01T00:00:00Z");
    await expect(createNetworkMemberAccess({ clock: later }).resolve(db, a.id, { card_number: c.number! })).rejects.toMatchObject({ code: "card-expired" });
  });

  it("looks a member up by card at another partner and links them there", async () => {
    const a = await createPartner(db);
    const b = await createPartner(db);
    const m = await members.enrol(a.id, { customer_ref: "card-3" });
    const c = await cards.issue(a.id, m.member.id, { form: "virtual" });
    await expect(members.get({ kind: "partner", partnerId: b.id }, m.member.id)).rejects.toMatchObject({ status: 404 });
    expect(await cards.lookup(b.id, c.number!)).toMatchObject({ member_id: m.member.id, card: { id: c.id, last4: c.number!.slice(-4) } });
    expect((await members.get({ kind: "partner", partnerId: b.id }, m.member.id)).id).toBe(m.member.id);
    await expect(cards.lookup(b.id, "6390000000000000")).rejects.toMatchObject({ status: 404, code: "card-not-found" });
  });
});
