import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { applicant, PortalClient } from "../../../test/portal.ts";
import { operatorClient } from "../../../test/console.ts";
import { createPartnersService, type PartnersService } from "../../../gateway/src/partners/partners.service.ts";
import { readContract } from "./partners.pages.ts";

let t: TestHub;
let partners: PartnersService;
let op: PortalClient;
let opActor: string;
const staff = { type: "system", id: "test" } as const;
let seq = 0;

async function applied(sector: string) {
  return partners.createPartner(staff, { name: `Shop ${++seq} <b>`, kind: "merchant", sector });
}

async function sector() {
  const code = `sec-${++seq}-${Date.now().toString(36)}`;
  await partners.createSector(staff, { code, name: `Sector ${seq}` });
  return code;
}

beforeAll(async () => {
  t = await startTestHub({ workers: false });
  partners = createPartnersService(t.deps);
  await partners.createSector(staff, { code: "grocery", name: "Grocery" });
  const o = await operatorClient(t);
  op = o.client;
  opActor = `portal:${o.userId}`;
});
afterAll(async () => t?.close());

describe("console: access", () => {
  it("shows the console's partner pages to an operator, 404 to a developer, the login page to nobody", async () => {
    for (const path of ["/portal/console", "/portal/console/partners", "/portal/console/partners?status=applied", "/portal/console/sectors"]) {
      const res = await op.get(path);
      expect(res.status, path).toBe(200);
      expect(res.text).toContain("<h1>");
    }
    const dev = new PortalClient(t.url);
    await dev.submit("/portal/signup", "/portal/signup", applicant());
    expect((await dev.get("/portal/console/partners")).status).toBe(404);
    expect((await dev.get("/portal/console/sectors")).status).toBe(404);
    const anon = await new PortalClient(t.url).get("/portal/console/partners");
    expect(anon.status).toBe(303);
    expect(anon.location).toContain("/portal/login?next=");
  });

  it("names a partner's sector in words (the sector's name, not its code) on the overview, the list and the partner's page", async () => {
    const code = await sector();
    const p = await applied(code);
    const name = `Sector ${seq - 1}`;
    const link = `<a href="/portal/console/sectors#sector-${code}">${name}</a>`;
    expect((await op.get("/portal/console/partners")).text).toContain(link);
    expect((await op.get(`/portal/console/partners/${p.id}`)).text).toContain(link);
    expect((await op.get("/portal/console")).text).toContain(`(merchant, ${name}, `);
  });

  it("escapes what partners typed (a company name with markup)", async () => {
    const p = await applied(await sector());
    const res = await op.get(`/portal/console/partners/${p.id}`);
    expect(res.text).toContain("&lt;b&gt;");
    expect(res.text).not.toContain("Shop " + String(seq) + " <b>");
  });

  it("marks the Partners section as the current page on a partner's own page (a sub-page), and nothing else", async () => {
    const p = await applied(await sector());
    const res = await op.get(`/portal/console/partners/${p.id}`);
    const current = [...res.text.matchAll(/<a href="([^"]+)" aria-current="page">/g)].map((m) => m[1]);
    expect(current).toEqual(["/portal/console/partners"]);
    const overview = await op.get("/portal/console");
    expect([...overview.text.matchAll(/<a href="([^"]+)" aria-current="page">/g)].map((m) => m[1])).toEqual(["/portal/console"]);
  });

  it("refuses an action without the CSRF token (403) and changes nothing", async () => {
    const p = await applied(await sector());
    await op.get(`/portal/console/partners/${p.id}`);
    const res = await op.request("POST", `/portal/console/partners/${p.id}/status`, { form: { status: "approved" }, csrf: false });
    expect(res.status).toBe(403);
    expect((await partners.getPartner(p.id)).status).toBe("applied");
  });

  it("answers 404 for a partner that does not exist", async () => {
    expect((await op.get("/portal/console/partners/ptn_nope")).status).toBe(404);
    expect((await op.submit("/portal/console", "/portal/console/partners/ptn_nope/status", { status: "approved" })).status).toBe(404);
  });
});

describe("console: applications and the non-compete rule", () => {
  it("approves an application in a free sector: approved in the service, audited with the operator as actor", async () => {
    const s = await sector();
    const p = await applied(s);
    const res = await op.submit(`/portal/console/partners/${p.id}`, `/portal/console/partners/${p.id}/status`, { status: "approved", reason: "" });
    expect(res.status).toBe(303);
    expect((await partners.getPartner(p.id)).status).toBe("approved");
    const audit = await partners.listAudit({ objectType: "partner", objectId: p.id, limit: 5 });
    expect(audit.items[0]).toMatchObject({ action: "partner.status_changed", actor: { type: "admin", id: opActor } });
    const page = await op.get(`/portal/console/partners/${p.id}`);
    expect(page.text).toContain("approve application — done");
    // The audit trail names the operator, not "portal:usr_…".
    expect(page.text).toMatch(/<td>admin: Operator \d+<\/td>/);
    const sectors = await op.get("/portal/console/sectors");
    expect(sectors.text).toContain(`id="sector-${s}"`);
  });

  it("shows a taken sector, refuses to admit a rival without a reason (409, unchanged), admits it with one and records it", async () => {
    const s = await sector();
    const first = await applied(s);
    await partners.changeStatus(staff, first.id, { status: "approved" });
    const rival = await applied(s);

    const list = await op.get("/portal/console/partners?status=applied");
    expect(list.text).toContain("sector taken");
    const detail = await op.get(`/portal/console/partners/${rival.id}`);
    expect(detail.text).toContain("Reason for the non-compete override");

    const refused = await op.submit(`/portal/console/partners/${rival.id}`, `/portal/console/partners/${rival.id}/status`, { status: "approved" });
    expect(refused.status).toBe(409);
    expect(refused.text).toContain("give the reason for the override");
    expect((await partners.getPartner(rival.id)).status).toBe("applied");

    const reason = "Different catchment: rival is rural only";
    const ok = await op.submit(`/portal/console/partners/${rival.id}`, `/portal/console/partners/${rival.id}/status`, { status: "approved", override_reason: reason });
    expect(ok.status).toBe(303);
    const after = await partners.getPartner(rival.id);
    expect(after.status).toBe("approved");
    expect(after.non_compete_override).toMatchObject({ reason, by: opActor, conflicting_partner_ids: [first.id] });
    const audit = await partners.listAudit({ objectType: "partner", objectId: rival.id, limit: 1 });
    expect(audit.items[0]).toMatchObject({ action: "partner.status_changed.non_compete_override", reason });
    const sectors = await op.get("/portal/console/sectors");
    expect(sectors.text).toContain("shared by override");
    expect(sectors.text).toContain(reason);
  });

  it("suspends only with a reason, reactivates and terminates; each move in the service and the audit log", async () => {
    const p = await applied(await sector());
    await partners.changeStatus(staff, p.id, { status: "approved" });
    await partners.changeStatus(staff, p.id, { status: "active" });
    const path = `/portal/console/partners/${p.id}`;

    const noReason = await op.submit(path, `${path}/status`, { status: "suspended", reason: "" });
    expect(noReason.status).toBe(422);
    expect(noReason.text).toContain("Give a reason.");
    expect((await partners.getPartner(p.id)).status).toBe("active");

    expect((await op.submit(path, `${path}/status`, { status: "suspended", reason: "Unpaid March statement" })).status).toBe(303);
    expect((await partners.getPartner(p.id)).status).toBe("suspended");
    expect((await partners.listAudit({ objectType: "partner", objectId: p.id, limit: 1 })).items[0]!.reason).toBe("Unpaid March statement");

    expect((await op.submit(path, `${path}/status`, { status: "active" })).status).toBe(303);
    expect((await partners.getPartner(p.id)).status).toBe("active");

    // A move that does not exist from here: 409 on the page, nothing changes.
    const bad = await op.submit(path, `${path}/status`, { status: "approved" });
    expect(bad.status).toBe(409);
    expect((await partners.getPartner(p.id)).status).toBe("active");

    expect((await op.submit(path, `${path}/status`, { status: "terminated", reason: "Contract ended" })).status).toBe(303);
    expect((await partners.getPartner(p.id)).status).toBe("terminated");
    const page = await op.get(path);
    expect(page.text).toContain("Terminated: no further moves.");
  });
});

describe("console: contract versions", () => {
  const form = (over: Record<string, string> = {}) => ({
    effective_from: "2099-01-01T00:00",
    currency: "EUR",
    issuance_price: "0.0105",
    redemption_price: "0.008",
    earn_points: "1",
    earn_per: "10.00",
    points_validity_days: "730",
    refund_policy: "negative_balance",
    negative_floor: "-1000",
    transaction_fee: "0.05",
    monthly_fee: "100.00",
    breakage_share: "30",
    cashback_funding: "0",
    roundup_match: "0",
    settlement_period: "monthly",
    ...over,
  });

  it("adds a version from decimals typed in the form, kept exactly in micros and minor units", async () => {
    const p = await applied(await sector());
    const path = `/portal/console/partners/${p.id}`;
    expect((await op.get(`${path}/contracts/new`)).status).toBe(200);
    const res = await op.submit(`${path}/contracts/new`, `${path}/contracts`, form());
    expect(res.status).toBe(303);
    const [v1] = await partners.listContractVersions(p.id);
    expect(v1).toMatchObject({
      version: 1,
      effective_from: "2099-01-01T00:00:00.000Z",
      currency: "EUR",
      issuance_price_micros: 10_500,
      redemption_price_micros: 8_000,
      earn_points: 1,
      earn_per_minor: 1_000,
      transaction_fee_minor: 5,
      monthly_fee_minor: 10_000,
      breakage_share_bps: 3_000,
      negative_floor: -1_000,
    });
    const audit = await partners.listAudit({ objectType: "partner", objectId: p.id, limit: 1 });
    expect(audit.items[0]).toMatchObject({ action: "contract.version_created", actor: { id: opActor } });
    const second = await op.submit(`${path}/contracts/new`, `${path}/contracts`, form({ effective_from: "2099-06-01T00:00", issuance_price: "0.012" }));
    expect(second.status).toBe(303);
    expect((await partners.listContractVersions(p.id)).map((c) => c.version)).toEqual([1, 2]);
    expect((await op.get(path)).text).toContain("0.012000");
  });

  it("refuses bad fields (422, each named) and a start in the past (422), adding nothing", async () => {
    const p = await applied(await sector());
    const path = `/portal/console/partners/${p.id}`;
    const bad = await op.submit(`${path}/contracts/new`, `${path}/contracts`, form({ currency: "euro", issuance_price: "0.0000001", breakage_share: "101", earn_per: "" }));
    expect(bad.status).toBe(422);
    expect(bad.text).toContain("Three letters, ISO 4217");
    expect(bad.text).toContain("at most 6 decimals");
    expect(bad.text).toContain("between 0 and 100");
    expect(bad.text).toContain('aria-invalid="true"');
    const past = await op.submit(`${path}/contracts/new`, `${path}/contracts`, form({ effective_from: "2001-01-01T00:00" }));
    expect(past.status).toBe(422);
    expect(past.text).toContain("before now");
    expect(await partners.listContractVersions(p.id)).toEqual([]);
  });

  it("reads form decimals without floats: 0.1 + 0.2 style values stay exact", () => {
    const { terms } = readContract({ ...form(), issuance_price: "0.300001", transaction_fee: "0.07", monthly_fee: "1234567.89" });
    expect(terms).toMatchObject({ issuance_price_micros: 300_001, transaction_fee_minor: 7, monthly_fee_minor: 123_456_789 });
  });
});
