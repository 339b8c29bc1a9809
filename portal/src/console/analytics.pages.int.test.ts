import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { applicant, PortalClient } from "../../../test/portal.ts";
import { operatorClient } from "../../../test/console.ts";
import { ledgerScenario } from "../../../test/factories/ledger.ts";
import { createSector } from "../../../test/factories/network.ts";
import { partnerToken } from "../../../test/factories/auth.ts";
import { createPortalUsers } from "../users/users.service.ts";
import { percent } from "./analytics.pages.ts";

let t: TestHub;
let op: PortalClient;

beforeAll(async () => {
  t = await startTestHub({ workers: false });
  await createSector(t.db, "grocery");
  op = (await operatorClient(t)).client;
});
afterAll(async () => t?.close());

describe("console: network analytics", () => {
  it("draws the measures of today's traffic as inline SVG with their figures; developers get 404", async () => {
    const s = await ledgerScenario(t);
    expect((await s.post("/v1/earn", { member_id: s.member.id, partner_transaction_id: "a1", amount_minor: 100_000, currency: "EUR" })).status).toBe(201);
    expect((await s.post("/v1/burn", { member_id: s.member.id, partner_transaction_id: "b1", points: 25, amount_minor: 250, currency: "EUR" })).status).toBe(201);
    const res = await op.get("/portal/console/analytics?days=30");
    expect(res.status).toBe(200);
    // 100 points issued, 25 redeemed: 75 outstanding, a 25 % redemption rate; one member spent all of it.
    expect(res.text).toContain('data-figure="liability">75<');
    expect(res.text).toContain('data-figure="flows">100 / 25<');
    expect(res.text).toContain('data-figure="redemption-rate">25.00 %<');
    expect(res.text).toContain('data-figure="active">1<');
    expect(res.text).toContain('data-figure="top-fifth">100.00 %<');
    for (const id of ["chart-liability", "chart-flows", "chart-active", "chart-rfm"]) expect(res.text).toContain(`id="${id}"`);
    expect(res.text).toContain('role="img"');
    expect(res.text).not.toMatch(/<script(?![^>]*src="\/portal\/static\/)/);

    // A developer's sandbox traffic — a big spender earning and burning at a sandbox partner, a
    // second active member — moves none of the operator's figures.
    const form = applicant();
    const dev0 = new PortalClient(t.url);
    expect((await dev0.submit("/portal/signup", "/portal/signup", form)).status).toBe(303);
    const user = (await createPortalUsers(t.deps).findByEmail(form.email))!;
    const [card] = (await t.db("portal_sandbox_members").where({ partner_id: user.sandbox_partner_id }).select("card_number")) as Array<{ card_number: string }>;
    const sandboxToken = await partnerToken(t, user.sandbox_partner_id!, ["earn:write", "burn:write"]);
    await new Promise((r) => setTimeout(r, 1_100)); // the sandbox contract starts a second after sign-up
    const sbx = (path: string, body: unknown) => s.post(path, body, `sbx-${path}-${Date.now()}`, sandboxToken);
    expect((await sbx("/v1/earn", { card_number: card!.card_number, partner_transaction_id: "s1", amount_minor: 5_000_000, currency: "EUR" })).status).toBe(201);
    expect((await sbx("/v1/burn", { card_number: card!.card_number, partner_transaction_id: "s2", points: 100, amount_minor: 1_000, currency: "EUR" })).status).toBe(201);
    const again = await op.get("/portal/console/analytics?days=30");
    for (const figure of ['data-figure="liability">75<', 'data-figure="flows">100 / 25<', 'data-figure="redemption-rate">25.00 %<', 'data-figure="active">1<', 'data-figure="top-fifth">100.00 %<']) {
      expect(again.text).toContain(figure);
    }

    // A window that is not offered falls back to 30 days; a bad currency to EUR.
    expect((await op.get("/portal/console/analytics?days=7&currency=%3Cx%3E")).status).toBe(200);

    const dev = new PortalClient(t.url);
    await dev.submit("/portal/signup", "/portal/signup", applicant());
    expect((await dev.get("/portal/console/analytics")).status).toBe(404);
  });

  it("formats basis points exactly", () => {
    expect(percent(935)).toBe("9.35 %");
    expect(percent(10_000)).toBe("100.00 %");
    expect(percent(5)).toBe("0.05 %");
    expect(percent(null)).toBe("—");
  });
});
