import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixedClock, startTestHub, type TestHub } from "../../test/harness.ts";
import { adminToken, bearer, partnerToken } from "../../test/factories/auth.ts";
import { expectRouteSecurity } from "../../test/security.ts";
import { createSettlementContract, seedNetwork, type MonthTraffic } from "../../test/factories/settlement.ts";
import { createPartner } from "../../test/factories/network.ts";

let hub: TestHub;
let t: MonthTraffic;
let admin: string;
/** D is the month's one net creditor: points are only spent there. */
let D: string;
// The hub runs on real time (tokens are checked against it); the traffic is made on its own clock.
const trafficClock = fixedClock("2026-04-01T00:00:00Z");
const stmtId = (period: string, partnerId: string) => `stm_${period.replace("-", "")}_${partnerId}`;

interface RunBody {
  id: string;
  status: string;
  step: string;
  statements: Array<{ id: string; partner_id: string; status: string }>;
  report: { currencies: Array<{ network_sum_minor: number; partners: unknown[] }>; points: { liability_outstanding: number } } | null;
}

async function waitForRun(id: string, until: (r: RunBody) => boolean): Promise<RunBody> {
  for (let i = 0; i < 200; i++) {
    const res = await hub.fetch(`/admin/v1/settlement-runs/${id}`, { headers: bearer(admin) });
    expect(res.status).toBe(200);
    const body = (await res.json()) as RunBody;
    if (until(body)) return body;
    await new Promise((r) => setTimeout(r, 100));
  }
  const outbox = await hub.db("outbox").whereNull("relayed_at").select("queue", "job_id", "attempts", "last_error");
  const statements = await hub.db("settlement_statements").select("id", "status", "step", "failure");
  throw new Error(`run ${id} did not get there: ${JSON.stringify({ outbox, statements })}`);
}

beforeAll(async () => {
  hub = await startTestHub({ config: { OUTBOX_POLL_MS: "20" } });
  t = await seedNetwork(hub.db, trafficClock);
  D = (await createPartner(hub.db, { name: "Bookshop D & Söhne" })).id;
  await createSettlementContract(hub.db, D, { issuance: 10_000n, redemption: 8_000n });
  await hub.db("member_partner_links").insert({ member_id: t.members.m1, partner_id: D, relation: "used" });
  trafficClock.set("2026-04-21T10:00:00Z");
  await hub.db.transaction((trx) => t.earn.burn(trx, D, { member_id: t.members.m1, partner_transaction_id: "D-1", points: 20, amount_minor: 200, currency: "EUR" }));
  admin = await adminToken(hub);
});
afterAll(async () => {
  await hub.close();
});

describe("settlement runs as jobs, statements over HTTP", () => {
  it("starts a month, runs it through the queue to closed, and a second start is harmless", async () => {
    const future = new Date(Date.now() + 40 * 86_400_000).toISOString().slice(0, 7);
    const early = await hub.fetch("/admin/v1/settlement-runs", { method: "POST", headers: { ...bearer(admin), "content-type": "application/json" }, body: JSON.stringify({ period: future }) });
    expect(early.status).toBe(422);
    expect(((await early.json()) as { code: string }).code).toBe("period-not-ended");

    const start = () => hub.fetch("/admin/v1/settlement-runs", { method: "POST", headers: { ...bearer(admin), "content-type": "application/json" }, body: JSON.stringify({ period: "2026-04" }) });
    const [r1, r2] = await Promise.all([start(), start()]);
    expect([r1.status, r2.status]).toEqual([202, 202]);
    const body = (await r1.json()) as RunBody;
    expect(body.id).toBe("run_2026-04");
    const run = await waitForRun(body.id, (r) => r.status !== "running");
    expect(run.status).toBe("closed");
    expect(run.statements).toHaveLength(4);
    expect(run.report!.currencies[0]!.network_sum_minor).toBe(0);
    expect(run.report!.points.liability_outstanding).toBe(13);
    const again = await start();
    expect(again.status).toBe(202);
    expect(((await again.json()) as RunBody).status).toBe("closed");
    expect(await hub.db("settlement_statements").count("* as n").first()).toMatchObject({ n: expect.anything() });
    expect(Number((await hub.db("settlement_statements").count("* as n").first())?.n)).toBe(4);
    // Each partner was told, once.
    expect(Number((await hub.db("events").where({ type: "statement.ready" }).count("* as n").first())?.n)).toBe(4);
  });

  it("shows a partner its own statements, line groups and all", async () => {
    const { A } = t.partners;
    const token = await partnerToken(hub, A, ["settlements:read"]);
    const list = await hub.fetch("/v1/settlements", { headers: bearer(token) });
    expect(list.status).toBe(200);
    const page = (await list.json()) as { items: Array<{ id: string; net_amount_minor: number; direction: string }> };
    expect(page.items).toEqual([expect.objectContaining({ id: stmtId("2026-04", A), net_amount_minor: -10_134, direction: "receivable_from_partner" })]);

    const res = await hub.fetch(`/v1/settlements/${stmtId("2026-04", A)}`, { headers: bearer(token) });
    expect(res.status).toBe(200);
    const st = (await res.json()) as Record<string, unknown> & { lines: unknown[]; fees: unknown[]; adjustments: unknown[]; totals: unknown; content_sha256: string };
    expect(st).toMatchObject({ period: "2026-04", currency: "EUR", opening_position_minor: 0, net_amount_minor: -10_134, due_date: "2026-05-15", status: "closed" });
    expect(st.lines).toEqual([expect.objectContaining({ group: "issuance", points: 123, price_micros: 10_500, exact_amount: "1.291500", amount_minor: -129 })]);
    expect(st.fees).toEqual([
      expect.objectContaining({ group: "transaction_fee", transactions: 1, fee_minor: 5, exact_amount: "0.05", amount_minor: -5 }),
      expect.objectContaining({ group: "monthly_fee", fee_minor: 10_000, exact_amount: "100.00", amount_minor: -10_000 }),
    ]);
    expect(st.adjustments).toEqual([]);
    expect(st.totals).toEqual({ lines_minor: -129, fees_minor: -10_005, adjustments_minor: 0 });
    expect(st.content_sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("refuses a cursor it never handed out with 422 naming query/cursor, never a 500", async () => {
    const token = await partnerToken(hub, t.partners.A, ["settlements:read"]);
    // "AAAA" decodes to NUL bytes, which the database refused as a 500; "_w" to a byte that is not UTF-8.
    for (const cursor of ["AAAA", "_w", "garbage"]) {
      const res = await hub.fetch(`/v1/settlements?cursor=${cursor}`, { headers: bearer(token) });
      expect(res.status, cursor).toBe(422);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(await res.json()).toMatchObject({ code: "validation-error", errors: [{ field: "query/cursor" }] });
    }
    const first = (await (await hub.fetch("/v1/settlements?limit=1", { headers: bearer(token) })).json()) as { next_cursor: string | null };
    expect(first.next_cursor).toBeNull();
    const handedOut = Buffer.from("2026-05").toString("base64url");
    const page = await hub.fetch(`/v1/settlements?cursor=${handedOut}`, { headers: bearer(token) });
    expect(page.status).toBe(200);
    expect(((await page.json()) as { items: Array<{ period: string }> }).items.map((s) => s.period)).toEqual(["2026-04"]);
  });

  it("answers a NUL character in an id, a filter or a file with 422 naming where it is, never a 500", async () => {
    const token = await partnerToken(hub, t.partners.A, ["settlements:read"]);
    const path = await hub.fetch(`/v1/settlements/${stmtId("2026-04", t.partners.A)}%00`, { headers: bearer(token) });
    expect(path.status).toBe(422);
    expect(await path.json()).toMatchObject({ code: "validation-error", errors: [{ field: "path/statementId" }] });
    const filter = await hub.fetch("/v1/settlement-disputes?statement_id=%00", { headers: bearer(token) });
    expect(filter.status).toBe(422);
    expect(await filter.json()).toMatchObject({ errors: [{ field: "query/statement_id" }] });
    const csv = "booking_date,amount,currency,reference,remittance,counterparty,entry_ref\r\n2026-05-14,1.00,EUR,,a\u0000b,,N1\r\n";
    const file = await hub.fetch("/admin/v1/reconciliation/bank-statements", { method: "POST", headers: { ...bearer(admin), "content-type": "text/csv", "idempotency-key": "nul-1" }, body: csv });
    expect(file.status).toBe(422);
    expect(await file.json()).toMatchObject({ errors: [{ field: "body" }] });
  });

  it("downloads the CSV, whose bytes hash to the statement's csv_sha256", async () => {
    const { C } = t.partners;
    const token = await partnerToken(hub, C, ["settlements:read"]);
    const id = stmtId("2026-04", C);
    const res = await hub.fetch(`/v1/settlements/${id}/lines.csv`, { headers: bearer(token) });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/csv/);
    const bytes = Buffer.from(await res.arrayBuffer());
    const sha = createHash("sha256").update(bytes).digest("hex");
    const st = (await (await hub.fetch(`/v1/settlements/${id}`, { headers: bearer(token) })).json()) as { csv_sha256: string };
    expect(sha).toBe(st.csv_sha256);
    expect(res.headers.get("etag")).toBe(`"${sha}"`);
    expect(res.headers.get("repr-digest")).toBe(`sha-256=:${createHash("sha256").update(bytes).digest("base64")}:`);
    const text = bytes.toString("utf8");
    expect(text).toContain(",C-T2,");
    expect(text).toContain(",C-T2b,");
    expect(text.split("\r\n").filter((l) => l.includes(",breakage_share,"))).toHaveLength(1);
    const again = Buffer.from(await (await hub.fetch(`/v1/settlements/${id}/lines.csv`, { headers: bearer(token) })).arrayBuffer());
    expect(again.equals(bytes)).toBe(true);
  });

  it("answers 404 for another partner's statement, its CSV and unknown ids", async () => {
    const { A, B } = t.partners;
    const token = await partnerToken(hub, B, ["settlements:read"]);
    for (const path of [`/v1/settlements/${stmtId("2026-04", A)}`, `/v1/settlements/${stmtId("2026-04", A)}/lines.csv`, "/v1/settlements/stm_nope"]) {
      const res = await hub.fetch(path, { headers: bearer(token) });
      expect(res.status, path).toBe(404);
      expect(((await res.json()) as { code: string }).code).toBe("statement-not-found");
    }
    expect((await hub.fetch("/admin/v1/settlement-runs/run_1999-01", { headers: bearer(admin) })).status).toBe(404);
    const bad = await hub.fetch("/admin/v1/settlement-runs", { method: "POST", headers: { ...bearer(admin), "content-type": "application/json" }, body: JSON.stringify({ period: "2026-13" }) });
    expect(bad.status).toBe(422);
  });

  it("writes the pain.001 file paying the net creditors, the same bytes every time", async () => {
    const post = (runId: string) =>
      hub.fetch(`/admin/v1/settlement-runs/${runId}/credit-transfers`, {
        method: "POST",
        headers: { ...bearer(admin), "content-type": "application/json" },
        body: JSON.stringify({ debtor: { name: "Coalition Operator", iban: "DE89 3704 0044 0532 0130 00", bic: "COBADEFFXXX" } }),
      });
    const missing = await post("run_2026-04");
    expect(missing.status).toBe(422);
    expect(await missing.json()).toMatchObject({ code: "payee-account-missing", partner_ids: [D] });
    const put = (body: unknown) =>
      hub.fetch(`/admin/v1/settlement-payee-accounts/${D}`, { method: "PUT", headers: { ...bearer(admin), "content-type": "application/json" }, body: JSON.stringify(body) });
    const bad = await put({ account_holder: "D", iban: "FR1420041010050500013M02607", bic: "PSSTFRPPXXX" });
    expect(bad.status).toBe(422);
    expect(await bad.json()).toMatchObject({ code: "invalid-bank-account", errors: [{ field: "body/iban" }] });
    const badBic = await put({ account_holder: "D", iban: "FR1420041010050500013M02606", bic: "1234FRPP" });
    expect(badBic.status).toBe(422);
    expect(await badBic.json()).toMatchObject({ code: "invalid-bank-account", errors: [{ field: "body/bic" }] });
    const badDebtor = await hub.fetch("/admin/v1/settlement-runs/run_2026-04/credit-transfers", {
      method: "POST",
      headers: { ...bearer(admin), "content-type": "application/json" },
      body: JSON.stringify({ debtor: { name: "Coalition Operator", iban: "DE89 3704 0044 0532 0130 01", bic: "COBADEFFXXX" } }),
    });
    expect(badDebtor.status).toBe(422);
    expect(await badDebtor.json()).toMatchObject({ code: "invalid-bank-account", errors: [{ field: "body/debtor/iban" }] });
    const ok = await put({ account_holder: "Bookshop D & Söhne", iban: "FR14 2004 1010 0505 0001 3M02 606", bic: "PSSTFRPPXXX" });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ partner_id: D, iban: "FR1420041010050500013M02606" });

    const res = await post("run_2026-04");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/xml/);
    const xml = await res.text();
    expect(xml).toContain('<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"');
    expect(xml).toContain("<NbOfTxs>1</NbOfTxs>");
    expect(xml).toContain('<InstdAmt Ccy="EUR">0.16</InstdAmt>');
    expect(xml).toContain("<Nm>Bookshop D &amp; Söhne</Nm>");
    expect(xml).toContain(`<EndToEndId>202604${D.slice(4)}</EndToEndId>`);
    expect(xml).toContain("<ReqdExctnDt><Dt>2026-05-15</Dt></ReqdExctnDt>");
    expect(xml).toContain(`<Ustrd>Loyalty settlement 2026-04 ${stmtId("2026-04", D)}</Ustrd>`);
    expect(await (await post("run_2026-04")).text()).toBe(xml);
    expect(res.headers.get("etag")).toBe(`"${createHash("sha256").update(xml).digest("hex")}"`);
  });

  it("holds every route to the shared security set", async () => {
    const { A } = t.partners;
    const id = stmtId("2026-04", A);
    await expectRouteSecurity(hub, { method: "GET", path: "/v1/settlements", scopes: ["settlements:read"], audience: "partner", partnerId: A });
    await expectRouteSecurity(hub, { method: "GET", path: `/v1/settlements/${id}`, scopes: ["settlements:read"], audience: "partner", partnerId: A });
    await expectRouteSecurity(hub, { method: "GET", path: `/v1/settlements/${id}/lines.csv`, scopes: ["settlements:read"], audience: "partner", partnerId: A });
    await expectRouteSecurity(hub, { method: "POST", path: "/admin/v1/settlement-runs", body: { period: "2026-04" }, scopes: ["admin"], audience: "admin" });
    await expectRouteSecurity(hub, { method: "GET", path: "/admin/v1/settlement-runs/run_2026-04", scopes: ["admin"], audience: "admin" });
    await expectRouteSecurity(hub, {
      method: "POST",
      path: "/admin/v1/settlement-runs/run_2026-04/credit-transfers",
      body: { debtor: { name: "Op", iban: "DE89370400440532013000", bic: "COBADEFFXXX" } },
      scopes: ["admin"],
      audience: "admin",
    });
    await expectRouteSecurity(hub, { method: "PUT", path: `/admin/v1/settlement-payee-accounts/${D}`, body: { account_holder: "D", iban: "FR1420041010050500013M02606", bic: "PSSTFRPPXXX" }, scopes: ["admin"], audience: "admin" });
  });
});
