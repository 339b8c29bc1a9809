import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { applicant, PortalClient } from "../../../test/portal.ts";
import { operatorClient } from "../../../test/console.ts";
import { ledgerScenario } from "../../../test/factories/ledger.ts";
import { createSector } from "../../../test/factories/network.ts";
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
