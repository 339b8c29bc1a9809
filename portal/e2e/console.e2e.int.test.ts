import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import type { Page } from "playwright-core";
import { CHROMIUM, hasChromium, launchBrowser, screenshot } from "./browser.ts";
import { fixedClock, startTestHub, type TestHub } from "../../test/harness.ts";
import { seedNetwork } from "../../test/factories/settlement.ts";
import { createPartnersService } from "../../gateway/src/partners/partners.service.ts";
import { createPortalUsers } from "../src/users/users.service.ts";

/**
 * The operator's settlement flow in a real headless Chromium (Debian's `chromium`, driven by
 * playwright-core): log in → approve an application → start a settlement run → see the statements
 * and the network report; and screenshots of the console's main pages, on a desktop and a phone.
 * Skipped, with a message, where Chromium is not installed (CI installs it).
 */
const TITLE = hasChromium ? "operator console in Chromium" : `operator console in Chromium — SKIPPED: no Chromium at ${CHROMIUM} (apt-get install -y chromium)`;
if (!hasChromium) process.stderr.write(`${TITLE}\n`);

const staff = { type: "system", id: "e2e" } as const;

let hub: TestHub;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
let applicantId: string;
const operator = { email: "finance.ops@example.com", password: "operator password e2e" };
const developerOfA = { email: "dev.a@example.com", password: "developer password e2e" };

const shot = (page: Page, name: string) => screenshot(page, `console-${name}`);

describe.skipIf(!hasChromium)(TITLE, () => {
  beforeAll(async () => {
    hub = await startTestHub({ config: { OUTBOX_POLL_MS: "20" } });
    // April 2026 of the settlement tests' network: three active partners and a month of traffic.
    const traffic = await seedNetwork(hub.db, fixedClock("2026-04-01T00:00:00Z"));
    const partners = createPartnersService(hub.deps);
    await partners.createSector(staff, { code: "pharmacy", name: "Pharmacy" });
    applicantId = (await partners.createPartner(staff, { name: "Green Cross Pharmacy", kind: "merchant", sector: "pharmacy" })).id;
    await createPortalUsers(hub.deps).create({ ...operator, name: "Finance Ops", role: "operator" });
    await createPortalUsers(hub.deps).create({ ...developerOfA, name: "Ada of Supermarket A", role: "developer", partnerId: traffic.partners.A });
    browser = await launchBrowser();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await hub?.close();
  });

  it("logs in, approves an application, runs April's settlement and reads the statements and the network report", async () => {
    const page = await browser.context.newPage();
    page.on("dialog", (d) => void d.accept());
    await page.goto(`${hub.url}/portal/login`);
    // Keyboard first: the skip link is the first stop.
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement && document.activeElement.textContent")).toBe("Skip to content");
    await page.getByLabel("Email").fill(operator.email);
    await page.getByLabel("Password").fill(operator.password);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.waitForURL("**/portal/console");
    await shot(page, "overview");

    await page.getByRole("link", { name: "Green Cross Pharmacy" }).first().click();
    await page.waitForURL(`**/portal/console/partners/${applicantId}`);
    await shot(page, "application");
    // The post's own answer, then the page it redirects to (the URL alone is the same before and after).
    const [approved] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === "POST" && r.url().endsWith(`/portal/console/partners/${applicantId}/status`)),
      page.getByRole("button", { name: "Approve application" }).click(),
    ]);
    expect(approved.status()).toBe(303);
    await page.waitForLoadState("load");
    expect(await page.locator(".flash-ok").textContent()).toContain("approve application — done");
    expect((await createPartnersService(hub.deps).getPartner(applicantId)).status).toBe("approved");

    await page.getByRole("link", { name: "Sectors" }).click();
    await shot(page, "sectors");
    await page.getByRole("link", { name: "Partners", exact: true }).click();
    await shot(page, "partners");

    await page.getByRole("link", { name: "Settlement" }).click();
    await page.getByLabel("Month (YYYY-MM, UTC)").fill("2026-04");
    await page.getByRole("button", { name: "Start the run" }).click();
    await page.waitForURL("**/portal/console/settlement/runs/run_2026-04");
    for (let i = 0; i < 100 && (await page.locator("#run-h .badge").textContent()) !== "closed"; i++) {
      await page.waitForTimeout(200);
      await page.reload();
    }
    expect(await page.locator("#run-h .badge").textContent()).toBe("closed");
    const statements = page.getByRole("table", { name: "Statements, one per partner" });
    expect(await statements.locator("tbody tr").count()).toBe(3);
    expect(await page.locator('[data-figure="network-sum-EUR"]').textContent()).toContain("balances");
    await shot(page, "settlement-run");

    await page.getByRole("button", { name: "Approve for payment" }).click();
    await page.waitForURL("**/portal/console/settlement/runs/run_2026-04");
    expect(await page.locator(".flash-ok").first().textContent()).toContain("approved for payment");

    await statements.getByRole("link", { name: "Supermarket A" }).click();
    expect(await page.locator('[data-figure="net"]').textContent()).toBe("−101.34 EUR");
    await shot(page, "statement");
    await page.close();
  }, 180_000);

  it("a developer disputes a line of the closed statement; the operator sees it and resolves it; both read the trail", async () => {
    // The developer in a browser of their own (another profile: another session).
    const devBrowser = await launchBrowser();
    const pages: Page[] = [devBrowser.page];
    onTestFailed(async () => {
      for (const p of pages) if (!p.isClosed()) process.stderr.write(`${p.url()}\n${(await p.textContent("main").catch(() => "")) ?? ""}\n`);
    });
    // A form post and the page it redirects to, checked: the post answered 303.
    const submit = async (p: Page, button: string, action: RegExp) => {
      const [res] = await Promise.all([p.waitForResponse((r) => r.request().method() === "POST" && action.test(r.url())), p.getByRole("button", { name: button }).click()]);
      expect(res.status(), `${button}: ${res.url()}`).toBe(303);
      await p.waitForLoadState("load");
    };
    try {
      const dev = devBrowser.page;
      await dev.goto(`${hub.url}/portal/login`);
      await dev.getByLabel("Email").fill(developerOfA.email);
      await dev.getByLabel("Password").fill(developerOfA.password);
      await dev.getByRole("button", { name: "Log in" }).click();
      await dev.waitForURL("**/portal/dev");
      await dev.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Statements" }).click();
      await dev.getByRole("link", { name: "live" }).click();
      await dev.getByRole("link", { name: "2026-04" }).click();
      await dev.waitForURL("**/portal/dev/statements/stm_*");
      expect(await dev.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Statements" }).getAttribute("aria-current")).toBe("page");
      expect(await dev.getByRole("link", { name: "Download PDF" }).getAttribute("href")).toMatch(/statement\.pdf\?env=live$/);
      await dev.getByRole("link", { name: "Dispute line 1" }).click();
      await dev.getByLabel("Why is this line wrong?").fill("Two of these purchases were refunded the same day");
      await dev.getByLabel("Amount you claim (EUR, optional)").fill("1.50");
      await submit(dev, "Open the dispute", /\/lines\/1\/dispute\?env=live$/);
      await dev.waitForURL(/#dispute-dsp_/);
      const mine = dev.locator("article.dispute").first();
      expect(await mine.locator(".badge").textContent()).toBe("open");
      expect(await mine.locator(".trail").textContent()).toContain("You opened the dispute (1.50 EUR)");
      await screenshot(dev, "developer-statement-dispute");

      // The operator: the console's Disputes section lists it; resolve it with the claimed adjustment.
      const page = await browser.context.newPage();
      pages.push(page);
      page.on("dialog", (d) => void d.accept());
      await page.goto(`${hub.url}/portal/console`);
      if (page.url().includes("/portal/login")) {
        await page.getByLabel("Email").fill(operator.email);
        await page.getByLabel("Password").fill(operator.password);
        await page.getByRole("button", { name: "Log in" }).click();
        await page.waitForURL("**/portal/console");
      }
      expect(await page.locator('[data-figure="open-disputes"]').textContent()).toBe("1");
      await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Disputes" }).click();
      await shot(page, "disputes");
      await page.getByRole("link", { name: "2026-04 · line 1" }).click();
      await page.waitForURL("**/portal/console/disputes/dsp_*");
      expect(await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Disputes" }).getAttribute("aria-current")).toBe("page");
      expect(await page.locator(".trail").textContent()).toContain("The partner opened the dispute");
      await page.getByLabel("Outcome").selectOption("accepted");
      await page.getByLabel("Note to the partner").fill("Confirmed: two refunds were priced as sales");
      await submit(page, "Resolve the dispute", /\/portal\/console\/disputes\/dsp_[0-9a-z]+\/resolve$/);
      expect(await page.locator(".flash-ok").first().textContent()).toContain("1.50 EUR booked into");
      expect(await page.locator("article.dispute .badge").first().textContent()).toBe("accepted");
      await shot(page, "dispute");
      await page.setViewportSize({ width: 375, height: 812 });
      await page.reload();
      await expect.poll(() => page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), { message: "dispute on a phone", timeout: 5_000 }).toBe(true);
      await shot(page, "phone-dispute");
      await page.close();

      // The developer sees the resolution and the operator's step in the trail.
      await dev.reload();
      const resolved = dev.locator("article.dispute").first();
      expect(await resolved.locator(".badge").textContent()).toBe("accepted");
      expect(await resolved.locator(".trail").textContent()).toContain("The operator accepted it (1.50 EUR)");
      expect(await resolved.locator('[data-figure="adjustment"]').textContent()).toContain("1.50 EUR, booked into");
      await dev.setViewportSize({ width: 375, height: 812 });
      await expect.poll(() => dev.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), { message: "statement on a phone", timeout: 5_000 }).toBe(true);
      await screenshot(dev, "developer-statement-dispute-resolved-phone");
    } finally {
      await devBrowser.close();
    }
  }, 180_000);

  it("takes screenshots of the rules, tiers and analytics pages, and of the console on a phone", async () => {
    // The same browser profile, so normally still logged in from the flow above.
    const page = await browser.context.newPage();
    await page.goto(`${hub.url}/portal/console`);
    if (page.url().includes("/portal/login")) {
      await page.getByLabel("Email").fill(operator.email);
      await page.getByLabel("Password").fill(operator.password);
      await page.getByRole("button", { name: "Log in" }).click();
      await page.waitForURL("**/portal/console");
    }
    for (const [name, url] of [
      ["rules", "/portal/console/rules"],
      ["rule-new", "/portal/console/rules/new"],
      ["tiers", "/portal/console/tiers"],
      ["settlement", "/portal/console/settlement"],
      ["analytics", "/portal/console/analytics?days=90"],
    ] as const) {
      const res = await page.goto(`${hub.url}${url}`);
      expect(res?.status(), url).toBe(200);
      await shot(page, name);
    }
    expect(await page.locator("svg.chart").count()).toBe(4);

    // A phone: the same session, a narrow viewport; nothing overflows the page sideways.
    await page.setViewportSize({ width: 375, height: 812 });
    for (const [name, url] of [
      ["phone-settlement-run", "/portal/console/settlement/runs/run_2026-04"],
      ["phone-analytics", "/portal/console/analytics"],
      // The ladder form's table holds visually hidden (absolute) labels: they must stay inside its scroller.
      ["phone-tiers", "/portal/console/tiers"],
    ] as const) {
      await page.goto(`${hub.url}${url}`);
      // Polled: right after load the wide tables may not have been laid out into their scrolling
      // wrappers yet (seen once the payments table joined the run page).
      await expect.poll(() => page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), { message: name, timeout: 5_000 }).toBe(true);
      await shot(page, name);
    }
    await page.close();
  }, 180_000);
});
