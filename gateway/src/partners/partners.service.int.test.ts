import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../../../test/harness.ts";
import { createPartner, createSector } from "../../../test/factories/network.ts";
import type { Db } from "../infra/db.ts";
import { fixedClock } from "../infra/clock.ts";
import { createLogger } from "../infra/logger.ts";
import { assertPartnerActive, createPartnersService, partnerMayReadStatements, recordFinalSettlementPaid } from "./partners.service.ts";

let db: Db;
const clock = fixedClock("2026-11-22T10:00:00Z");
const actor = { type: "admin" as const, id: "staff-client", requestId: "req-1" };
let svc: ReturnType<typeof createPartnersService>;

beforeAll(async () => {
  db = await createTestDb();
  svc = createPartnersService({ db, clock, log: createLogger("silent") });
});
afterAll(async () => db.destroy());

const terms = { currency: "EUR", issuance_price_micros: 10_000, redemption_price_micros: 8_000, earn_points: 1, earn_per_minor: 1_000 };

describe("non-compete", () => {
  it("refuses to admit a second partner into a sector held by an active one, naming it", async () => {
    const sector = await createSector(db);
    const incumbent = await createPartner(db, { sector: sector.code, status: "active", name: "Fuel One" });
    const rival = await svc.createPartner(actor, { name: "Fuel Two", kind: "merchant", sector: sector.code });
    const err = await svc.changeStatus(actor, rival.id, { status: "approved" }).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 409, code: "non-compete-conflict" });
    expect((err as { extensions: { conflicting_partners: Array<{ id: string }> } }).extensions.conflicting_partners).toEqual([{ id: incumbent.id, name: "Fuel One", status: "active" }]);
    expect((err as Error).message).toContain(incumbent.id);
    expect((await svc.getPartner(rival.id)).status).toBe("applied");
  });

  it("admits with a written override, keeps the reason in the audit log, and the override covers activation", async () => {
    const sector = await createSector(db);
    await createPartner(db, { sector: sector.code, status: "active" });
    const rival = await svc.createPartner(actor, { name: "Second", kind: "merchant", sector: sector.code });
    const approved = await svc.changeStatus(actor, rival.id, { status: "approved", override: { reason: "Different regions, board decision 2026-11" } });
    expect(approved.status).toBe("approved");
    expect(approved.non_compete_override).toMatchObject({ reason: "Different regions, board decision 2026-11", by: "staff-client" });
    const active = await svc.changeStatus(actor, rival.id, { status: "active" });
    expect(active.status).toBe("active");
    const audit = await svc.listAudit({ objectType: "partner", objectId: rival.id, limit: 10 });
    const override = audit.items.find((a) => a.action === "partner.status_changed.non_compete_override");
    expect(override).toMatchObject({ reason: "Different regions, board decision 2026-11", actor: { type: "admin", id: "staff-client" }, request_id: "req-1" });
    expect(override!.before).toMatchObject({ status: "applied" });
    expect(override!.after).toMatchObject({ status: "approved" });
  });

  it("admits only one of several partners approved into an empty sector at the same moment", async () => {
    const sector = await createSector(db);
    const rivals = await Promise.all(Array.from({ length: 6 }, (_, i) => svc.createPartner(actor, { name: `Rival ${i}`, kind: "merchant", sector: sector.code })));
    const results = await Promise.allSettled(rivals.map((r) => svc.changeStatus(actor, r.id, { status: "approved" })));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results.filter((x) => x.status === "rejected")) expect((r as PromiseRejectedResult).reason).toMatchObject({ status: 409, code: "non-compete-conflict" });
  });

  it("does not hold a partner's activation against a rival admitted after it by override", async () => {
    const sector = await createSector(db);
    const first = await svc.createPartner(actor, { name: "First", kind: "merchant", sector: sector.code });
    const second = await svc.createPartner(actor, { name: "Second", kind: "merchant", sector: sector.code });
    await svc.changeStatus(actor, first.id, { status: "approved" });
    await svc.changeStatus(actor, second.id, { status: "approved", override: { reason: "Admitted knowingly next to First" } });
    expect((await svc.changeStatus(actor, first.id, { status: "active" })).status).toBe("active");
    expect((await svc.changeStatus(actor, second.id, { status: "active" })).status).toBe("active");
    // A third one still meets both.
    const third = await svc.createPartner(actor, { name: "Third", kind: "merchant", sector: sector.code });
    const err = await svc.changeStatus(actor, third.id, { status: "approved" }).catch((e: unknown) => e);
    expect((err as { extensions: { conflicting_partners: Array<{ id: string }> } }).extensions.conflicting_partners.map((p) => p.id).sort()).toEqual([first.id, second.id].sort());
  });

  it("lets a sector be re-used once its partner is terminated", async () => {
    const sector = await createSector(db);
    const gone = await createPartner(db, { sector: sector.code, status: "terminated" });
    const next = await svc.createPartner(actor, { name: "Next", kind: "merchant", sector: sector.code });
    expect((await svc.changeStatus(actor, next.id, { status: "approved" })).status).toBe("approved");
    expect(gone.status).toBe("terminated");
  });
});

describe("lifecycle", () => {
  it("allows only the listed moves", async () => {
    const p = await svc.createPartner(actor, { name: "Cinema", kind: "merchant", sector: (await createSector(db)).code });
    await expect(svc.changeStatus(actor, p.id, { status: "active" })).rejects.toMatchObject({ status: 409, code: "invalid-transition" });
    await svc.changeStatus(actor, p.id, { status: "approved" });
    await svc.changeStatus(actor, p.id, { status: "active" });
    await svc.changeStatus(actor, p.id, { status: "suspended", reason: "late payment" });
    await expect(assertPartnerActive(db, p.id)).rejects.toMatchObject({ status: 403, code: "partner-not-active" });
    await svc.changeStatus(actor, p.id, { status: "active" });
    await expect(assertPartnerActive(db, p.id)).resolves.toBeUndefined();
    await svc.changeStatus(actor, p.id, { status: "terminated" });
    await expect(svc.changeStatus(actor, p.id, { status: "active" })).rejects.toMatchObject({ code: "invalid-transition" });
    expect(await partnerMayReadStatements(db, p.id)).toBe(true);
    await recordFinalSettlementPaid(db, p.id, clock.now());
    expect(await partnerMayReadStatements(db, p.id)).toBe(false);
    expect((await svc.listAudit({ objectType: "partner", objectId: p.id, limit: 1 })).items[0]).toMatchObject({ action: "partner.final_settlement_paid", actor: { type: "system", id: "settlement" } });
    const live = await createPartner(db, { status: "active" });
    await expect(recordFinalSettlementPaid(db, live.id, clock.now())).rejects.toMatchObject({ code: "invalid-transition" });
  });

  it("refuses a sector that is not in the list", async () => {
    await expect(svc.createPartner(actor, { name: "X", kind: "bank", sector: "no-such-sector" })).rejects.toMatchObject({ status: 422, code: "sector-not-found" });
  });
});

describe("contracts by date", () => {
  it("prices each moment by the version in force then", async () => {
    const p = await createPartner(db, { sector: (await createSector(db)).code });
    const v1 = await svc.createContractVersion(actor, p.id, { ...terms, effective_from: "2026-12-01T00:00:00Z" });
    const v2 = await svc.createContractVersion(actor, p.id, { ...terms, issuance_price_micros: 12_000, effective_from: "2027-01-01T00:00:00Z" });
    expect([v1.version, v2.version]).toEqual([1, 2]);
    await expect(svc.contractAt(p.id, new Date("2026-11-30T23:59:59Z"))).rejects.toMatchObject({ status: 404, code: "contract-not-in-force" });
    expect(await svc.contractAt(p.id, new Date("2026-12-01T00:00:00Z"))).toMatchObject({ version: 1, issuance_price_micros: 10_000 });
    expect(await svc.contractAt(p.id, new Date("2026-12-31T23:59:59.999Z"))).toMatchObject({ version: 1, issuance_price_micros: 10_000 });
    expect(await svc.contractAt(p.id, new Date("2027-01-01T00:00:00Z"))).toMatchObject({ version: 2, issuance_price_micros: 12_000 });
    expect(await svc.contractAt(p.id, new Date("2030-06-01T00:00:00Z"))).toMatchObject({ version: 2 });
  });

  it("refuses a version that starts in the past or at a taken moment", async () => {
    const p = await createPartner(db, { sector: (await createSector(db)).code });
    await expect(svc.createContractVersion(actor, p.id, { ...terms, effective_from: "2026-11-22T09:59:59Z" })).rejects.toMatchObject({ status: 422, code: "contract-start-in-past" });
    await svc.createContractVersion(actor, p.id, { ...terms, effective_from: "2026-12-01T00:00:00Z" });
    await expect(svc.createContractVersion(actor, p.id, { ...terms, effective_from: "2026-12-01T00:00:00Z" })).rejects.toMatchObject({ status: 409, code: "contract-start-taken" });
  });

  it("the database refuses to edit or delete a version in force", async () => {
    const p = await createPartner(db, { sector: (await createSector(db)).code });
    await db("contract_versions").insert({ id: `ctr_${p.id}`, partner_id: p.id, version: 1, effective_from: new Date("2020-01-01T00:00:00Z"), currency: "EUR", issuance_price_micros: "1", redemption_price_micros: "1", earn_points: "1", earn_per_minor: "1" });
    await expect(db("contract_versions").where({ partner_id: p.id }).update({ issuance_price_micros: "2" })).rejects.toThrow(/in force/);
    await expect(db("contract_versions").where({ partner_id: p.id }).delete()).rejects.toThrow(/in force/);
    // A version not yet in force may still be withdrawn.
    await db("contract_versions").insert({ id: `ctr_f_${p.id}`, partner_id: p.id, version: 2, effective_from: new Date("2099-01-01T00:00:00Z"), currency: "EUR", issuance_price_micros: "1", redemption_price_micros: "1", earn_points: "1", earn_per_minor: "1" });
    await db("contract_versions").where({ id: `ctr_f_${p.id}` }).delete();
    expect(await db("contract_versions").where({ partner_id: p.id }).pluck("version")).toEqual([1]);
  });
});

describe("locations", () => {
  it("registers MIDs once across the network", async () => {
    const a = await createPartner(db, { sector: (await createSector(db)).code });
    const b = await createPartner(db, { sector: (await createSector(db)).code });
    const loc = await svc.addLocation(actor, a.id, { name: "Riga centre", mid: "MID-0001", mcc: "5411" });
    expect(loc).toMatchObject({ mid: "MID-0001", mcc: "5411" });
    await expect(svc.addLocation(actor, b.id, { name: "Elsewhere", mid: "MID-0001" })).rejects.toMatchObject({ status: 409, code: "mid-taken" });
    expect((await svc.getPartner(a.id)).locations).toHaveLength(1);
  });
});
