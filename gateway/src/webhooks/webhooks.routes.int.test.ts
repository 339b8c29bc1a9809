import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { startReceiver, until, type Receiver } from "../../../test/webhook-receiver.ts";
import { createPartner } from "../../../test/factories/network.ts";
import { bearer, partnerToken } from "../../../test/factories/auth.ts";
import { expectRouteSecurity } from "../../../test/security.ts";
import { json } from "../../../test/http.ts";
import { recordEvent } from "../events/events.service.ts";

let t: TestHub;
let rx: Receiver;
let partnerId: string;
let token: string;

beforeAll(async () => {
  t = await startTestHub({ config: { WEBHOOK_ALLOW_LOOPBACK: "true", OUTBOX_POLL_MS: "20", WEBHOOK_RETRY_SCHEDULE: "20ms,20ms", WEBHOOK_TIMEOUT_MS: "1000" } });
  rx = await startReceiver();
  partnerId = (await createPartner(t.db)).id;
  token = await partnerToken(t, partnerId, ["webhooks:manage"]);
});
afterAll(async () => {
  await t.close();
  await rx.close();
});

function api(path: string, init: { method?: string; body?: unknown; token?: string } = {}) {
  return t.fetch(path, {
    method: init.method ?? "GET",
    headers: { ...bearer(init.token ?? token), ...(init.body !== undefined ? { "content-type": "application/json" } : {}) },
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
}

async function createEndpoint(body: Record<string, unknown> = {}) {
  const res = await api("/v1/webhook-endpoints", { method: "POST", body: { url: rx.url, event_types: ["earn.posted"], ...body } });
  expect(res.status).toBe(201);
  return json(res);
}

describe("webhook endpoint routes", () => {
  it("creates, reads, changes, rotates and deletes an endpoint; the secret is shown only on create and rotate", async () => {
    const created = await createEndpoint({ description: "CRM", event_types: ["earn.posted", "tier.changed", "earn.posted"] });
    expect(created).toMatchObject({ url: rx.url, description: "CRM", event_types: ["earn.posted", "tier.changed"], enabled: true, disabled_reason: null, previous_secret_expires_at: null });
    expect(created.id).toMatch(/^whe_/);
    expect(created.secret).toMatch(/^whsec_/);

    const got = await json(await api(`/v1/webhook-endpoints/${created.id}`));
    expect(got).toMatchObject({ id: created.id, url: rx.url });
    expect(got.secret).toBeUndefined();
    const list = await json(await api("/v1/webhook-endpoints"));
    expect(list.items.map((e: { id: string }) => e.id)).toContain(created.id);
    expect(JSON.stringify(list)).not.toContain("whsec_");

    const patched = await api(`/v1/webhook-endpoints/${created.id}`, { method: "PATCH", body: { event_types: ["*"], enabled: false, description: null } });
    expect(patched.status).toBe(200);
    expect(await json(patched)).toMatchObject({ event_types: ["*"], enabled: false, description: null });

    const rotated = await api(`/v1/webhook-endpoints/${created.id}/rotate-secret`, { method: "POST", body: { overlap_seconds: 600 } });
    expect(rotated.status).toBe(200);
    const r = await json(rotated);
    expect(r.secret).toMatch(/^whsec_/);
    expect(r.secret).not.toBe(created.secret);
    expect(new Date(r.previous_secret_expires_at).getTime()).toBeGreaterThan(Date.now() + 590_000);
    // No body: the default overlap (24 hours).
    const again = await json(await api(`/v1/webhook-endpoints/${created.id}/rotate-secret`, { method: "POST" }));
    expect(new Date(again.previous_secret_expires_at).getTime()).toBeGreaterThan(Date.now() + 23 * 3600_000);

    expect((await api(`/v1/webhook-endpoints/${created.id}`, { method: "DELETE" })).status).toBe(204);
    expect((await api(`/v1/webhook-endpoints/${created.id}`)).status).toBe(404);
  });

  it("lists deliveries by status, shows one with its attempts, and replays it", async () => {
    const ep = await createEndpoint();
    rx.answer(() => ({ status: 503, body: "busy" }));
    const evtId = await t.db.transaction((trx) => recordEvent(trx, { type: "earn.posted", partnerId, occurredAt: new Date(), data: { earn_id: "ern_r" } }));
    await until(async () => (await json(await api(`/v1/webhook-endpoints/${ep.id}/deliveries?status=dead`))).items.length === 1, { what: "dead-lettered" });
    const page = await json(await api(`/v1/webhook-endpoints/${ep.id}/deliveries?status=dead`));
    expect(page.items[0]).toMatchObject({ event_id: evtId, event_type: "earn.posted", status: "dead", attempt_count: 3, last_http_status: 503 });
    expect(page.next_cursor).toBeNull();
    expect((await json(await api(`/v1/webhook-endpoints/${ep.id}/deliveries?status=delivered`))).items).toEqual([]);

    const id = page.items[0].id;
    const detail = await json(await api(`/v1/webhook-endpoints/${ep.id}/deliveries/${id}`));
    expect(detail.attempts).toHaveLength(3);
    expect(detail.attempts[0]).toMatchObject({ attempt: 1, outcome: "http-error", http_status: 503, response_excerpt: "busy" });

    rx.answer(() => ({ status: 200, body: "ok" }));
    const replay = await api(`/v1/webhook-endpoints/${ep.id}/deliveries/${id}/replay`, { method: "POST" });
    expect(replay.status).toBe(202);
    expect(await json(replay)).toMatchObject({ id, status: "pending", replays: 1 });
    await until(async () => (await json(await api(`/v1/webhook-endpoints/${ep.id}/deliveries/${id}`))).status === "delivered", { what: "replayed" });
    await api(`/v1/webhook-endpoints/${ep.id}`, { method: "DELETE" });
  });

  it("pages deliveries with a cursor", async () => {
    const ep = await createEndpoint();
    for (let i = 0; i < 5; i++) await t.db.transaction((trx) => recordEvent(trx, { type: "earn.posted", partnerId, occurredAt: new Date(), data: { i } }));
    await until(async () => (await t.db("webhook_deliveries").where({ endpoint_id: ep.id, status: "delivered" })).length === 5);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: Array<{ id: string }>; next_cursor: string | null } = await json(await api(`/v1/webhook-endpoints/${ep.id}/deliveries?limit=2${cursor ? `&cursor=${cursor}` : ""}`));
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((d) => d.id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(seen).toHaveLength(5);
    expect(new Set(seen).size).toBe(5);
    expect([...seen].sort().reverse()).toEqual(seen);
  });
});

describe("webhook endpoint routes: errors", () => {
  it("refuses SSRF targets, unknown event types and malformed bodies with problems", async () => {
    for (const url of ["http://10.0.0.1/hooks", "http://169.254.169.254/latest/meta-data", "http://192.168.1.10/", "http://[fd00::1]/", "http://100.64.0.1/", "ftp://127.0.0.1/x"]) {
      const res = await api("/v1/webhook-endpoints", { method: "POST", body: { url, event_types: ["*"] } });
      expect(res.status, url).toBe(422);
      expect((await json(res)).code, url).toBe("destination-refused");
    }
    const badType = await api("/v1/webhook-endpoints", { method: "POST", body: { url: rx.url, event_types: ["earn.posted", "nope.nothing"] } });
    expect(badType.status).toBe(422);
    expect((await json(badType)).errors).toEqual([{ field: "body/event_types/1", reason: "nope.nothing is not an event type" }]);
    const missing = await api("/v1/webhook-endpoints", { method: "POST", body: { event_types: ["*"] } });
    expect(missing.status).toBe(422);
    const empty = await api("/v1/webhook-endpoints", { method: "POST", body: { url: rx.url, event_types: [] } });
    expect(empty.status).toBe(422);
    const ep = await createEndpoint();
    const badPatch = await api(`/v1/webhook-endpoints/${ep.id}`, { method: "PATCH", body: { url: "http://10.1.1.1/" } });
    expect(badPatch.status).toBe(422);
    expect((await json(await api(`/v1/webhook-endpoints/${ep.id}`))).url).toBe(rx.url);
    expect((await api(`/v1/webhook-endpoints/${ep.id}/rotate-secret`, { method: "POST", body: { overlap_seconds: 999_999_999 } })).status).toBe(422);
    expect((await api(`/v1/webhook-endpoints/${ep.id}/deliveries?status=lost`)).status).toBe(422);
    expect((await api(`/v1/webhook-endpoints/${ep.id}/deliveries?cursor=garbage`)).status).toBe(422);
    await api(`/v1/webhook-endpoints/${ep.id}`, { method: "DELETE" });
  });

  it("answers 404 for endpoints and deliveries that do not exist, and 409 for a pending replay", async () => {
    const missing = "whe_00000000000000000000000000";
    expect((await api(`/v1/webhook-endpoints/${missing}`)).status).toBe(404);
    expect((await api(`/v1/webhook-endpoints/${missing}`, { method: "DELETE" })).status).toBe(404);
    const ep = await createEndpoint();
    const res = await api(`/v1/webhook-endpoints/${ep.id}/deliveries/whd_00000000000000000000000000`);
    expect(res.status).toBe(404);
    expect((await json(res)).code).toBe("webhook-delivery-not-found");
    rx.answer(() => "hang");
    await t.db.transaction((trx) => recordEvent(trx, { type: "earn.posted", partnerId, occurredAt: new Date(), data: {} }));
    const d = await until(async () => (await t.db("webhook_deliveries").where({ endpoint_id: ep.id }).first()) as { id: string } | undefined);
    const pending = await api(`/v1/webhook-endpoints/${ep.id}/deliveries/${d.id}/replay`, { method: "POST" });
    expect(pending.status).toBe(409);
    expect((await json(pending)).code).toBe("delivery-pending");
    rx.answer(() => ({ status: 200 }));
    await api(`/v1/webhook-endpoints/${ep.id}`, { method: "DELETE" });
  });

  it("refuses plain http and loopback names when loopback is not allowed", async () => {
    const strict = await startTestHub();
    try {
      const p = (await createPartner(strict.db)).id;
      const tok = await partnerToken(strict, p, ["webhooks:manage"]);
      for (const url of [rx.url, `http://localhost:${rx.port}/hooks`, `https://localhost:${rx.port}/hooks`, `https://127.0.0.1:${rx.port}/hooks`]) {
        const res = await strict.fetch("/v1/webhook-endpoints", { method: "POST", headers: { ...bearer(tok), "content-type": "application/json" }, body: JSON.stringify({ url, event_types: ["*"] }) });
        expect(res.status, url).toBe(422);
        expect((await json(res)).code).toBe("destination-refused");
      }
    } finally {
      await strict.close();
    }
  });
});

describe("webhook endpoint routes: security", () => {
  it("runs the shared security set on every route", async () => {
    const ep = await createEndpoint();
    const d = `/v1/webhook-endpoints/${ep.id}/deliveries/whd_00000000000000000000000000`;
    const routes = [
      { method: "GET", path: "/v1/webhook-endpoints" },
      { method: "POST", path: "/v1/webhook-endpoints", body: { url: rx.url, event_types: ["*"] } },
      { method: "GET", path: `/v1/webhook-endpoints/${ep.id}` },
      { method: "PATCH", path: `/v1/webhook-endpoints/${ep.id}`, body: { enabled: true } },
      { method: "DELETE", path: `/v1/webhook-endpoints/${ep.id}` },
      { method: "POST", path: `/v1/webhook-endpoints/${ep.id}/rotate-secret` },
      { method: "GET", path: `/v1/webhook-endpoints/${ep.id}/deliveries` },
      { method: "GET", path: d },
      { method: "POST", path: `${d}/replay` },
    ];
    for (const r of routes) await expectRouteSecurity(t, { ...r, scopes: ["webhooks:manage"], audience: "partner", partnerId });
    expect((await api(`/v1/webhook-endpoints/${ep.id}`)).status).toBe(200);
  });

  it("hides another partner's endpoints and deliveries behind 404", async () => {
    const ep = await createEndpoint({ event_types: ["*"] });
    await t.db.transaction((trx) => recordEvent(trx, { type: "earn.posted", partnerId, occurredAt: new Date(), data: {} }));
    const d = await until(async () => (await t.db("webhook_deliveries").where({ endpoint_id: ep.id, status: "delivered" }).first()) as { id: string } | undefined);
    const other = await partnerToken(t, (await createPartner(t.db)).id, ["webhooks:manage"]);
    const calls: Array<[string, string, unknown?]> = [
      ["GET", `/v1/webhook-endpoints/${ep.id}`],
      ["PATCH", `/v1/webhook-endpoints/${ep.id}`, { enabled: false }],
      ["DELETE", `/v1/webhook-endpoints/${ep.id}`],
      ["POST", `/v1/webhook-endpoints/${ep.id}/rotate-secret`],
      ["GET", `/v1/webhook-endpoints/${ep.id}/deliveries`],
      ["GET", `/v1/webhook-endpoints/${ep.id}/deliveries/${d.id}`],
      ["POST", `/v1/webhook-endpoints/${ep.id}/deliveries/${d.id}/replay`],
    ];
    for (const [method, path, body] of calls) {
      const res = await api(path, { method, body, token: other });
      expect(res.status, `${method} ${path}`).toBe(404);
    }
    expect((await json(await api("/v1/webhook-endpoints", { token: other }))).items).toEqual([]);
    expect(await json(await api(`/v1/webhook-endpoints/${ep.id}`))).toMatchObject({ id: ep.id, enabled: true });
  });
});
