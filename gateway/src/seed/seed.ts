import fs from "node:fs";
import path from "node:path";
import type { HubDeps } from "../hub.ts";
import { createPartnersService } from "../partners/partners.service.ts";
import { createMembersService } from "../members/members.service.ts";
import { createCardResolver, createCardsService } from "../cards/cards.service.ts";
import { createClientsService } from "../auth/clients.service.ts";
import { scopesFromSpec } from "../auth/auth.module.ts";
import { loadSpec } from "../http/openapi.ts";
import { randomBytes } from "node:crypto";
import { createPortalUsers } from "../../../portal/src/users/users.service.ts";

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
  members: Array<{ member_id: string; enrolled_by: string; card_number: string }>;
  /** The operator console's demo login (a portal user, not an OAuth client). */
  portal: { url: string; operator: { email: string; password: string } };
}

const MERCHANT_SCOPES = ["members:read", "members:write", "cards:write", "earn:write", "burn:write", "settlements:read", "settlements:write", "webhooks:manage", "events:read"];
const BANK_SCOPES = [...MERCHANT_SCOPES, "card-transactions:write"];

/** The demo network: three non-competing merchants and a bank, each under contract, with members. */
const DEMO_PARTNERS = [
  { name: "FreshMart Supermarkets", kind: "merchant", sector: "grocery", mccs: ["5411"], mid: "FRESHMART0001", earn_points: 1, earn_per_minor: 1_000 },
  { name: "FuelGo Stations", kind: "merchant", sector: "fuel", mccs: ["5541", "5542"], mid: "FUELGO000001", earn_points: 1, earn_per_minor: 500 },
  { name: "CinemaCity", kind: "merchant", sector: "entertainment", mccs: ["7832"], mid: "CINEMACITY01", earn_points: 2, earn_per_minor: 1_000 },
  { name: "Baltic Bank", kind: "bank", sector: "banking", mccs: ["6012"], mid: "BALTICBANK01", earn_points: 1, earn_per_minor: 2_000 },
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
  const operator = { email: "operator@hub.example", password: randomBytes(12).toString("base64url") };
  const creds: DemoCredentials = { file, issuer: deps.config.PUBLIC_URL, clients: [], members: [], portal: { url: `${deps.config.PUBLIC_URL}/portal`, operator } };
  await createPortalUsers({ db, clock }).create({ email: operator.email, name: "Operator admin (demo)", role: "operator", password: operator.password });

  const admin = await clients.create({ partnerId: null, name: "Operator console (demo)", scopes: ["admin"] }, actor);
  creds.clients.push({ partner: "Operator (admin)", partner_id: null, client_id: admin.client.id, client_secret: admin.secret!, scopes: ["admin"], audience: "admin" });

  const partners = createPartnersService(deps);
  const members = createMembersService({ ...deps, resolveCard: createCardResolver(deps) });
  const cards = createCardsService(deps);
  const staff = { type: "system", id: "seed" } as const;
  const people = [
    ["Anna", "Ozola"],
    ["Jānis", "Bērziņš"],
    ["Olga", "Ivanova"],
    ["Marta", "Kalniņa"],
    ["Pēteris", "Liepa"],
    ["Irina", "Smirnova"],
    ["Dmitrijs", "Petrovs"],
    ["Laura", "Krūmiņa"],
  ];
  let person = 0;

  for (const p of DEMO_PARTNERS) {
    await partners.createSector(staff, { code: p.sector, name: p.sector[0]!.toUpperCase() + p.sector.slice(1) });
    const partner = await partners.createPartner(staff, { name: p.name, kind: p.kind, sector: p.sector, mccs: [...p.mccs] });
    const partnerId = partner.id as string;
    await partners.addLocation(staff, partnerId, { name: `${p.name} Riga Centre`, mid: p.mid, mcc: p.mccs[0], city: "Riga", country: "LV" });
    await partners.createContractVersion(staff, partnerId, {
      // A version starts now or later, never in the past: a second from now leaves room for the call.
      effective_from: new Date(clock.now().getTime() + 1_000).toISOString(),
      currency: "EUR",
      issuance_price_micros: 10_000,
      redemption_price_micros: 8_000,
      earn_points: p.earn_points,
      earn_per_minor: p.earn_per_minor,
      points_validity_days: 730,
      refund_policy: "negative_balance",
      negative_floor: -5_000,
      transaction_fee_minor: 2,
      monthly_fee_minor: 5_000,
      breakage_share_bps: 5_000,
      roundup_match_bps: p.kind === "bank" ? 1_000 : 0,
    });
    await partners.changeStatus(staff, partnerId, { status: "approved" });
    await partners.changeStatus(staff, partnerId, { status: "active" });

    for (let i = 0; i < 2; i++) {
      const [given, family] = people[person++ % people.length]!;
      const enrolled = await members.enrol(partnerId, {
        customer_ref: `demo-${p.sector}-${i + 1}`,
        given_name: given,
        family_name: family,
        email: `${given}.${family}@example.com`.toLowerCase().normalize("NFD").replace(/[\u0300-\u036f]/g, ""),
        email_verified: false,
        date_of_birth: `19${80 + person}-0${(person % 9) + 1}-15`,
        consents: [{ purpose: "marketing", version: "2026-01", state: "given" }],
      });
      const memberId = (enrolled.member as { id: string }).id;
      const card = await cards.issue(partnerId, memberId, { form: "virtual" });
      creds.members.push({ member_id: memberId, enrolled_by: p.name, card_number: (card as { number: string }).number });
    }
    const scopes = p.kind === "bank" ? BANK_SCOPES : MERCHANT_SCOPES;
    const c = await clients.create({ partnerId, name: `${p.name} (demo)`, scopes }, actor);
    creds.clients.push({ partner: p.name, partner_id: partnerId, client_id: c.client.id, client_secret: c.secret!, scopes, audience: "partner" });
  }

  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(creds, null, 2) + "\n", { mode: 0o600 });
  deps.log.info({ partners: DEMO_PARTNERS.length, members: creds.members.length }, "demo network seeded");
  return creds;
}
