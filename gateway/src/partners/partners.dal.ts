import type { DbOrTrx } from "../infra/db.ts";

export type PartnerStatus = "applied" | "approved" | "active" | "suspended" | "terminated";

export interface PartnerRecord {
  id: string;
  name: string;
  kind: "operator" | "merchant" | "bank";
  sector: string;
  status: PartnerStatus;
  mccs: string[];
  non_compete_override: { reason: string; by: string; at: string; conflicting_partner_ids: string[] } | null;
  final_settlement_paid_at: Date | string | null;
  /** A developer's sandbox partner (the portal's sandbox network), never part of the live network. */
  sandbox: boolean;
  created_at: Date | string;
  updated_at: Date | string;
}

export interface LocationRecord {
  id: string;
  partner_id: string;
  name: string;
  mid: string;
  mcc: string | null;
  city: string | null;
  country: string | null;
  created_at: Date | string;
}

export interface SectorRecord {
  code: string;
  name: string;
  active: boolean;
  created_at: Date | string;
}

export type ContractRecord = Record<string, unknown> & { id: string; partner_id: string; version: number; effective_from: Date | string };

export async function findPartner(db: DbOrTrx, id: string, opts: { forUpdate?: boolean } = {}): Promise<PartnerRecord | undefined> {
  const q = db<PartnerRecord>("partners").where({ id }).first();
  if (opts.forUpdate) void q.forUpdate();
  return q;
}

export async function listPartners(db: DbOrTrx, f: { status?: string; sector?: string; kind?: string; sandbox?: boolean }): Promise<PartnerRecord[]> {
  return db<PartnerRecord>("partners")
    .whereNot("kind", "operator")
    .where("sandbox", f.sandbox ?? false)
    .modify((b) => {
      if (f.status) b.where("status", f.status);
      if (f.sector) b.where("sector", f.sector);
      if (f.kind) b.where("kind", f.kind);
    })
    .orderBy("id");
}

/** Live partners other than `exceptId` that hold a place in the sector: admitted and not terminated. */
export async function admittedInSector(db: DbOrTrx, sector: string, exceptId: string): Promise<Array<Pick<PartnerRecord, "id" | "name" | "status" | "non_compete_override">>> {
  return db("partners").where({ sector, sandbox: false }).whereIn("status", ["approved", "active", "suspended"]).whereNot("id", exceptId).orderBy("id").select("id", "name", "status", "non_compete_override");
}

export async function locationsOf(db: DbOrTrx, partnerId: string): Promise<LocationRecord[]> {
  return db<LocationRecord>("partner_locations").where({ partner_id: partnerId }).orderBy("id");
}

export async function findSector(db: DbOrTrx, code: string): Promise<SectorRecord | undefined> {
  return db<SectorRecord>("sectors").where({ code }).first();
}

export async function contractInForce(db: DbOrTrx, partnerId: string, at: Date): Promise<ContractRecord | undefined> {
  return db("contract_versions").where({ partner_id: partnerId }).where("effective_from", "<=", at).orderBy("effective_from", "desc").first();
}

export async function contractsOf(db: DbOrTrx, partnerId: string): Promise<ContractRecord[]> {
  return db("contract_versions").where({ partner_id: partnerId }).orderBy("version");
}
