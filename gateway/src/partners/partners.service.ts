import type { Db, DbOrTrx, Trx } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";
import type { Logger } from "../infra/logger.ts";
import { newId } from "../infra/ids.ts";
import { partnerErrors } from "./partners.errors.ts";
import { validationError } from "../http/problem.ts";
import { listAudit, toIso, writeAudit, type Actor, type AuditQuery } from "./audit.service.ts";
import * as dal from "./partners.dal.ts";
import type { ContractRecord, LocationRecord, PartnerRecord, PartnerStatus, SectorRecord } from "./partners.dal.ts";

/** ISO 4217 codes as the runtime's ICU knows them (EUR, JPY, KWD, …; not XXX-style test or made-up codes). */
const ISO_CURRENCIES = new Set(Intl.supportedValuesOf("currency"));

/** The lifecycle: only these moves exist. Terminated is the end. */
export const PARTNER_TRANSITIONS: Record<PartnerStatus, PartnerStatus[]> = {
  applied: ["approved", "terminated"],
  approved: ["active", "terminated"],
  active: ["suspended", "terminated"],
  suspended: ["active", "terminated"],
  terminated: [],
};

const CONTRACT_TERMS = [
  "currency",
  "issuance_price_micros",
  "redemption_price_micros",
  "earn_points",
  "earn_per_minor",
  "points_validity_days",
  "refund_policy",
  "negative_floor",
  "transaction_fee_minor",
  "monthly_fee_minor",
  "breakage_share_bps",
  "cashback_funding_bps",
  "roundup_match_bps",
  "settlement_period",
] as const;

export type ContractTerms = {
  currency: string;
  issuance_price_micros: number;
  redemption_price_micros: number;
  earn_points: number;
  earn_per_minor: number;
  points_validity_days?: number;
  refund_policy?: "negative_balance" | "recovery_entry";
  negative_floor?: number;
  transaction_fee_minor?: number;
  monthly_fee_minor?: number;
  breakage_share_bps?: number;
  cashback_funding_bps?: number;
  roundup_match_bps?: number;
  settlement_period?: "monthly" | "weekly" | "daily";
};

export function sectorView(s: SectorRecord) {
  return { code: s.code, name: s.name, active: s.active, created_at: toIso(s.created_at) };
}

export function locationView(l: LocationRecord) {
  return { id: l.id, name: l.name, mid: l.mid, mcc: l.mcc, city: l.city, country: l.country, created_at: toIso(l.created_at) };
}

export function contractView(c: ContractRecord) {
  const out: Record<string, unknown> = { id: c.id, partner_id: c.partner_id, version: c.version, effective_from: toIso(c.effective_from), created_at: toIso(c.created_at) };
  for (const k of CONTRACT_TERMS) out[k] = typeof c[k] === "bigint" ? Number(c[k]) : c[k];
  return out;
}

export function partnerView(p: PartnerRecord, locations: LocationRecord[] = []) {
  return {
    id: p.id,
    name: p.name,
    kind: p.kind,
    sector: p.sector,
    status: p.status,
    mccs: p.mccs ?? [],
    locations: locations.map(locationView),
    non_compete_override: p.non_compete_override ?? null,
    final_settlement_paid_at: p.final_settlement_paid_at ? toIso(p.final_settlement_paid_at) : null,
    created_at: toIso(p.created_at),
    updated_at: toIso(p.updated_at),
  };
}

function isUniqueViolation(err: unknown, constraint?: string): boolean {
  const e = err as { code?: string; constraint?: string; message?: string } | null;
  if (e?.code !== "23505") return false;
  return constraint === undefined || e.constraint === constraint || Boolean(e.message?.includes(constraint));
}

/**
 * Earn and burn call this before moving value: a partner that is not active (suspended, or not
 * yet admitted, or terminated) is refused with 403 `partner-not-active`, as on every other route.
 */
export async function assertPartnerActive(db: DbOrTrx, partnerId: string): Promise<void> {
  const p = await db("partners").where({ id: partnerId }).first("status");
  if (!p) throw partnerErrors.make("partner-not-found", `No partner ${partnerId}.`);
  if (p.status !== "active") throw partnerErrors.make("partner-not-active", `Partner ${partnerId} is ${p.status}: it cannot move value or enrol members until the operator activates it.`, { partner_status: p.status });
}

/**
 * Whether a partner may still read its statements: every partner under contract may, and a
 * terminated one keeps that right until its final settlement is paid.
 */
export async function partnerMayReadStatements(db: DbOrTrx, partnerId: string): Promise<boolean> {
  const p = await db("partners").where({ id: partnerId }).first("status", "final_settlement_paid_at");
  if (!p) return false;
  if (p.status === "terminated") return p.final_settlement_paid_at === null;
  return p.status === "active" || p.status === "suspended";
}

/**
 * Settlement calls this, in its own transaction, when a terminated partner's final settlement is
 * paid: from then on the partner may no longer read its statements. Audited as a system change.
 */
export async function recordFinalSettlementPaid(trx: DbOrTrx, partnerId: string, at: Date, actor: Actor = { type: "system", id: "settlement" }): Promise<void> {
  const before = await trx("partners").where({ id: partnerId }).forUpdate().first("status", "final_settlement_paid_at");
  if (!before) throw partnerErrors.make("partner-not-found", `No partner ${partnerId}.`);
  if (before.status !== "terminated") throw partnerErrors.make("invalid-transition", `Partner ${partnerId} is ${before.status}; only a terminated partner has a final settlement.`, { current_status: before.status, allowed: [] });
  if (before.final_settlement_paid_at) return;
  await trx("partners").where({ id: partnerId }).update({ final_settlement_paid_at: at, updated_at: at });
  await writeAudit(trx, actor, { action: "partner.final_settlement_paid", objectType: "partner", objectId: partnerId, before: { final_settlement_paid_at: null }, after: { final_settlement_paid_at: at.toISOString() } });
}

export function createPartnersService(deps: { db: Db; clock: Clock; log: Logger }) {
  const { db, clock } = deps;

  async function mustFind(trx: DbOrTrx, id: string, forUpdate = false): Promise<PartnerRecord> {
    const p = await dal.findPartner(trx, id, { forUpdate });
    if (!p || p.kind === "operator") throw partnerErrors.make("partner-not-found", `No partner ${id}.`);
    return p;
  }

  async function withLocations(trx: DbOrTrx, p: PartnerRecord) {
    return partnerView(p, await dal.locationsOf(trx, p.id));
  }

  return {
    async listSectors() {
      return (await db<SectorRecord>("sectors").orderBy("code")).map(sectorView);
    },

    async createSector(actor: Actor, input: { code: string; name: string }) {
      return db.transaction(async (trx) => {
        const row = { code: input.code, name: input.name, active: true };
        try {
          await trx.raw("SAVEPOINT sector_insert");
          await trx("sectors").insert(row);
        } catch (err) {
          if (isUniqueViolation(err)) {
            await trx.raw("ROLLBACK TO SAVEPOINT sector_insert");
            throw partnerErrors.make("sector-exists", `Sector ${input.code} exists.`);
          }
          throw err;
        }
        const created = (await dal.findSector(trx, input.code))!;
        await writeAudit(trx, actor, { action: "sector.created", objectType: "sector", objectId: input.code, after: sectorView(created) });
        return sectorView(created);
      });
    },

    /** Renames a sector or retires it from the list (a retired sector admits no new partners). */
    async updateSector(actor: Actor, code: string, patch: { name?: string; active?: boolean }) {
      return db.transaction(async (trx) => {
        const before = await trx<SectorRecord>("sectors").where({ code }).forUpdate().first();
        if (!before) throw partnerErrors.make("sector-not-found", `No sector ${code}.`);
        await trx("sectors").where({ code }).update({ ...(patch.name !== undefined ? { name: patch.name } : {}), ...(patch.active !== undefined ? { active: patch.active } : {}) });
        const after = (await dal.findSector(trx, code))!;
        await writeAudit(trx, actor, { action: "sector.updated", objectType: "sector", objectId: code, before: sectorView(before), after: sectorView(after) });
        return sectorView(after);
      });
    },

    /**
     * A new partner in `applied`. `sandbox: true` makes a developer's sandbox partner (the portal's
     * sandbox network): it takes no place in its sector — non-compete neither counts nor stops it —
     * and the live lists leave it out. Given a transaction, it writes in it (the caller owns the
     * boundary: the portal's sign-up creates the partner and its first user in one).
     */
    async createPartner(actor: Actor, input: { name: string; kind: "merchant" | "bank"; sector: string; mccs?: string[]; sandbox?: boolean }, outer?: Trx) {
      const inTrx = <T>(work: (trx: Trx) => Promise<T>) => (outer ? work(outer) : db.transaction(work));
      return inTrx(async (trx) => {
        const sector = await dal.findSector(trx, input.sector);
        if (!sector || !sector.active) throw partnerErrors.make("sector-not-found", `Sector ${input.sector} is not in the list of active sectors.`, { errors: [{ field: "body/sector", reason: "is not an active sector" }] });
        const now = clock.now();
        const row = { id: newId("ptn", now.getTime()), name: input.name, kind: input.kind, sector: input.sector, status: "applied", mccs: JSON.stringify([...new Set(input.mccs ?? [])]), sandbox: input.sandbox ?? false, created_at: now, updated_at: now };
        await trx("partners").insert(row);
        const p = (await dal.findPartner(trx, row.id))!;
        const view = partnerView(p);
        await writeAudit(trx, actor, { action: "partner.created", objectType: "partner", objectId: p.id, after: view });
        return view;
      });
    },

    async getPartner(id: string) {
      return withLocations(db, await mustFind(db, id));
    },

    /** Whether a partner lives in the portal's sandbox network (false for an unknown id). */
    async isSandbox(id: string): Promise<boolean> {
      return Boolean((await dal.findPartner(db, id))?.sandbox);
    },

    async listPartners(f: { status?: string; sector?: string; kind?: string; sandbox?: boolean }) {
      return (await dal.listPartners(db, f)).map((p) => partnerView(p));
    },

    async updatePartner(actor: Actor, id: string, patch: { name?: string; mccs?: string[] }) {
      return db.transaction(async (trx) => {
        const before = await mustFind(trx, id, true);
        const changes: Record<string, unknown> = { updated_at: clock.now() };
        if (patch.name !== undefined) changes.name = patch.name;
        if (patch.mccs !== undefined) changes.mccs = JSON.stringify([...new Set(patch.mccs)]);
        await trx("partners").where({ id }).update(changes);
        const after = await mustFind(trx, id);
        await writeAudit(trx, actor, { action: "partner.updated", objectType: "partner", objectId: id, before: partnerView(before), after: partnerView(after) });
        return withLocations(trx, after);
      });
    },

    /**
     * Moves a partner along its lifecycle. Admission (applied → approved, approved → active)
     * enforces non-compete: if another partner holds the sector (approved, active or suspended),
     * the move is refused with 409 naming it, unless `override.reason` is given — that reason is
     * kept on the partner and in the audit log, and covers its later activation too.
     */
    async changeStatus(actor: Actor, id: string, input: { status: PartnerStatus; reason?: string; override?: { reason: string } }) {
      return db.transaction(async (trx) => {
        const before = await mustFind(trx, id, true);
        const to = input.status;
        if (!PARTNER_TRANSITIONS[before.status].includes(to)) {
          throw partnerErrors.make("invalid-transition", `A partner cannot go from ${before.status} to ${to}.`, {
            current_status: before.status,
            allowed: PARTNER_TRANSITIONS[before.status],
          });
        }
        const changes: Record<string, unknown> = { status: to, updated_at: clock.now() };
        const admitting = !before.sandbox && ((before.status === "applied" && to === "approved") || (before.status === "approved" && to === "active" && !before.non_compete_override));
        let overrideUsed: string | null = null;
        if (admitting) {
          // Two admissions into one sector at once must not both pass the check: one waits.
          await trx.raw("SELECT pg_advisory_xact_lock(hashtext(?))", [`sector:${before.sector}`]);
          // A rival that was itself admitted by an override naming this partner was let in knowingly,
          // after this one: it does not stand in the way of this partner's own activation.
          const rivals = (await dal.admittedInSector(trx, before.sector, id)).filter((r) => !r.non_compete_override?.conflicting_partner_ids.includes(id));
          if (rivals.length > 0) {
            if (!input.override) {
              const names = rivals.map((r) => `${r.name} (${r.id}, ${r.status})`).join(", ");
              throw partnerErrors.make("non-compete-conflict", `Sector ${before.sector} already has ${names}. Give override.reason to admit anyway.`, {
                sector: before.sector,
                conflicting_partners: rivals.map((r) => ({ id: r.id, name: r.name, status: r.status })),
              });
            }
            overrideUsed = input.override.reason;
            changes.non_compete_override = JSON.stringify({ reason: input.override.reason, by: actor.id, at: clock.now().toISOString(), conflicting_partner_ids: rivals.map((r) => r.id) });
          }
        }
        await trx("partners").where({ id }).update(changes);
        const after = await mustFind(trx, id);
        await writeAudit(trx, actor, {
          action: overrideUsed ? "partner.status_changed.non_compete_override" : "partner.status_changed",
          objectType: "partner",
          objectId: id,
          before: partnerView(before),
          after: partnerView(after),
          reason: overrideUsed ?? input.reason ?? null,
        });
        return withLocations(trx, after);
      });
    },

    async addLocation(actor: Actor, partnerId: string, input: { name: string; mid: string; mcc?: string; city?: string; country?: string }) {
      return db.transaction(async (trx) => {
        const p = await mustFind(trx, partnerId, true);
        if (p.status === "terminated") throw partnerErrors.make("invalid-transition", `Partner ${partnerId} is terminated.`, { current_status: p.status, allowed: [] });
        const row = { id: newId("loc"), partner_id: partnerId, name: input.name, mid: input.mid, mcc: input.mcc ?? null, city: input.city ?? null, country: input.country ?? null, created_at: clock.now() };
        try {
          await trx.raw("SAVEPOINT location_insert");
          await trx("partner_locations").insert(row);
        } catch (err) {
          if (isUniqueViolation(err)) {
            await trx.raw("ROLLBACK TO SAVEPOINT location_insert");
            const holder = await trx("partner_locations").where({ mid: input.mid }).first("partner_id");
            throw partnerErrors.make("mid-taken", `MID ${input.mid} is registered${holder?.partner_id === partnerId ? " for this partner" : " for another partner"}.`, { mid: input.mid });
          }
          throw err;
        }
        const view = locationView(row);
        await writeAudit(trx, actor, { action: "partner.location_added", objectType: "partner", objectId: partnerId, after: view });
        return view;
      });
    },

    async removeLocation(actor: Actor, partnerId: string, locationId: string) {
      return db.transaction(async (trx) => {
        await mustFind(trx, partnerId, true);
        const loc = await trx<LocationRecord>("partner_locations").where({ id: locationId, partner_id: partnerId }).first();
        if (!loc) throw partnerErrors.make("location-not-found", `No location ${locationId} for partner ${partnerId}.`);
        await trx("partner_locations").where({ id: locationId }).delete();
        await writeAudit(trx, actor, { action: "partner.location_removed", objectType: "partner", objectId: partnerId, before: locationView(loc) });
      });
    },

    /**
     * Adds a contract version that starts at `effective_from` (now or later, never in the past).
     * Versions in force are never edited: a change of terms is always a new version.
     */
    async createContractVersion(actor: Actor, partnerId: string, input: ContractTerms & { effective_from: string }) {
      // The contract's pattern admits any three capitals: ZZZ was stored, and its partner's clearing and payment files would then carry it.
      if (!ISO_CURRENCIES.has(input.currency)) throw validationError([{ field: "body/currency", reason: "is not an ISO 4217 currency code" }]);
      const from = new Date(input.effective_from);
      const now = clock.now();
      if (from.getTime() < now.getTime()) {
        throw partnerErrors.make("contract-start-in-past", `effective_from ${from.toISOString()} is before now (${now.toISOString()}); a version in force is never changed.`, {
          errors: [{ field: "body/effective_from", reason: "is in the past" }],
        });
      }
      return db.transaction(async (trx) => {
        const p = await mustFind(trx, partnerId, true);
        if (p.status === "terminated") throw partnerErrors.make("invalid-transition", `Partner ${partnerId} is terminated.`, { current_status: p.status, allowed: [] });
        const clash = await trx("contract_versions").where({ partner_id: partnerId, effective_from: from }).first("id");
        if (clash) throw partnerErrors.make("contract-start-taken", `Version ${clash.id} already starts at ${from.toISOString()}.`);
        const last = await trx("contract_versions").where({ partner_id: partnerId }).max({ v: "version" }).first();
        const version = Number(last?.v ?? 0) + 1;
        const row: Record<string, unknown> = { id: newId("ctr", now.getTime()), partner_id: partnerId, version, effective_from: from, created_at: now };
        for (const k of CONTRACT_TERMS) {
          const v = input[k];
          if (v !== undefined) row[k] = typeof v === "number" ? String(v) : v;
        }
        await trx("contract_versions").insert(row);
        const created = (await trx("contract_versions").where({ id: row.id }).first()) as ContractRecord;
        const view = contractView(created);
        await writeAudit(trx, actor, { action: "contract.version_created", objectType: "partner", objectId: partnerId, after: view });
        return view;
      });
    },

    async listContractVersions(partnerId: string) {
      await mustFind(db, partnerId);
      return (await dal.contractsOf(db, partnerId)).map(contractView);
    },

    /** The version that prices a transaction made at `at`. */
    async contractAt(partnerId: string, at: Date = clock.now()) {
      await mustFind(db, partnerId);
      const c = await dal.contractInForce(db, partnerId, at);
      if (!c) throw partnerErrors.make("contract-not-in-force", `Partner ${partnerId} had no contract in force at ${at.toISOString()}.`);
      return contractView(c);
    },

    async listAudit(q: AuditQuery) {
      return listAudit(db, q);
    },
  };
}

export type PartnersService = ReturnType<typeof createPartnersService>;
export { contractInForce } from "./partners.dal.ts";
