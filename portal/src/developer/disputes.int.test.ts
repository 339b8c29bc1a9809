import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixedClock, startTestHub, type TestHub } from "../../../test/harness.ts";
import { applicant, PortalClient } from "../../../test/portal.ts";
import { operatorClient } from "../../../test/console.ts";
import { seedNetwork, type MonthTraffic } from "../../../test/factories/settlement.ts";
import { createSector } from "../../../test/factories/network.ts";
import { createClearingService } from "../../../settlement/src/clearing.service.ts";
import { createStatementsService } from "../../../settlement/src/statements.service.ts";
import { listAudit } from "../../../gateway/src/partners/audit.service.ts";
import { createPortalUsers } from "../users/users.service.ts";

// April 2026 of the settlement tests' network, closed by the workers; Supermarket A's developer
// disputes a line of A's statement in the portal, the operator resolves it in the console.
let hub: TestHub;
let t: MonthTraffic;
let dev: PortalClient;
let devId: string;
let op: PortalClient;
let statementId: string;
let line: { line_no: number; description: string };
// The hub's time: May 2026, after April ended (so April can be cleared), before May did.
const hubClock = fixedClock("2026-05-10T09:00:00Z");
const clearing = () => createClearingService({ db: hub.db, clock: hub.clock, log: hub.deps.log });
async function closeMonth(period: string) {
  await clearing().startRun(period);
  for (let i = 0; i < 300 && (await clearing().getRun(`run_${period}`)).run.status === "running"; i++) await new Promise((r) => setTimeout(r, 100));
  expect((await clearing().getRun(`run_${period}`)).run.status).toBe("closed");
}

beforeAll(async () => {
  hub = await startTestHub({ clock: hubClock, config: { OUTBOX_POLL_MS: "20" } });
  await createSector(hub.db, "grocery");
  t = await seedNetwork(hub.db, fixedClock("2026-04-01T00:00:00Z"));
  await closeMonth("2026-04");
  const email = `finance.a.${Date.now()}@example.com`;
  devId = (await createPortalUsers(hub.deps).create({ email, name: "A's developer", role: "developer", password: "developer password 1", partnerId: t.partners.A })).id;
  dev = new PortalClient(hub.url);
  expect((await dev.submit("/portal/login", "/portal/login", { email, password: "developer password 1" })).status).toBe(303);
  op = (await operatorClient(hub)).client;
  const [st] = (await createStatementsService({ db: hub.db }).list(t.partners.A, {})).items;
  statementId = st!.id;
  const full = await createStatementsService({ db: hub.db }).get(t.partners.A, statementId);
  line = full.lines[0]!;
}, 60_000);
afterAll(async () => hub?.close());

const disputesOfA = () => hub.db("settlement_disputes").where({ partner_id: t.partners.A }).select("*");
const statementPage = () => `/portal/dev/statements/${statementId}?env=live`;
const formPage = () => `/portal/dev/statements/${statementId}/lines/${line.line_no}/dispute?env=live`;

describe("statement disputes: the developer disputes a line, the operator resolves it", () => {
  it("links the CSV and the PDF, and a dispute form for every line", async () => {
    const list = await dev.get("/portal/dev/statements?env=live");
    expect(list.text).toContain(`/portal/dev/statements/${statementId}/statement.pdf?env=live`);
    const page = await dev.get(statementPage());
    expect(page.status).toBe(200);
    expect(page.text).toContain("Download PDF");
    // A owes the operator for April: said in words, not as the service's code.
    expect(page.text).toContain("— You pay the operator");
    expect(page.text).toContain(`href="/portal/dev/statements/${statementId}/lines/${line.line_no}/dispute?env=live"`);
    expect(page.text).toContain("No line of this statement is disputed.");
    expect(page.text).not.toContain("Seam:");
    const pdf = await fetch(`${hub.url}/portal/dev/statements/${statementId}/statement.pdf?env=live`, { headers: { cookie: `hub_portal_sid=${dev.sid}` } });
    expect(pdf.status).toBe(200);
    expect(pdf.headers.get("content-type")).toBe("application/pdf");
    const bytes = Buffer.from(await pdf.arrayBuffer());
    expect(bytes.subarray(0, 5).toString()).toBe("%PDF-");
    const { pdf_sha256 } = await hub.db("settlement_statements").where({ id: statementId }).first("pdf_sha256");
    expect(createHash("sha256").update(bytes).digest("hex")).toBe(pdf_sha256);
  });

  it("refuses another partner's developer (404), a post without CSRF (403) and an empty reason (422), opening nothing", async () => {
    const other = new PortalClient(hub.url);
    await other.submit("/portal/signup", "/portal/signup", applicant());
    expect((await other.get(statementPage())).status).toBe(404);
    expect((await other.get(formPage())).status).toBe(404);
    expect((await other.request("POST", formPage(), { form: { reason: "not mine", amount_claimed: "" } })).status).toBe(404);
    expect((await other.get(`/portal/dev/statements/${statementId}/statement.pdf?env=live`)).status).toBe(404);
    await dev.get(formPage());
    expect((await dev.request("POST", formPage(), { form: { reason: "no token" }, csrf: false })).status).toBe(403);
    const empty = await dev.request("POST", formPage(), { form: { reason: "", amount_claimed: "0" } });
    expect(empty.status).toBe(422);
    expect(empty.text).toContain("Say why the line is wrong.");
    expect(empty.text).toContain("Give an amount other than zero");
    expect((await dev.submit(formPage(), `/portal/dev/statements/${statementId}/lines/999/dispute?env=live`, { reason: "no such line" })).status).toBe(404);
    expect(await disputesOfA()).toHaveLength(0);
  });

  it("opens a dispute as the partner, shows it with its trail, and refuses a second open dispute on the line (409)", async () => {
    const res = await dev.submit(formPage(), formPage(), { reason: "Two of these transactions were refunded the same day", amount_claimed: "1.50" });
    expect(res.status).toBe(303);
    const [d] = await disputesOfA();
    expect(d).toMatchObject({ statement_id: statementId, line_no: line.line_no, status: "open", amount_claimed_minor: 150n });
    expect(res.location).toBe(`/portal/dev/statements/${statementId}?env=live#dispute-${d.id}`);
    const trail = await hub.db("settlement_dispute_trail").where({ dispute_id: d.id }).select("*");
    expect(trail).toMatchObject([{ kind: "opened", actor: "partner", actor_client_id: `portal:${devId}` }]);
    // The partner is told through its events too (dispute.opened), as from the API.
    expect(await hub.db("events").where({ partner_id: t.partners.A, type: "dispute.opened" }).first()).toBeTruthy();

    const page = await dev.get(statementPage());
    expect(page.text).toContain(`id="dispute-${d.id}"`);
    expect(page.text).toContain('<span class="badge badge-open">open</span>');
    expect(page.text).toContain("<strong>You</strong> opened the dispute (1.50 EUR)");
    expect(page.text).toContain(`<a href="#dispute-${d.id}">Disputed</a>`);

    const again = await dev.submit(formPage(), formPage(), { reason: "again" });
    expect(again.status).toBe(409);
    expect(again.text).toContain("already has an open dispute");
    expect(await disputesOfA()).toHaveLength(1);
  });

  it("shows the dispute to the operator, who resolves it with an adjustment in the next open month; both sides see the trail", async () => {
    const [d] = await disputesOfA();
    expect((await op.get("/portal/console")).text).toContain('data-figure="open-disputes">1<');
    const list = await op.get("/portal/console/disputes");
    expect(list.status).toBe(200);
    expect(list.text).toContain(`/portal/console/disputes/${d.id}`);
    expect(list.text).toContain("Supermarket A");
    const detail = await op.get(`/portal/console/disputes/${d.id}`);
    expect(detail.text).toContain("Two of these transactions were refunded the same day");
    expect(detail.text).toContain("<strong>The partner</strong> opened the dispute");
    expect([...detail.text.matchAll(/<a href="([^"]+)" aria-current="page">/g)].map((m) => m[1])).toEqual(["/portal/console/disputes"]);
    const onStatement = await op.get(`/portal/console/settlement/runs/run_2026-04/statements/${statementId}`);
    expect(onStatement.text).toContain("<caption>Disputes of this statement</caption>");
    expect(onStatement.text).toContain(`<a href="/portal/console/disputes/${d.id}">${line.line_no}</a>`);
    // A developer never reaches the console's dispute pages.
    expect((await dev.get(`/portal/console/disputes/${d.id}`)).status).toBe(404);

    const path = `/portal/console/disputes/${d.id}`;
    const bad = await op.submit(path, `${path}/resolve`, { outcome: "accepted", adjustment: "1.505", note: "x" });
    expect(bad.status).toBe(422);
    const rejectWithMoney = await op.submit(path, `${path}/resolve`, { outcome: "rejected", adjustment: "2.00", note: "No" });
    expect(rejectWithMoney.status).toBe(422);
    expect(rejectWithMoney.text).toContain("A rejected dispute books nothing");
    expect((await hub.db("settlement_disputes").where({ id: d.id }).first()).status).toBe("open");

    const ok = await op.submit(path, `${path}/resolve`, { outcome: "accepted", adjustment: "", note: "Confirmed: two refunds were priced as sales" });
    expect(ok.status).toBe(303);
    const adj = await hub.db("settlement_adjustments").where({ dispute_id: d.id }).first();
    // The claimed 1.50, booked into the next open month (never into closed April).
    expect(adj).toMatchObject({ partner_id: t.partners.A, amount_minor: 150n, corrects_statement_id: statementId, corrects_line_no: line.line_no });
    expect(adj.period).toBe("2026-05");
    const audit = (await listAudit(hub.db, { objectType: "settlement_dispute", objectId: d.id, limit: 5 })).items;
    expect(audit.map((a) => a.action)).toEqual(["settlement_dispute.accepted"]);
    const after = await op.get(path);
    expect(after.text).toContain('<span class="badge badge-accepted">accepted</span>');
    expect(after.text).toContain(`1.50 EUR, booked into ${adj.period as string}`);
    expect(after.text).not.toContain("Resolve the dispute");
    expect((await op.submit(path, `${path}/resolve`, { outcome: "rejected", note: "late" })).status).toBe(409);

    // The developer sees the resolution and the operator's side of the trail, and answers.
    const mine = await dev.get(statementPage());
    expect(mine.text).toContain("<strong>The operator</strong> accepted it (1.50 EUR): “Confirmed: two refunds were priced as sales”");
    expect(mine.text).toContain(`booked into ${adj.period as string}`);
    const note = await dev.submit(statementPage(), `/portal/dev/statements/${statementId}/disputes/${d.id}/notes?env=live`, { note: "Thank you" });
    expect(note.status).toBe(303);
    expect((await op.get(path)).text).toContain("<strong>The partner</strong> added a note: “Thank you”");
    // Another partner's developer cannot write into it.
    const other = new PortalClient(hub.url);
    await other.submit("/portal/signup", "/portal/signup", applicant());
    await other.get("/portal/dev");
    expect((await other.request("POST", `/portal/dev/statements/${statementId}/disputes/${d.id}/notes?env=live`, { form: { note: "hi" } })).status).toBe(404);
  });

  it("carries the accepted adjustment on May's statement, and the April dispute links to it", async () => {
    const [d] = await disputesOfA();
    hubClock.set("2026-06-02T09:00:00Z");
    await closeMonth("2026-05");
    const may = (await createStatementsService({ db: hub.db }).list(t.partners.A, {})).items.find((x) => x.period === "2026-05")!;
    const full = await createStatementsService({ db: hub.db }).get(t.partners.A, may.id);
    const carried = full.adjustments.find((l) => l.corrects_period === "2026-04")!;
    expect(carried).toMatchObject({ amount_minor: 150 });
    const april = await dev.get(statementPage());
    expect(april.text).toContain(`carried on <a href="/portal/dev/statements/${may.id}?env=live">statement 2026-05</a>, line ${carried.line_no}`);
    const mayPage = await dev.get(`/portal/dev/statements/${may.id}?env=live`);
    expect(mayPage.text).toContain("<caption>Adjustments from earlier periods</caption>");
    expect(mayPage.text).toContain("(corrects 2026-04)");
    // The operator's view of the dispute says where it was carried too.
    expect((await op.get(`/portal/console/disputes/${d.id}`)).text).toContain(`statement <code>${may.id}</code>, line ${carried.line_no}`);
  });
});
