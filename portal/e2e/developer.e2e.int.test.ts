import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { startTestHub, type TestHub } from "../../test/harness.ts";
import { createPartnersService } from "../../gateway/src/partners/partners.service.ts";
import { createPortalUsers } from "../src/users/users.service.ts";
import { hasChromium, launchBrowser, screenshot } from "./browser.ts";

if (!hasChromium) {
  // eslint-disable-next-line no-console
  console.warn("portal e2e skipped: /usr/bin/chromium is not installed (apt-get install -y chromium)");
}

/**
 * The developer's path in a real browser: sign up → the operator approves → a sandbox client →
 * a token → an earn call from the API reference's "try it" → that call in the request log.
 */
describe.runIf(hasChromium)("developer portal in Chromium", () => {
  let t: TestHub;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  const email = `e2e.${Date.now()}@example.com`;
  const password = "e2e password long enough";

  beforeAll(async () => {
    t = await startTestHub();
    const partners = createPartnersService(t.deps);
    for (const code of ["grocery", "fuel"]) await partners.createSector({ type: "system", id: "e2e" }, { code, name: code[0]!.toUpperCase() + code.slice(1) });
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  const nav = (name: string) => browser.page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name });

  it("goes from sign-up to an earn call from try-it that shows in the request log", async () => {
    const { page } = browser;
    const problems: string[] = [];
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
    page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
    page.on("response", (r) => r.status() >= 400 && problems.push(`${r.status()} ${r.url()}`));
    onTestFailed(() => {
      // eslint-disable-next-line no-console
      console.error(problems.join("\n"), page.url());
    });
    await page.goto(`${t.url}/portal/signup`);
    await screenshot(page, "01-signup");
    await page.getByLabel("Company name").fill("E2E Groceries");
    await page.getByLabel("Kind of partner").selectOption("merchant");
    await page.getByLabel("Sector").selectOption("grocery");
    await page.getByLabel("Your name").fill("Erin Engineer");
    await page.getByLabel("Work email").fill(email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Apply" }).click();
    await page.waitForURL(/\/portal\/dev$/);
    await expect(page.getByText("waiting for the operator")).toBeTruthy();
    expect(await page.textContent("main")).toContain("applied");
    await screenshot(page, "02-overview-pending");

    // The operator approves (a service call until the console's approval page exists).
    const user = (await createPortalUsers(t.deps).findByEmail(email))!;
    await createPartnersService(t.deps).changeStatus({ type: "admin", id: "e2e-operator" }, user.partner_id!, { status: "approved" });
    await page.reload();
    expect(await page.textContent("main")).toContain("approved");

    // A sandbox client: the secret is shown once.
    await nav("Credentials").click();
    await page.getByRole("button", { name: "Create sandbox client" }).click();
    const secret = (await page.locator("#shown-secret").textContent())!.trim();
    expect(secret).toMatch(/^hcs_sandbox_/);
    const clientId = /Client (cli_test_[0-9a-z]+) created/.exec((await page.textContent("main"))!)![1]!;
    await screenshot(page, "03-credentials");

    // The secret works at the token endpoint, as the quick start shows.
    const tok = await fetch(`${t.url}/oauth/token`, { method: "POST", headers: { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString("base64")}`, "content-type": "application/x-www-form-urlencoded" }, body: "grant_type=client_credentials" });
    expect(tok.status).toBe(200);

    await nav("Quick start").click();
    expect(await page.textContent("#qs-1")).toContain(clientId);
    await screenshot(page, "04-quickstart");
    const card = /"card_number":"(\d+)"/.exec((await page.textContent("#qs-2"))!)![1]!;

    // Try it: a sandbox token from the portal, then POST /v1/earn from swagger-ui.
    await nav("API reference").click();
    await page.waitForSelector(".swagger-ui .opblock");
    await page.getByRole("button", { name: "Use my sandbox token" }).click();
    await page.waitForSelector('#tryit-status[data-ready="true"]');
    const op = page.locator('[id$="-earnPoints"]').first();
    await op.locator(".opblock-summary").first().click();
    await op.getByRole("button", { name: "Try it out" }).click();
    await op.locator('tr[data-param-name="Idempotency-Key"] input').fill(`e2e-${Date.now()}`);
    await op.locator("textarea.body-param__text").fill(JSON.stringify({ card_number: card, partner_transaction_id: `e2e-${Date.now()}`, amount_minor: 12345, currency: "EUR" }));
    await op.getByRole("button", { name: "Execute" }).click();
    const status = op.locator(".live-responses-table tbody .response-col_status").first();
    await status.waitFor();
    expect((await status.textContent())!.trim()).toMatch(/^201/);
    const requestId = /x-request-id: (\S+)/i.exec((await op.locator(".live-responses-table").first().textContent()) ?? "")?.[1];
    await screenshot(page, "05-reference-try-it");

    // The call is in the request log (written off the hot path, within a second).
    await page.goto(`${t.url}/portal/dev/requests`);
    for (let i = 0; i < 20 && !((await page.textContent("main")) ?? "").includes("/v1/earn"); i++) {
      await new Promise((r) => setTimeout(r, 500));
      await page.reload();
    }
    const row = page.locator("tbody tr", { hasText: "/v1/earn" }).first();
    expect(await row.textContent()).toContain("201");
    expect(await row.textContent()).toContain("POST");
    if (requestId) expect(await row.textContent()).toContain(requestId);
    await screenshot(page, "06-requests");
    await nav("Usage").click();
    expect(await page.locator("svg.chart").count()).toBe(2);
    await screenshot(page, "07-usage");

    // The test bank feed: an auth on a test card shows pending points, its clearing books them.
    await nav("Test bank").click();
    await page.waitForURL("**/portal/dev/test-bank");
    expect(await nav("Test bank").getAttribute("aria-current")).toBe("page");
    // The first test card's member also holds the points of the try-it earn above.
    const pointsCell = page.locator('td[data-figure^="points-"]').first();
    const before = Number((await pointsCell.textContent())!.replace(/,/g, ""));
    const newPurchase = page.getByRole("region", { name: "New purchase" });
    await newPurchase.getByLabel("Test card").selectOption({ index: 0 });
    await newPurchase.getByLabel("First event").selectOption("auth");
    await newPurchase.getByLabel("Amount (EUR)").fill("250.00");
    await newPurchase.getByRole("button", { name: "Send the event" }).click();
    await page.waitForURL(/\/portal\/dev\/test-bank#purchase-/);
    const purchase = page.locator("article.purchase").first();
    expect(await purchase.locator(".badge").textContent()).toBe("authorized");
    expect(await purchase.locator('[data-figure="pending"]').textContent()).toContain("25 points");
    // Keyboard only: the next event's form is reachable and sent without the mouse.
    await purchase.getByLabel("Next event").selectOption("clearing");
    await purchase.getByLabel("Amount (EUR)").focus();
    await Promise.all([page.waitForEvent("load"), page.keyboard.press("Enter")]);
    const cleared = page.locator("article.purchase").first();
    expect(await cleared.locator(".badge").textContent()).toBe("cleared");
    expect(await cleared.locator('[data-figure="booked"]').textContent()).toContain("25 points");
    expect(Number((await pointsCell.textContent())!.replace(/,/g, ""))).toBe(before + 25);
    await screenshot(page, "09-test-bank");

    // On a phone: the same pages fit the screen without sideways scrolling.
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [name, url] of [
      ["08-overview-phone", "/portal/dev"],
      ["10-test-bank-phone", "/portal/dev/test-bank"],
    ] as const) {
      await page.goto(`${t.url}${url}`);
      await expect.poll(() => page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth"), { message: name, timeout: 5_000 }).toBeLessThanOrEqual(0);
      await screenshot(page, name);
    }
  }, 300_000);
});
