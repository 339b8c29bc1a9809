import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { json } from "../../../test/http.ts";
import { adminToken, bearer, partnerToken } from "../../../test/factories/auth.ts";
import { createPartner, setProgramme } from "../../../test/factories/network.ts";
import { expectRouteSecurity } from "../../../test/security.ts";

let hub: TestHub;
let partnerA: string;
let partnerB: string;
let a: Record<string, string>;
let b: Record<string, string>;
let admin: Record<string, string>;
const ALL = ["members:read", "members:write", "cards:write"];

beforeAll(async () => {
  hub = await startTestHub();
  partnerA = (await createPartner(hub.db, { name: "Supermarket" })).id;
  partnerB = (await createPartner(hub.db, { name: "Fuel" })).id;
  const ct = { "content-type": "application/json" };
  a = { ...bearer(await partnerToken(hub, partnerA, ALL)), ...ct };
  b = { ...bearer(await partnerToken(hub, partnerB, ALL)), ...ct };
  admin = { ...bearer(await adminToken(hub)), ...ct };
});
afterAll(() => hub.close());

const as = (headers: Record<string, string>) => (method: string, path: string, body?: unknown) => hub.fetch(path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });

async function enrol(headers: Record<string, string>, body: Record<string, unknown>) {
  return as(headers)("POST", "/v1/members", body);
}

describe("POST /v1/members", () => {
  it("enrols a new member with contact data and consents (201), and links a known person at a second partner (200)", async () => {
    const res = await enrol(a, {
      customer_ref: "SM-1001",
      email: "liga@example.com",
      email_verified: true,
      phone: "+371 2000 0001",
      given_name: "Līga",
      date_of_birth: "1988-03-14",
      consents: [{ purpose: "marketing", version: "2026-01", state: "given" }],
    });
    expect(res.status).toBe(201);
    const first = await json(res);
    expect(first).toMatchObject({ outcome: "created", matched_by: null, member: { status: "active", profile: { email: "liga@example.com", given_name: "Līga", date_of_birth: "1988-03-14" }, customer_refs: [{ partner_id: partnerA, customer_ref: "SM-1001" }] } });
    expect(first.member.consents).toEqual([expect.objectContaining({ purpose: "marketing", state: "given", partner_id: partnerA })]);
    expect(first.member.referral_code).toMatch(/^[A-Z0-9]{8}$/);

    const again = await enrol(b, { customer_ref: "FUEL-9", email: "LIGA@example.com", email_verified: true });
    expect(again.status).toBe(200);
    const linked = await json(again);
    expect(linked).toMatchObject({ outcome: "linked_existing", matched_by: "verified_email", member: { id: first.member.id, customer_refs: [{ partner_id: partnerB, customer_ref: "FUEL-9" }] } });

    const events = await hub.db("events").where({ type: "member.enrolled" }).whereRaw("data->>'member_id' = ?", [first.member.id]);
    expect(events).toHaveLength(1);
    expect(JSON.stringify(events[0].data)).not.toMatch(/liga|Līga|2000/i);
  });

  it("refuses a reused customer reference, a closed programme's unqualified candidate, an unknown referral code and bad bodies", async () => {
    await enrol(a, { customer_ref: "SM-dup" });
    const dup = await enrol(a, { customer_ref: "SM-dup" });
    expect(dup.status).toBe(409);
    expect((await json(dup)).code).toBe("customer-reference-taken");
    expect((await json(await enrol(a, { customer_ref: "SM-r", referral_code: "ZZZZZZZZ" }))).code).toBe("unknown-referral-code");
    expect((await enrol(a, { customer_ref: "SM-e", email: "not-an-email" })).status).toBe(422);
    expect((await enrol(a, {})).status).toBe(422);
    expect((await enrol(a, { customer_ref: "SM-d", date_of_birth: "14.03.1988" })).status).toBe(422);
    await setProgramme(hub.db, { type: "closed", admission: { entry_fee: true } });
    try {
      const closed = await enrol(a, { customer_ref: "SM-closed" });
      expect(closed.status).toBe(422);
      expect(await json(closed)).toMatchObject({ code: "admission-criteria-not-met", admission: { entry_fee: true } });
      expect((await enrol(a, { customer_ref: "SM-closed", admission: { entry_fee_paid: true } })).status).toBe(201);
    } finally {
      await setProgramme(hub.db, { type: "open", admission: {} });
    }
  });
});

describe("GET /v1/members/{id}, consents, export", () => {
  it("shows a member to the partners that know it, records consents, exports everything", async () => {
    const m = (await json(await enrol(a, { customer_ref: "SM-2002", email: "juris@example.com", family_name: "Bērziņš" }))).member;
    expect(await json(await as(a)("GET", `/v1/members/${m.id}`))).toMatchObject({ id: m.id, profile: { family_name: "Bērziņš" } });
    const consent = await as(a)("POST", `/v1/members/${m.id}/consents`, { purpose: "profiling", version: "v1", state: "withdrawn", occurred_at: "2026-11-01T10:00:00Z" });
    expect(consent.status).toBe(201);
    expect((await json(consent)).items).toEqual([expect.objectContaining({ purpose: "profiling", state: "withdrawn", occurred_at: "2026-11-01T10:00:00.000Z" })]);
    const exp = await as(a)("GET", `/v1/members/${m.id}/export`);
    expect(exp.status).toBe(200);
    expect(exp.headers.get("cache-control")).toBe("no-store");
    const doc = await json(exp);
    expect(doc).toMatchObject({ format: "coalition-hub.member-export.v1", member: { id: m.id, enrolled_by_partner_id: partnerA }, profile: { email: "juris@example.com" }, partners: [{ partner_id: partnerA, relation: "enrolled" }] });
    expect(doc.consents).toHaveLength(1);
    const adminDoc = await json(await as(admin)("GET", `/admin/v1/members/${m.id}/export`));
    expect(adminDoc.customer_refs).toEqual([{ partner_id: partnerA, customer_ref: "SM-2002" }]);
  });

  it("answers 404 for another partner's member and for unknown ids, and refuses a bad consent", async () => {
    const m = (await json(await enrol(a, { customer_ref: "SM-3003" }))).member;
    for (const path of [`/v1/members/${m.id}`, `/v1/members/${m.id}/export`, "/v1/members/mem_nope"]) {
      const res = await as(b)("GET", path);
      expect(res.status, path).toBe(404);
      expect((await json(res)).code).toBe("member-not-found");
    }
    expect((await as(b)("POST", `/v1/members/${m.id}/consents`, { purpose: "marketing", version: "v1", state: "given" })).status).toBe(404);
    expect((await as(b)("POST", `/v1/members/${m.id}/erasure`, {})).status).toBe(404);
    expect((await as(a)("POST", `/v1/members/${m.id}/consents`, { purpose: "marketing", version: "v1", state: "maybe" })).status).toBe(422);
    expect((await as(admin)("GET", "/admin/v1/members/mem_nope/export")).status).toBe(404);
  });
});

describe("PATCH /v1/members/{id}", () => {
  it("corrects contact data; a new email is unverified unless said otherwise; null clears a field", async () => {
    const m = (await json(await enrol(a, { customer_ref: "SM-6006", email: "old@example.com", email_verified: true, phone: "+371 2000 0006" }))).member;
    const res = await as(a)("PATCH", `/v1/members/${m.id}`, { email: "new@example.com", phone: null, date_of_birth: "1990-02-28" });
    expect(res.status).toBe(200);
    expect((await json(res)).profile).toMatchObject({ email: "new@example.com", email_verified: false, phone: null, date_of_birth: "1990-02-28" });
    const verified = await json(await as(a)("PATCH", `/v1/members/${m.id}`, { email_verified: true }));
    expect(verified.profile).toMatchObject({ email: "new@example.com", email_verified: true });
    // Linking follows the corrected, verified address.
    const linked = await json(await enrol(b, { customer_ref: "F-6006", email: "new@example.com", email_verified: true }));
    expect(linked).toMatchObject({ outcome: "linked_existing", member: { id: m.id } });
  });

  it("refuses an empty patch, a bad field, another partner's member and an erased member", async () => {
    const m = (await json(await enrol(a, { customer_ref: "SM-7007" }))).member;
    expect((await as(a)("PATCH", `/v1/members/${m.id}`, {})).status).toBe(422);
    expect((await as(a)("PATCH", `/v1/members/${m.id}`, { email: "nope" })).status).toBe(422);
    expect((await as(a)("PATCH", `/v1/members/${m.id}`, { customer_ref: "x" })).status).toBe(422);
    expect((await as(b)("PATCH", `/v1/members/${m.id}`, { given_name: "X" })).status).toBe(404);
    await as(a)("POST", `/v1/members/${m.id}/erasure`, {});
    const erased = await as(a)("PATCH", `/v1/members/${m.id}`, { given_name: "Back" });
    expect(erased.status).toBe(422);
    expect((await json(erased)).code).toBe("member-erased");
    expect(await hub.db("member_profiles").where({ member_id: m.id })).toEqual([]);
  });
});

describe("erasure", () => {
  it("erases through the partner: personal data gone, consents kept, status erased, repeat harmless", async () => {
    const m = (await json(await enrol(a, { customer_ref: "SM-4004", email: "anna@example.com", consents: [{ purpose: "marketing", version: "v1", state: "given" }] }))).member;
    const res = await as(a)("POST", `/v1/members/${m.id}/erasure`, { reason: "member request #881" });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ member_id: m.id, status: "erased" });
    const after = await json(await as(a)("GET", `/v1/members/${m.id}`));
    expect(after).toMatchObject({ status: "erased", profile: null, customer_refs: [], referral_code: null });
    expect(after.consents).toHaveLength(1);
    expect((await as(a)("POST", `/v1/members/${m.id}/erasure`, {})).status).toBe(200);
    const consent = await as(a)("POST", `/v1/members/${m.id}/consents`, { purpose: "marketing", version: "v2", state: "given" });
    expect(consent.status).toBe(422);
    expect((await json(consent)).code).toBe("member-erased");
    const audit = await json(await as(admin)("GET", `/admin/v1/audit-log?object_type=member&object_id=${m.id}`));
    expect(audit.items[0]).toMatchObject({ action: "member.erased", actor: { type: "partner" }, reason: "member request #881" });
    expect(JSON.stringify(audit)).not.toContain("anna@example.com");
  });

  it("erases through the operator, and tells every partner that knew the member", async () => {
    const m = (await json(await enrol(a, { customer_ref: "SM-5005", email: "karlis@example.com", email_verified: true }))).member;
    await enrol(b, { customer_ref: "F-5005", email: "karlis@example.com", email_verified: true });
    const res = await hub.fetch(`/admin/v1/members/${m.id}/erasure`, { method: "POST", headers: { authorization: admin.authorization! } });
    expect(res.status).toBe(200);
    const events = await hub.db("events").where({ type: "member.erased" }).whereRaw("data->>'member_id' = ?", [m.id]).orderBy("partner_id");
    expect(events.map((e) => e.partner_id).sort()).toEqual([partnerA, partnerB].sort());
    expect(await hub.db("member_profiles").where({ member_id: m.id })).toEqual([]);
    expect((await as(admin)("POST", "/admin/v1/members/mem_nope/erasure", {})).status).toBe(404);
  });
});

describe("security", () => {
  let memberId: string;
  beforeAll(async () => {
    memberId = (await json(await enrol(a, { customer_ref: "SM-sec" }))).member.id;
  });
  const routes: Array<[string, string, string, unknown?]> = [
    ["POST", "/v1/members", "members:write", { customer_ref: "sec-x" }],
    ["GET", "/v1/members/{m}", "members:read"],
    ["PATCH", "/v1/members/{m}", "members:write", { given_name: "Sec" }],
    ["POST", "/v1/members/{m}/consents", "members:write", { purpose: "marketing", version: "v1", state: "given" }],
    ["GET", "/v1/members/{m}/export", "members:read"],
    ["POST", "/v1/members/{m}/erasure", "members:write", {}],
  ];
  it.each(routes)("%s %s needs a partner token with %s", async (method, path, scope, body) => {
    await expectRouteSecurity(hub, { method, path: path.replace("{m}", memberId), body, scopes: [scope], audience: "partner", partnerId: partnerA });
  });
});
