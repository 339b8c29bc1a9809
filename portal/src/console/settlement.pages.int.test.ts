import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixedClock, startTestHub, type TestHub } from "../../../test/harness.ts";
import { applicant, PortalClient } from "../../../test/portal.ts";
import { operatorClient } from "../../../test/console.ts";
import { createSettlementContract, seedNetwork, type MonthTraffic } from "../../../test/factories/settlement.ts";
import { createPartner, createSector } from "../../../test/factories/network.ts";
import { createClearingService } from "../../../settlement/src/clearing.service.ts";
import { listAudit } from "../../../gateway/src/partners/audit.service.ts";

// April 2026 of the settlement tests' network (A, B, C), plus D, a bookshop where a member spends
// 20 points (0.16 EUR owed to D: the one creditor of the month).
let hub: TestHub;
let t: MonthTraffic;
let D: string;
let op: PortalClient;
let opActor: string;
const trafficClock = fixedClock("2026-04-01T00:00:00Z");

beforeAll(async () => {
  hub = await startTestHub({ config: { OUTBOX_POLL_MS: "20" } });
  await createSector(hub.db, "grocery");
  t = await seedNetwork(hub.db, trafficClock);
  D = (await createPartner(hub.db, { name: "Bookshop D & Söhne" })).id;
  await createSettlementContract(hub.db, D, { issuance: 10_000n, redemption: 8_000n });
  await hub.db("member_partner_links").insert({ member_id: t.members.m1, partner_id: D, relation: "used" });
  trafficClock.set("2026-04-21T10:00:00Z");
  await hub.db.transaction((trx) => t.earn.burn(trx, D, { member_id: t.members.m1, partner_transaction_id: "D-1", points: 20, amount_minor: 200, currency: "EUR" }));
  const o = await operatorClient(hub);
  op = o.client;
  opActor = `portal:${o.userId}`;
});
afterAll(async () => hub?.close());

const clearing = () => createClearingService({ db: hub.db, clock: hub.clock, log: hub.deps.log });

async function waitClosed(runId: string) {
  for (let i = 0; i < 300; i++) {
    const { run } = await clearing().getRun(runId);
    if (run.status !== "running") return run;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`run ${runId} did not finish`);
}

describe("console: settlement", () => {
  it("is for operators only: a developer gets 404, and a start without the CSRF token is refused", async () => {
    expect((await op.get("/portal/console/settlement")).status).toBe(200);
    const dev = new PortalClient(hub.url);
    await dev.submit("/portal/signup", "/portal/signup", applicant());
    expect((await dev.get("/portal/console/settlement")).status).toBe(404);
    const res = await op.request("POST", "/portal/console/settlement/runs", { form: { period: "2026-04" }, csrf: false });
    expect(res.status).toBe(403);
    expect(Number((await hub.db("settlement_runs").count("* as n").first())!.n)).toBe(0);
  });

  it("refuses a month that has not ended and a malformed one (422), starting nothing", async () => {
    const future = new Date(Date.now() + 40 * 86_400_000).toISOString().slice(0, 7);
    const early = await op.submit("/portal/console/settlement", "/portal/console/settlement/runs", { period: future });
    expect(early.status).toBe(422);
    expect(early.text).toContain("it can be cleared after that");
    expect((await op.submit("/portal/console/settlement", "/portal/console/settlement/runs", { period: "April" })).status).toBe(422);
    expect(Number((await hub.db("settlement_runs").count("* as n").first())!.n)).toBe(0);
  });

  it("starts April, the workers close it; the run page shows the statements and the network report", async () => {
    const res = await op.submit("/portal/console/settlement", "/portal/console/settlement/runs", { period: "2026-04" });
    expect(res.status).toBe(303);
    expect(res.location).toBe("/portal/console/settlement/runs/run_2026-04");
    const run = await waitClosed("run_2026-04");
    expect(run.status).toBe("closed");
    const { statements } = await clearing().getRun("run_2026-04");
    expect(statements).toHaveLength(4);

    const page = await op.get("/portal/console/settlement/runs/run_2026-04");
    expect(page.status).toBe(200);
    expect(page.text).toContain("Supermarket A");
    expect(page.text).toContain("Bookshop D &amp; Söhne");
    // A owes 101.34 EUR (settlement's own hand-computed figure); the network sums to zero.
    expect(page.text).toContain("−101.34 EUR");
    expect(page.text).toMatch(/data-figure="network-sum-EUR">0\.00 EUR <span class="badge badge-closed">balances/);
    const report = run.report as { points: { liability_outstanding: number } };
    expect(page.text).toContain(`data-figure="liability">${report.points.liability_outstanding} pts`);
    // Every source of the operator's revenue is named in words, never by its code.
    const sources = [...page.text.matchAll(/<tr><td>([^<]*)<\/td><td class="num">[^<]*EUR<\/td><\/tr>/g)].map((m) => m[1]!);
    expect(sources).toContain("Cashback paid out by banks (owed to them)");
    expect(sources.filter((w) => /^[a-z]+(_[a-z]+)+$/.test(w))).toEqual([]);

    const a = statements.find((s) => s.partner_id === t.partners.A)!;
    const st = await op.get(`/portal/console/settlement/runs/run_2026-04/statements/${a.id}`);
    expect(st.status).toBe(200);
    expect(st.text).toContain('data-figure="net">−101.34 EUR');
    expect(st.text).toContain("1.291500");
    const csv = await op.get(`/portal/console/settlement/runs/run_2026-04/statements/${a.id}.csv`);
    expect(csv.status).toBe(200);
    expect(csv.headers.get("etag")).toBe(`"${a.csv_sha256}"`);
    expect((await op.get("/portal/console/settlement/runs/run_2026-04/statements/stm_nope")).status).toBe(404);
    expect((await op.get("/portal/console/settlement/runs/run_nope")).status).toBe(404);
    const list = await op.get("/portal/console/settlement");
    expect(list.text).toContain("/portal/console/settlement/runs/run_2026-04");
  });

  it("pays only an approved month: approve (audited), a missing payee account is named, then the pain.001 file", async () => {
    const path = "/portal/console/settlement/runs/run_2026-04";
    const tooEarly = await op.submit(path, `${path}/credit-transfers`, { debtor_name: "Hub Operator", debtor_iban: "DE89370400440532013000", debtor_bic: "COBADEFFXXX" });
    expect(tooEarly.status).toBe(409);
    expect(tooEarly.text).toContain("Approve the month before paying it.");

    expect((await op.submit(path, `${path}/approve`, { note: "Checked by finance" })).status).toBe(303);
    const trail = (await listAudit(hub.db, { objectType: "settlement_run", objectId: "run_2026-04", limit: 10 })).items;
    expect(trail.map((a) => a.action)).toEqual(["settlement_run.approved", "settlement_run.started"]);
    expect(trail[0]).toMatchObject({ actor: { id: opActor }, reason: "Checked by finance" });
    expect((await op.submit(path, `${path}/approve`, {})).status).toBe(409);
    // The page names the operator, not "portal:usr_…".
    const approved = await op.get(path);
    expect(approved.text).toMatch(/Approved by Operator \d+ at/);
    expect(approved.text).not.toContain(`<td>${opActor}</td>`);

    const missing = await op.submit(path, `${path}/credit-transfers`, { debtor_name: "Hub Operator", debtor_iban: "DE89370400440532013000", debtor_bic: "COBADEFFXXX" });
    expect(missing.status).toBe(422);
    expect(missing.text).toContain(`No payee account for ${D}`);

    const badIban = await op.submit(path, `${path}/payee`, { partner_id: D, account_holder: "D & Söhne", iban: "DE00370400440532013000", bic: "COBADEFFXXX" });
    expect(badIban.status).toBe(422);
    expect(await hub.db("settlement_payee_accounts").where({ partner_id: D }).first()).toBeUndefined();
    expect((await op.submit(path, `${path}/payee`, { partner_id: D, account_holder: "D & Söhne", iban: "DE44500105175407324931", bic: "INGDDEFFXXX" })).status).toBe(303);

    const file = await op.submit(path, `${path}/credit-transfers`, { debtor_name: "Hub Operator", debtor_iban: "DE89370400440532013000", debtor_bic: "COBADEFFXXX" });
    expect(file.status).toBe(200);
    expect(file.headers.get("content-type")).toMatch(/^application\/xml/);
    expect(file.text).toContain("<InstdAmt Ccy=\"EUR\">0.16</InstdAmt>");
    expect(file.text).toContain("DE44500105175407324931");
  });

  it("lists the month's reconciliation exceptions: nothing paid yet, so every statement is missing", async () => {
    const res = await op.get("/portal/console/settlement/runs/run_2026-04/reconciliation");
    expect(res.status).toBe(200);
    expect(res.text).toContain("<caption>Totals</caption>");
    expect(res.text).toContain("<caption>Statements nothing was received or paid for</caption>");
    expect(res.text).toContain("Supermarket A");
    expect(res.text).not.toContain("not wired into this hub");
  });
});
