import { createHash } from "node:crypto";
import { PDFParse } from "pdf-parse";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixedClock, startTestHub, type TestHub } from "../../test/harness.ts";
import { adminToken, bearer, partnerToken } from "../../test/factories/auth.ts";
import { expectRouteSecurity } from "../../test/security.ts";
import { seedMay, seedNetwork, type MonthTraffic } from "../../test/factories/settlement.ts";
import { createLogger } from "../../gateway/src/infra/logger.ts";
import { createClearingService, type ClearingService } from "./clearing.service.ts";
import { renderStatementPdfOf } from "./statement-pdf.ts";
import type { LineRow, StatementRow } from "./statements.service.ts";

/**
 * Statement PDFs and disputes over HTTP, on the hub's own clock (tokens are checked against it, so
 * each step takes fresh tokens after moving time). April 2026 is cleared, A disputes a line of its
 * April statement, the operator accepts it in May, and May's run carries the adjustment.
 */

let hub: TestHub;
let t: MonthTraffic;
let clearing: ClearingService;
const clock = fixedClock("2026-04-01T00:00:00Z");
const stmtId = (period: string, partnerId: string) => `stm_${period.replace("-", "")}_${partnerId}`;
const json = { "content-type": "application/json" };

interface Dispute {
  id: string;
  partner_id?: string;
  statement_id: string;
  period: string;
  line: { line_no: number; group: string; amount_minor: number };
  status: string;
  amount_claimed_minor: number | null;
  resolution: null | { outcome: string; note: string; adjustment: null | { id: string; amount_minor: number; booked_period: string; statement_id: string | null; line_no: number | null } };
  trail: Array<{ kind: string; actor: string; note: string | null; amount_minor: number | null; client_id?: string | null }>;
}

const partner = (id: string) => partnerToken(hub, id, ["settlements:read", "settlements:write"]);

async function pdfText(bytes: Buffer): Promise<string> {
  const parser = new PDFParse({ data: new Uint8Array(bytes) });
  try {
    return (await parser.getText()).text;
  } finally {
    await parser.destroy();
  }
}

async function openDispute(token: string, statementId: string, body: unknown, key = `k-${Math.random()}`) {
  return hub.fetch(`/v1/settlements/${statementId}/disputes`, { method: "POST", headers: { ...bearer(token), ...json, "idempotency-key": key }, body: JSON.stringify(body) });
}

async function resolve(token: string, disputeId: string, body: unknown, key = `r-${Math.random()}`) {
  return hub.fetch(`/admin/v1/settlement-disputes/${disputeId}/resolution`, { method: "POST", headers: { ...bearer(token), ...json, "idempotency-key": key }, body: JSON.stringify(body) });
}

const eventsOf = (type: string) => hub.db("events").where({ type }).orderBy("occurred_at").select("partner_id", "data");

beforeAll(async () => {
  hub = await startTestHub({ clock, workers: false });
  t = await seedNetwork(hub.db, clock);
  clearing = createClearingService({ db: hub.db, clock, log: createLogger("silent") });
  clock.set("2026-05-01T01:00:00Z");
  expect((await clearing.runToEnd((await clearing.startRun("2026-04")).run.id)).status).toBe("closed");
});
afterAll(async () => {
  await hub.close();
});

describe("the statement's summary PDF", () => {
  it("is served with its sha256, the same bytes as a fresh render, and prints the statement's figures", async () => {
    const { A } = t.partners;
    const id = stmtId("2026-04", A);
    const token = await partner(A);
    const res = await hub.fetch(`/v1/settlements/${id}/summary.pdf`, { headers: bearer(token) });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/pdf");
    const bytes = Buffer.from(await res.arrayBuffer());
    expect(bytes.subarray(0, 5).toString()).toBe("%PDF-");
    const sha = createHash("sha256").update(bytes).digest("hex");
    const st = (await (await hub.fetch(`/v1/settlements/${id}`, { headers: bearer(token) })).json()) as { pdf_sha256: string; content_sha256: string; csv_sha256: string };
    expect(st.pdf_sha256).toBe(sha);
    expect(res.headers.get("etag")).toBe(`"${sha}"`);
    expect(res.headers.get("repr-digest")).toBe(`sha-256=:${createHash("sha256").update(bytes).digest("base64")}:`);

    // Two renders of the same statement, now and from the stored rows, are byte-identical.
    const row: StatementRow = await hub.db("settlement_statements").where({ id }).first("*");
    const lines: LineRow[] = await hub.db("settlement_lines").where({ statement_id: id }).orderBy("line_no").select("*");
    const again = await renderStatementPdfOf(hub.db, row, lines);
    const third = await renderStatementPdfOf(hub.db, row, lines);
    expect(again.bytes.equals(bytes)).toBe(true);
    expect(third.bytes.equals(bytes)).toBe(true);

    const text = await pdfText(bytes);
    for (const figure of [
      "Supermarket A",
      A,
      id,
      "2026-04: 2026-04-01 to 2026-04-30 (UTC)",
      "Due date",
      "2026-05-15",
      "Opening position",
      "+0.00 EUR".replace("+", ""), // the opening position prints as 0.00
      "Points issued to members",
      "1.291500",
      "-1.29",
      "-0.05",
      "-100.00",
      "Net amount of this statement",
      "-101.34 EUR",
      "due from the partner to the operator",
      st.csv_sha256,
      st.content_sha256,
    ]) {
      expect(text, figure).toContain(figure);
    }
  });

  it("is 404 for another partner's statement", async () => {
    const { A, B } = t.partners;
    const res = await hub.fetch(`/v1/settlements/${stmtId("2026-04", A)}/summary.pdf`, { headers: bearer(await partner(B)) });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { code: string }).code).toBe("statement-not-found");
  });
});

describe("disputes", () => {
  let accepted: Dispute;

  it("a partner disputes a line; a replay with the same key answers the same, once", async () => {
    const { A } = t.partners;
    clock.set("2026-05-03T09:00:00Z");
    const token = await partner(A);
    const body = { line_no: 1, reason: "123 points of basket A-T1 were cancelled at the till", amount_claimed_minor: 129 };
    const first = await openDispute(token, stmtId("2026-04", A), body, "dsp-1");
    expect(first.status).toBe(201);
    const d = (await first.json()) as Dispute;
    expect(d).toMatchObject({
      statement_id: stmtId("2026-04", A),
      period: "2026-04",
      line: { line_no: 1, group: "issuance", amount_minor: -129 },
      status: "open",
      amount_claimed_minor: 129,
      currency: "EUR",
      resolution: null,
      trail: [{ kind: "opened", actor: "partner", note: body.reason, amount_minor: 129 }],
    });
    expect(d).not.toHaveProperty("partner_id");
    const replay = await openDispute(token, stmtId("2026-04", A), body, "dsp-1");
    expect(replay.status).toBe(201);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(((await replay.json()) as Dispute).id).toBe(d.id);
    expect(Number((await hub.db("settlement_disputes").count("* as n").first())?.n)).toBe(1);
    expect(await eventsOf("dispute.opened")).toEqual([
      { partner_id: A, data: { dispute_id: d.id, statement_id: stmtId("2026-04", A), period: "2026-04", line_no: 1, amount_claimed_minor: 129, currency: "EUR" } },
    ]);

    // One open dispute per line.
    const twice = await openDispute(token, stmtId("2026-04", A), { line_no: 1, reason: "again" });
    expect(twice.status).toBe(409);
    expect(((await twice.json()) as { code: string }).code).toBe("dispute-already-open");
    accepted = d;
  });

  it("refuses another partner's statement (404) and a line that does not exist (422), changing nothing", async () => {
    const { A, B } = t.partners;
    const tokenB = await partner(B);
    const other = await openDispute(tokenB, stmtId("2026-04", A), { line_no: 1, reason: "not mine" });
    expect(other.status).toBe(404);
    expect(((await other.json()) as { code: string }).code).toBe("statement-not-found");
    const unknown = await openDispute(tokenB, "stm_202604_nope", { line_no: 1, reason: "nothing" });
    expect(unknown.status).toBe(404);
    const noLine = await openDispute(tokenB, stmtId("2026-04", B), { line_no: 99, reason: "no such line" });
    expect(noLine.status).toBe(422);
    expect(await noLine.json()).toMatchObject({ code: "statement-line-not-found", errors: [{ field: "body/line_no", reason: `statement ${stmtId("2026-04", B)} has no line 99` }] });
    const invalid = await openDispute(tokenB, stmtId("2026-04", B), { line_no: 1, amount_claimed_minor: 0 });
    expect(invalid.status).toBe(422);
    const fields = ((await invalid.json()) as { errors: Array<{ field: string }> }).errors.map((e) => e.field);
    expect(fields).toEqual(expect.arrayContaining(["body/reason", "body/amount_claimed_minor"]));
    // B cannot read or comment on A's dispute either.
    expect((await hub.fetch(`/v1/settlement-disputes/${accepted.id}`, { headers: bearer(tokenB) })).status).toBe(404);
    const comment = await hub.fetch(`/v1/settlement-disputes/${accepted.id}/comments`, { method: "POST", headers: { ...bearer(tokenB), ...json }, body: JSON.stringify({ note: "hi" }) });
    expect(comment.status).toBe(404);
    expect(Number((await hub.db("settlement_disputes").count("* as n").first())?.n)).toBe(1);
    expect(Number((await hub.db("settlement_dispute_trail").count("* as n").first())?.n)).toBe(1);
  });

  it("the operator lists open disputes, comments, and both sides see the trail", async () => {
    const { A } = t.partners;
    clock.set("2026-05-04T09:00:00Z");
    const admin = await adminToken(hub);
    const list = (await (await hub.fetch("/admin/v1/settlement-disputes?status=open", { headers: bearer(admin) })).json()) as { items: Dispute[] };
    expect(list.items.map((d) => [d.id, d.partner_id])).toEqual([[accepted.id, A]]);
    const res = await hub.fetch(`/admin/v1/settlement-disputes/${accepted.id}/comments`, {
      method: "POST",
      headers: { ...bearer(admin), ...json },
      body: JSON.stringify({ note: "Please send the till's void receipt for A-T1." }),
    });
    expect(res.status).toBe(201);
    const partnerComment = await hub.fetch(`/v1/settlement-disputes/${accepted.id}/comments`, {
      method: "POST",
      headers: { ...bearer(await partner(A)), ...json },
      body: JSON.stringify({ note: "Receipt V-881 attached to our ticket." }),
    });
    expect(partnerComment.status).toBe(201);
    const seen = (await (await hub.fetch(`/v1/settlement-disputes/${accepted.id}`, { headers: bearer(await partner(A)) })).json()) as Dispute;
    expect(seen.trail.map((e) => [e.kind, e.actor, e.note])).toEqual([
      ["opened", "partner", "123 points of basket A-T1 were cancelled at the till"],
      ["comment", "operator", "Please send the till's void receipt for A-T1."],
      ["comment", "partner", "Receipt V-881 attached to our ticket."],
    ]);
    expect(seen.trail.every((e) => !("client_id" in e))).toBe(true);
    const mine = (await (await hub.fetch("/v1/settlement-disputes", { headers: bearer(await partner(A)) })).json()) as { items: Dispute[] };
    expect(mine.items.map((d) => d.id)).toEqual([accepted.id]);
  });

  it("refuses a list cursor it never handed out with 422 naming query/cursor, never a 500", async () => {
    const { A } = t.partners;
    const admin = await adminToken(hub);
    const mine = await partner(A);
    // "AAAA" decodes to NUL bytes, which the database refused as a 500.
    for (const [path, token] of [["/v1/settlement-disputes", mine], ["/admin/v1/settlement-disputes", admin]] as const) {
      for (const cursor of ["AAAA", "bm9wZQ"]) {
        const res = await hub.fetch(`${path}?cursor=${cursor}`, { headers: bearer(token) });
        expect(res.status, `${path} ${cursor}`).toBe(422);
        expect(await res.json()).toMatchObject({ code: "validation-error", errors: [{ field: "query/cursor" }] });
      }
    }
    const handedOut = Buffer.from(accepted.id.replace(/.$/, "z")).toString("base64url");
    const page = await hub.fetch(`/v1/settlement-disputes?cursor=${handedOut}`, { headers: bearer(mine) });
    expect(page.status).toBe(200);
  });

  it("a rejection books nothing; an accepted dispute without an amount is refused", async () => {
    const { B } = t.partners;
    clock.set("2026-05-04T10:00:00Z");
    const opened = (await (await openDispute(await partner(B), stmtId("2026-04", B), { line_no: 1, reason: "we think the redemption price was 0.0090" })).json()) as Dispute;
    const admin = await adminToken(hub);
    const noAmount = await resolve(admin, opened.id, { outcome: "accepted", note: "ok" });
    expect(noAmount.status).toBe(422);
    expect(await noAmount.json()).toMatchObject({ code: "adjustment-amount-required", errors: [{ field: "body/adjustment_minor" }] });
    const withAmount = await resolve(admin, opened.id, { outcome: "rejected", note: "no", adjustment_minor: 5 });
    expect(withAmount.status).toBe(422);
    const rejected = await resolve(admin, opened.id, { outcome: "rejected", note: "Contract version 1 sets 0.0084 per point for B from 2020-01-01." });
    expect(rejected.status).toBe(200);
    expect(await rejected.json()).toMatchObject({ status: "rejected", resolution: { outcome: "rejected", adjustment: null } });
    expect(await hub.db("settlement_adjustments").where({ partner_id: B }).select("id")).toEqual([]);
    const again = await resolve(admin, opened.id, { outcome: "accepted", note: "changed my mind", adjustment_minor: 5 });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { code: string }).code).toBe("dispute-not-open");
    const seen = (await (await hub.fetch(`/v1/settlement-disputes/${opened.id}`, { headers: bearer(await partner(B)) })).json()) as Dispute;
    expect(seen.trail.map((e) => e.kind)).toEqual(["opened", "rejected"]);
    expect((await eventsOf("dispute.resolved")).map((e) => e.data)).toEqual([
      { dispute_id: opened.id, statement_id: stmtId("2026-04", B), line_no: 1, outcome: "rejected", adjustment: null },
    ]);
  });

  it("accepted: an adjustment on the next statement names the disputed line, the closed statement never changes, and the network sums to zero", async () => {
    const { A, B, C } = t.partners;
    clock.set("2026-05-05T09:00:00Z");
    const admin = await adminToken(hub);
    const aprilBefore = await hub.db("settlement_statements").where({ id: stmtId("2026-04", A) }).first("content_sha256", "csv_sha256", "pdf_sha256", "net_amount_minor");
    const res = await resolve(admin, accepted.id, { outcome: "accepted", note: "Void receipt V-881 checked." }, "res-1");
    expect(res.status).toBe(200);
    const body = (await res.json()) as Dispute;
    expect(body).toMatchObject({ status: "accepted", resolution: { outcome: "accepted", adjustment: { amount_minor: 129, booked_period: "2026-05", statement_id: null, line_no: null } } });
    // A replay of the resolution books nothing more.
    expect((await resolve(admin, accepted.id, { outcome: "accepted", note: "Void receipt V-881 checked." }, "res-1")).headers.get("idempotent-replayed")).toBe("true");
    expect(await hub.db("settlement_adjustments").select("partner_id", "amount_minor", "period", "corrects_statement_id", "corrects_line_no", "statement_id")).toEqual([
      { partner_id: A, amount_minor: 129n, period: "2026-05", corrects_statement_id: stmtId("2026-04", A), corrects_line_no: 1, statement_id: null },
    ]);
    const resolved = (await eventsOf("dispute.resolved")).find((e) => (e.data as { dispute_id: string }).dispute_id === accepted.id);
    expect(resolved).toEqual({
      partner_id: A,
      data: { dispute_id: accepted.id, statement_id: stmtId("2026-04", A), line_no: 1, outcome: "accepted", adjustment: { id: body.resolution!.adjustment!.id, amount_minor: 129, currency: "EUR", booked_period: "2026-05" } },
    });

    await seedMay(hub.db, clock, t);
    clock.set("2026-06-01T01:00:00Z");
    const run = await clearing.runToEnd((await clearing.startRun("2026-05")).run.id);
    expect(run.status).toBe("closed");

    const token = await partner(A);
    const may = (await (await hub.fetch(`/v1/settlements/${stmtId("2026-05", A)}`, { headers: bearer(token) })).json()) as {
      adjustments: Array<{ line_no: number; group: string; amount_minor: number; corrects_period: string | null; description: string; adjustment?: unknown }>;
      totals: { adjustments_minor: number };
      net_amount_minor: number;
      opening_position_minor: number;
      pdf_sha256: string;
    };
    const line = may.adjustments.find((l) => l.group === "adjustment")!;
    expect(line).toMatchObject({
      group: "adjustment",
      amount_minor: 129,
      corrects_period: "2026-04",
      description: `Dispute ${accepted.id} accepted: correction of statement ${stmtId("2026-04", A)}, line 1`,
      adjustment: { id: body.resolution!.adjustment!.id, corrects_statement_id: stmtId("2026-04", A), corrects_line_no: 1 },
    });
    // Hand-computed: May without the dispute nets −120.61 (clearing.int.test.ts); +1.29 accepted.
    expect(may.net_amount_minor).toBe(-12_061 + 129);
    expect(may.opening_position_minor).toBe(-10_134);
    // Only A's statement carries it.
    for (const p of [B, C]) {
      expect(await hub.db("settlement_lines").where({ statement_id: stmtId("2026-05", p), line_group: "adjustment" }).select("line_no")).toEqual([]);
    }

    const report = (await clearing.getRun(run.id)).run.report as { currencies: Array<{ network_sum_minor: number; operator_revenue_total_minor: number; operator_revenue_minor: Record<string, number> }> };
    expect(report.currencies[0]).toMatchObject({ network_sum_minor: 0, operator_revenue_total_minor: 17_135 - 129 });
    expect(report.currencies[0]!.operator_revenue_minor.adjustment).toBe(-129);

    // The disputed April statement is exactly as it was.
    expect(await hub.db("settlement_statements").where({ id: stmtId("2026-04", A) }).first("content_sha256", "csv_sha256", "pdf_sha256", "net_amount_minor")).toEqual(aprilBefore);
    await expect(hub.db("settlement_adjustments").update({ amount_minor: 1 })).rejects.toThrow(/closed/);

    // Both sides now see where the adjustment landed.
    const seen = (await (await hub.fetch(`/v1/settlement-disputes/${accepted.id}`, { headers: bearer(token) })).json()) as Dispute;
    expect(seen.resolution!.adjustment).toMatchObject({ statement_id: stmtId("2026-05", A), line_no: line.line_no });
    expect(seen.trail.map((e) => [e.kind, e.actor, e.amount_minor])).toEqual([
      ["opened", "partner", 129],
      ["comment", "operator", null],
      ["comment", "partner", null],
      ["accepted", "operator", 129],
    ]);

    // The May PDF prints the adjustment and what it corrects.
    const pdf = Buffer.from(await (await hub.fetch(`/v1/settlements/${stmtId("2026-05", A)}/summary.pdf`, { headers: bearer(token) })).arrayBuffer());
    expect(createHash("sha256").update(pdf).digest("hex")).toBe(may.pdf_sha256);
    // Long ids wrap inside the table's cells: compare without whitespace.
    const text = (await pdfText(pdf)).replace(/\s+/g, "");
    expect(text).toContain(`Dispute${accepted.id}accepted:correctionofstatement${stmtId("2026-04", A)},line1`);
    expect(text).toContain("Adjustments+1.21EUR");
    expect(text).toContain("1.29+1.29");
    expect(text).toContain("Netamountofthisstatement-119.32EUR");
  });

  it("holds every dispute and PDF route to the shared security set", async () => {
    const { A } = t.partners;
    // The shared set forges tokens on the real clock.
    clock.set(new Date());
    const id = stmtId("2026-04", A);
    await expectRouteSecurity(hub, { method: "GET", path: `/v1/settlements/${id}/summary.pdf`, scopes: ["settlements:read"], audience: "partner", partnerId: A });
    await expectRouteSecurity(hub, { method: "POST", path: `/v1/settlements/${id}/disputes`, body: { line_no: 2, reason: "x" }, scopes: ["settlements:write"], audience: "partner", partnerId: A });
    await expectRouteSecurity(hub, { method: "GET", path: "/v1/settlement-disputes", scopes: ["settlements:read"], audience: "partner", partnerId: A });
    await expectRouteSecurity(hub, { method: "GET", path: `/v1/settlement-disputes/${accepted.id}`, scopes: ["settlements:read"], audience: "partner", partnerId: A });
    await expectRouteSecurity(hub, { method: "POST", path: `/v1/settlement-disputes/${accepted.id}/comments`, body: { note: "x" }, scopes: ["settlements:write"], audience: "partner", partnerId: A });
    await expectRouteSecurity(hub, { method: "GET", path: "/admin/v1/settlement-disputes", scopes: ["admin"], audience: "admin" });
    await expectRouteSecurity(hub, { method: "GET", path: `/admin/v1/settlement-disputes/${accepted.id}`, scopes: ["admin"], audience: "admin" });
    await expectRouteSecurity(hub, { method: "POST", path: `/admin/v1/settlement-disputes/${accepted.id}/comments`, body: { note: "x" }, scopes: ["admin"], audience: "admin" });
    await expectRouteSecurity(hub, { method: "POST", path: `/admin/v1/settlement-disputes/${accepted.id}/resolution`, body: { outcome: "rejected", note: "x" }, scopes: ["admin"], audience: "admin" });
  });
});
