import fs from "node:fs";
import path from "node:path";
import type { HubDeps } from "../hub.ts";
import { newId } from "../infra/ids.ts";
import { createClientsService } from "../auth/clients.service.ts";
import { scopesFromSpec } from "../auth/auth.module.ts";
import { loadSpec } from "../http/openapi.ts";

export interface DemoClient {
  partner: string;
  partner_id: string | null;
  client_id: string;
  client_secret: string;
  scopes: string[];
  audience: "partner" | "admin";
}

export interface DemoCredentials {
  file: string;
  issuer: string;
  clients: DemoClient[];
  members: Array<{ member_id: string; enrolled_by: string }>;
}

const MERCHANT_SCOPES = ["members:read", "members:write", "cards:write", "earn:write", "burn:write", "settlements:read", "webhooks:manage"];
const BANK_SCOPES = [...MERCHANT_SCOPES, "card-transactions:write"];

/** The demo network: three non-competing merchants and a bank, each under contract, with members. */
const DEMO_PARTNERS = [
  { name: "FreshMart Supermarkets", kind: "merchant", sector: "grocery", earn_points: 1n, earn_per_minor: 1_000n },
  { name: "FuelGo Stations", kind: "merchant", sector: "fuel", earn_points: 1n, earn_per_minor: 500n },
  { name: "CinemaCity", kind: "merchant", sector: "entertainment", earn_points: 2n, earn_per_minor: 1_000n },
  { name: "Baltic Bank", kind: "bank", sector: "banking", earn_points: 1n, earn_per_minor: 2_000n },
] as const;

/**
 * Seeds the demo network once (the credentials file is the marker) and writes the demo
 * credentials to $DATA_DIR/demo-credentials.json. Returns null when the demo is already there.
 */
export async function seedDemo(deps: Pick<HubDeps, "db" | "config" | "log" | "clock">): Promise<DemoCredentials | null> {
  const file = path.join(deps.config.dataDir, "demo-credentials.json");
  if (fs.existsSync(file)) return null;
  const { db, clock } = deps;
  const clients = createClientsService({ db, clock, knownScopes: scopesFromSpec(loadSpec()) });
  const actor = { type: "system", id: "seed" };
  const creds: DemoCredentials = { file, issuer: deps.config.PUBLIC_URL, clients: [], members: [] };

  const admin = await clients.create({ partnerId: null, name: "Operator console (demo)", scopes: ["admin"] }, actor);
  creds.clients.push({ partner: "Operator (admin)", partner_id: null, client_id: admin.client.id, client_secret: admin.secret!, scopes: ["admin"], audience: "admin" });

  for (const p of DEMO_PARTNERS) {
    const partnerId = newId("ptn");
    await db.transaction(async (trx) => {
      await trx("partners").insert({ id: partnerId, name: p.name, kind: p.kind, sector: p.sector, status: "active" });
      await trx("contract_versions").insert({
        id: newId("ctr"),
        partner_id: partnerId,
        version: 1,
        effective_from: new Date("2026-01-01T00:00:00Z"),
        currency: "EUR",
        issuance_price_micros: "10000",
        redemption_price_micros: "8000",
        earn_points: String(p.earn_points),
        earn_per_minor: String(p.earn_per_minor),
        points_validity_days: 730,
        refund_policy: "negative_balance",
        negative_floor: "-5000",
        transaction_fee_minor: "2",
        monthly_fee_minor: "5000",
        breakage_share_bps: 5000,
        roundup_match_bps: p.kind === "bank" ? 1000 : 0,
      });
      for (let i = 0; i < 3; i++) {
        const memberId = newId("mem");
        await trx("members").insert({ id: memberId, status: "active", enrolled_by_partner_id: partnerId });
        await trx("member_partner_links").insert({ member_id: memberId, partner_id: partnerId, relation: "enrolled" });
        creds.members.push({ member_id: memberId, enrolled_by: p.name });
      }
    });
    const scopes = p.kind === "bank" ? BANK_SCOPES : MERCHANT_SCOPES;
    const c = await clients.create({ partnerId, name: `${p.name} (demo)`, scopes }, actor);
    creds.clients.push({ partner: p.name, partner_id: partnerId, client_id: c.client.id, client_secret: c.secret!, scopes, audience: "partner" });
  }

  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(creds, null, 2) + "\n", { mode: 0o600 });
  deps.log.info({ partners: DEMO_PARTNERS.length, members: creds.members.length }, "demo network seeded");
  return creds;
}
