import type { DbOrTrx } from "../../gateway/src/infra/db.ts";
import { newId } from "../../gateway/src/infra/ids.ts";

/** Factories write straight to the tables for test set-up only; features use their services. */

export interface PartnerRow {
  id: string;
  name: string;
  kind: "operator" | "merchant" | "bank";
  sector: string;
  status: string;
  /** A developer's sandbox partner (the portal's sandbox network); live by default. */
  sandbox?: boolean;
}

let seq = 0;

export async function createPartner(db: DbOrTrx, overrides: Partial<PartnerRow> = {}): Promise<PartnerRow> {
  const n = ++seq;
  const row: PartnerRow = {
    id: newId("ptn"),
    name: `Partner ${n}`,
    kind: "merchant",
    sector: `sector-${n}-${Math.random().toString(36).slice(2, 8)}`,
    status: "active",
    ...overrides,
  };
  await db("partners").insert(row);
  return row;
}

export interface ContractRow {
  id: string;
  partner_id: string;
  version: number;
  effective_from: Date;
  currency: string;
  issuance_price_micros: bigint;
  redemption_price_micros: bigint;
  earn_points: bigint;
  earn_per_minor: bigint;
  points_validity_days: number;
  refund_policy: "negative_balance" | "recovery_entry";
  negative_floor: bigint;
}

/** A contract in force since 2020: 1 point per 10.00, issued at 0.010, redeemed at 0.008 per point. */
export async function createContract(db: DbOrTrx, partnerId: string, overrides: Partial<ContractRow> = {}): Promise<ContractRow> {
  const row: ContractRow = {
    id: newId("ctr"),
    partner_id: partnerId,
    version: 1,
    effective_from: new Date("2020-01-01T00:00:00Z"),
    currency: "EUR",
    issuance_price_micros: 10_000n,
    redemption_price_micros: 8_000n,
    earn_points: 1n,
    earn_per_minor: 1_000n,
    points_validity_days: 730,
    refund_policy: "negative_balance",
    negative_floor: -1_000n,
    ...overrides,
  };
  await db("contract_versions").insert({
    ...row,
    issuance_price_micros: String(row.issuance_price_micros),
    redemption_price_micros: String(row.redemption_price_micros),
    earn_points: String(row.earn_points),
    earn_per_minor: String(row.earn_per_minor),
    negative_floor: String(row.negative_floor),
  });
  return row;
}

export async function createMember(db: DbOrTrx, enrolledBy: string, overrides: { id?: string; status?: string; sandbox?: boolean } = {}): Promise<{ id: string }> {
  const row = { id: overrides.id ?? newId("mem"), status: overrides.status ?? "active", enrolled_by_partner_id: enrolledBy, ...(overrides.sandbox ? { sandbox: true } : {}) };
  await db("members").insert(row);
  await db("member_partner_links").insert({ member_id: row.id, partner_id: enrolledBy, relation: "enrolled" });
  return { id: row.id };
}

/** A sector in the operator's maintained list. */
export async function createSector(db: DbOrTrx, code?: string): Promise<{ code: string; name: string }> {
  const row = { code: code ?? `sector-${++seq}-${Math.random().toString(36).slice(2, 8)}`, name: `Sector ${seq}` };
  await db("sectors").insert(row);
  return row;
}

/** Sets the programme's configuration (open by default, verified-email matching). */
export async function setProgramme(
  db: DbOrTrx,
  s: { type?: "open" | "closed"; admission?: Record<string, unknown>; matching_rule?: "none" | "verified_email"; card_prefix?: string },
): Promise<void> {
  await db("programme_settings")
    .where({ id: 1 })
    .update({
      ...(s.type ? { type: s.type } : {}),
      ...(s.admission ? { admission: JSON.stringify(s.admission) } : {}),
      ...(s.matching_rule ? { matching_rule: s.matching_rule } : {}),
      ...(s.card_prefix ? { card_prefix: s.card_prefix } : {}),
    });
}
