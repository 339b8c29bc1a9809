import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { json } from "../../../test/http.ts";
import { adminToken, bearer } from "../../../test/factories/auth.ts";
import { createPartner, createSector } from "../../../test/factories/network.ts";
import { expectRouteSecurity } from "../../../test/security.ts";

let hub: TestHub;
let admin: Record<string, string>;

beforeAll(async () => {
  hub = await startTestHub();
  admin = { ...bearer(await adminToken(hub)), "content-type": "application/json" };
});
afterAll(() => hub.close());

const call = (method: string, path: string, body?: unknown) => hub.fetch(path, { method, headers: admin, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
const terms = { currency: "EUR", issuance_price_micros: 10_000, redemption_price_micros: 8_000, earn_points: 1, earn_per_minor: 1_000 };

async function newPartner(sector?: string) {
  const code = sector ?? (await createSector(hub.db)).code;
  const res = await call("POST", "/admin/v1/partners", { name: "Cinema Nord", kind: "merchant", sector: code, mccs: ["7832"] });
  expect(res.status).toBe(201);
  return json(res);
}

describe("sectors", () => {
  it("adds, lists and retires sectors, each change audited", async () => {
    const created = await call("POST", "/admin/v1/sectors", { code: "fuel-retail", name: "Fuel stations" });
    expect(created.status).toBe(201);
    expect(await json(created)).toMatchObject({ code: "fuel-retail", name: "Fuel stations", active: true });
    const list = await json(await call("GET", "/admin/v1/sectors"));
    expect(list.items.map((s: { code: string }) => s.code)).toContain("fuel-retail");
    const retired = await call("PATCH", "/admin/v1/sectors/fuel-retail", { active: false });
    expect(await json(retired)).toMatchObject({ code: "fuel-retail", active: false });
    const audit = await json(await call("GET", "/admin/v1/audit-log?object_type=sector&object_id=fuel-retail"));
    expect(audit.items.map((a: { action: string }) => a.action)).toEqual(["sector.updated", "sector.created"]);
    expect(audit.items[0]).toMatchObject({ before: { active: true }, after: { active: false }, actor: { type: "admin" } });
  });

  it("refuses a duplicate code, a bad code, an empty patch and an unknown sector", async () => {
    await call("POST", "/admin/v1/sectors", { code: "pharmacy-2", name: "Pharmacies" });
    const dup = await call("POST", "/admin/v1/sectors", { code: "pharmacy-2", name: "Again" });
    expect(dup.status).toBe(409);
    expect((await json(dup)).code).toBe("sector-exists");
    expect((await call("POST", "/admin/v1/sectors", { code: "Bad Code", name: "x" })).status).toBe(422);
    expect((await call("PATCH", "/admin/v1/sectors/pharmacy-2", {})).status).toBe(422);
    expect((await json(await call("PATCH", "/admin/v1/sectors/nope", { name: "x" }))).code).toBe("sector-not-found");
  });
});

describe("partners", () => {
  it("registers an applicant, reads, lists and updates it", async () => {
    const p = await newPartner();
    expect(p).toMatchObject({ status: "applied", kind: "merchant", mccs: ["7832"], locations: [], non_compete_override: null });
    expect(await json(await call("GET", `/admin/v1/partners/${p.id}`))).toMatchObject({ id: p.id });
    const list = await json(await call("GET", `/admin/v1/partners?status=applied&sector=${p.sector}`));
    expect(list.items.map((x: { id: string }) => x.id)).toEqual([p.id]);
    const upd = await json(await call("PATCH", `/admin/v1/partners/${p.id}`, { name: "Cinema North", mccs: ["7832", "7841"] }));
    expect(upd).toMatchObject({ name: "Cinema North", mccs: ["7832", "7841"] });
  });

  it("refuses unknown partners, unknown sectors and invalid bodies", async () => {
    expect((await json(await call("GET", "/admin/v1/partners/ptn_nope"))).code).toBe("partner-not-found");
    const bad = await call("POST", "/admin/v1/partners", { name: "X", kind: "merchant", sector: "no-such" });
    expect(bad.status).toBe(422);
    // It named no field, unlike every other 422 of the body.
    expect(await json(bad)).toMatchObject({ code: "sector-not-found", errors: [{ field: "body/sector" }] });
    expect((await call("POST", "/admin/v1/partners", { name: "X", kind: "operator", sector: "fuel" })).status).toBe(422);
    expect((await call("PATCH", "/admin/v1/partners/ptn_nope", { name: "x" })).status).toBe(404);
    expect((await call("GET", "/admin/v1/partners?status=sleeping")).status).toBe(422);
  });
});

describe("lifecycle and non-compete over HTTP", () => {
  it("walks the lifecycle and refuses moves that do not exist", async () => {
    const p = await newPartner();
    const skip = await call("POST", `/admin/v1/partners/${p.id}/status`, { status: "active" });
    expect(skip.status).toBe(409);
    expect(await json(skip)).toMatchObject({ code: "invalid-transition", current_status: "applied", allowed: ["approved", "terminated"] });
    for (const status of ["approved", "active", "suspended", "active", "terminated"]) {
      const r = await call("POST", `/admin/v1/partners/${p.id}/status`, { status, reason: "test" });
      expect(r.status, status).toBe(200);
      expect((await json(r)).status).toBe(status);
    }
    expect((await call("POST", `/admin/v1/partners/${p.id}/status`, { status: "sleeping" })).status).toBe(422);
    expect((await call("POST", "/admin/v1/partners/ptn_nope/status", { status: "approved" })).status).toBe(404);
  });

  it("refuses a second partner in a held sector with 409 naming it, and admits it with an audited override", async () => {
    const sector = (await createSector(hub.db)).code;
    const incumbent = await createPartner(hub.db, { sector, status: "active", name: "Fuel One" });
    const rival = await newPartner(sector);
    const refused = await call("POST", `/admin/v1/partners/${rival.id}/status`, { status: "approved" });
    expect(refused.status).toBe(409);
    const problem = await json(refused);
    expect(problem).toMatchObject({ code: "non-compete-conflict", sector, conflicting_partners: [{ id: incumbent.id, name: "Fuel One", status: "active" }] });
    expect(problem.detail).toContain("Fuel One");
    expect((await call("POST", `/admin/v1/partners/${rival.id}/status`, { status: "approved", override: { reason: "short" } })).status).toBe(422);
    const ok = await call("POST", `/admin/v1/partners/${rival.id}/status`, { status: "approved", override: { reason: "Regional chain, no overlap in towns served" } });
    expect(ok.status).toBe(200);
    expect((await json(ok)).non_compete_override).toMatchObject({ reason: "Regional chain, no overlap in towns served", conflicting_partner_ids: [incumbent.id] });
    const audit = await json(await call("GET", `/admin/v1/audit-log?object_type=partner&object_id=${rival.id}&limit=1`));
    expect(audit.items[0]).toMatchObject({ action: "partner.status_changed.non_compete_override", reason: "Regional chain, no overlap in towns served" });
    expect(audit.next_cursor).not.toBeNull();
    const older = await json(await call("GET", `/admin/v1/audit-log?object_type=partner&object_id=${rival.id}&before=${audit.next_cursor}`));
    expect(older.items.map((a: { action: string }) => a.action)).toEqual(["partner.created"]);
    // 19 digits fit the contract's pattern but not a bigint: it answered 500.
    const beyond = await call("GET", `/admin/v1/audit-log?object_type=partner&object_id=${rival.id}&before=9999999999999999999`);
    expect(beyond.status).toBe(200);
    expect((await json(beyond)).items[0]).toMatchObject({ action: "partner.status_changed.non_compete_override" });
  });
});

describe("locations", () => {
  it("registers and removes a location", async () => {
    const p = await newPartner();
    const loc = await call("POST", `/admin/v1/partners/${p.id}/locations`, { name: "Station 4", mid: "MID-R-4", mcc: "5541", city: "Riga", country: "LV" });
    expect(loc.status).toBe(201);
    const l = await json(loc);
    expect((await json(await call("GET", `/admin/v1/partners/${p.id}`))).locations).toEqual([l]);
    expect((await call("DELETE", `/admin/v1/partners/${p.id}/locations/${l.id}`)).status).toBe(204);
    expect((await json(await call("GET", `/admin/v1/partners/${p.id}`))).locations).toEqual([]);
  });

  it("refuses a taken MID, a bad MCC and unknown objects", async () => {
    const p = await newPartner();
    await call("POST", `/admin/v1/partners/${p.id}/locations`, { name: "A", mid: "MID-TAKEN" });
    const dup = await call("POST", `/admin/v1/partners/${p.id}/locations`, { name: "B", mid: "MID-TAKEN" });
    expect(dup.status).toBe(409);
    expect((await json(dup)).code).toBe("mid-taken");
    expect((await call("POST", `/admin/v1/partners/${p.id}/locations`, { name: "C", mid: "MID-C", mcc: "55" })).status).toBe(422);
    const noLocation = await call("DELETE", `/admin/v1/partners/${p.id}/locations/loc_nope`);
    expect(noLocation.status).toBe(404);
    // It said partner-not-found ("Partner not found") about a partner that exists.
    expect(await json(noLocation)).toMatchObject({ code: "location-not-found", title: "Location not found" });
  });
});

describe("contracts", () => {
  it("adds versions that start on dates and answers which is in force when", async () => {
    const p = await newPartner();
    const v1 = await call("POST", `/admin/v1/partners/${p.id}/contracts`, { ...terms, effective_from: "2031-01-01T00:00:00Z", monthly_fee_minor: 5000, breakage_share_bps: 2500 });
    expect(v1.status).toBe(201);
    expect(await json(v1)).toMatchObject({ version: 1, monthly_fee_minor: 5000, breakage_share_bps: 2500, settlement_period: "monthly" });
    await call("POST", `/admin/v1/partners/${p.id}/contracts`, { ...terms, redemption_price_micros: 7_000, effective_from: "2031-07-01T00:00:00Z" });
    const all = await json(await call("GET", `/admin/v1/partners/${p.id}/contracts`));
    expect(all.items.map((c: { version: number }) => c.version)).toEqual([1, 2]);
    // There is no way to edit a version: the contract has no update operation.
    expect((await call("PATCH", `/admin/v1/partners/${p.id}/contracts`, { currency: "USD" })).status).toBe(405);
    expect((await call("PUT", `/admin/v1/partners/${p.id}/contracts`, { currency: "USD" })).status).toBe(405);
    const june = await json(await call("GET", `/admin/v1/partners/${p.id}/contracts/in-force?at=2031-06-30T23:59:59Z`));
    expect(june).toMatchObject({ version: 1, redemption_price_micros: 8_000 });
    const july = await json(await call("GET", `/admin/v1/partners/${p.id}/contracts/in-force?at=2031-07-01T00:00:00Z`));
    expect(july).toMatchObject({ version: 2, redemption_price_micros: 7_000 });
  });

  it("refuses a start in the past, a taken start, bad terms, and a moment before any version", async () => {
    const p = await newPartner();
    const past = await call("POST", `/admin/v1/partners/${p.id}/contracts`, { ...terms, effective_from: "2020-01-01T00:00:00Z" });
    expect(past.status).toBe(422);
    expect(await json(past)).toMatchObject({ code: "contract-start-in-past", errors: [{ field: "body/effective_from" }] });
    // Three capitals that are no ISO 4217 currency were stored as the settlement currency.
    const made = await call("POST", `/admin/v1/partners/${p.id}/contracts`, { ...terms, currency: "ZZZ", effective_from: "2034-01-01T00:00:00Z" });
    expect(made.status).toBe(422);
    expect(await json(made)).toMatchObject({ code: "validation-error", errors: [{ field: "body/currency" }] });
    await call("POST", `/admin/v1/partners/${p.id}/contracts`, { ...terms, effective_from: "2032-01-01T00:00:00Z" });
    expect((await json(await call("POST", `/admin/v1/partners/${p.id}/contracts`, { ...terms, effective_from: "2032-01-01T00:00:00Z" }))).code).toBe("contract-start-taken");
    expect((await call("POST", `/admin/v1/partners/${p.id}/contracts`, { ...terms, breakage_share_bps: 20000, effective_from: "2033-01-01T00:00:00Z" })).status).toBe(422);
    const none = await call("GET", `/admin/v1/partners/${p.id}/contracts/in-force`);
    expect(none.status).toBe(404);
    expect((await json(none)).code).toBe("contract-not-in-force");
    expect((await call("GET", "/admin/v1/partners/ptn_nope/contracts")).status).toBe(404);
  });
});

describe("the programme", () => {
  it("reads and sets open or closed with admission criteria, audited", async () => {
    expect(await json(await call("GET", "/admin/v1/programme"))).toMatchObject({ type: "open", matching_rule: "verified_email", card_prefix: "6390" });
    const set = await call("PUT", "/admin/v1/programme", { type: "closed", admission: { min_purchases: 5 }, matching_rule: "verified_email" });
    expect(await json(set)).toMatchObject({ type: "closed", admission: { min_purchases: 5 } });
    const audit = await json(await call("GET", "/admin/v1/audit-log?object_type=programme"));
    expect(audit.items[0]).toMatchObject({ action: "programme.updated", before: { type: "open" }, after: { type: "closed" } });
    await call("PUT", "/admin/v1/programme", { type: "open" });
  });

  it("refuses an invalid configuration", async () => {
    expect((await call("PUT", "/admin/v1/programme", { type: "members-only" })).status).toBe(422);
    expect((await call("PUT", "/admin/v1/programme", { type: "open", card_prefix: "12" })).status).toBe(422);
  });
});

describe("security", () => {
  const routes: Array<[string, string, unknown?]> = [
    ["GET", "/admin/v1/sectors"],
    ["POST", "/admin/v1/sectors", { code: "sec-x", name: "X" }],
    ["PATCH", "/admin/v1/sectors/sec-x", { name: "Y" }],
    ["GET", "/admin/v1/partners"],
    ["POST", "/admin/v1/partners", { name: "X", kind: "merchant", sector: "fuel" }],
    ["GET", "/admin/v1/partners/ptn_x"],
    ["PATCH", "/admin/v1/partners/ptn_x", { name: "Y" }],
    ["POST", "/admin/v1/partners/ptn_x/status", { status: "approved" }],
    ["POST", "/admin/v1/partners/ptn_x/locations", { name: "X", mid: "M-1" }],
    ["DELETE", "/admin/v1/partners/ptn_x/locations/loc_x"],
    ["GET", "/admin/v1/partners/ptn_x/contracts"],
    ["POST", "/admin/v1/partners/ptn_x/contracts", { ...terms, effective_from: "2040-01-01T00:00:00Z" }],
    ["GET", "/admin/v1/partners/ptn_x/contracts/in-force"],
    ["GET", "/admin/v1/audit-log"],
    ["GET", "/admin/v1/programme"],
    ["PUT", "/admin/v1/programme", { type: "open" }],
    ["GET", "/admin/v1/members/mem_x/export"],
    ["POST", "/admin/v1/members/mem_x/erasure", {}],
  ];
  it.each(routes)("%s %s is closed to anyone but the operator's staff", async (method, path, body) => {
    await expectRouteSecurity(hub, { method, path, body, scopes: ["admin"], audience: "admin" });
  });
});
