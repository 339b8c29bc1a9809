import http, { type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { ledgerScenario } from "../../../test/factories/ledger.ts";
import { partnerToken } from "../../../test/factories/auth.ts";

/**
 * The hot path (hot-path.ts) answers `POST /v1/earn` and `POST /v1/burn` without Express. Every request below goes to
 * the hub's server (hot path first) and to a server running the Express app alone, on the same
 * hub: the answers must be the same, and the requests the hot path must leave to Express must
 * reach Express.
 */
let hub: TestHub;
let expressUrl: string;
let expressServer: http.Server;
let s: Awaited<ReturnType<typeof ledgerScenario>>;

beforeAll(async () => {
  hub = await startTestHub({ config: { BODY_LIMIT: "4kb" } });
  expressServer = http.createServer(hub.hub.app);
  await new Promise<void>((r) => expressServer.listen(0, "127.0.0.1", () => r()));
  expressUrl = `http://127.0.0.1:${(expressServer.address() as AddressInfo).port}`;
  s = await ledgerScenario(hub);
});
afterAll(async () => {
  await new Promise<void>((r) => {
    expressServer.close(() => r());
    expressServer.closeAllConnections();
  });
  await hub.close();
});

interface Sent {
  status: number;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
}

/** One raw request: exactly these headers, the body as given (a Buffer, or chunked when `chunked`). */
function send(base: string, path: string, headers: Record<string, string>, body: Buffer | string, opts: { chunked?: boolean } = {}): Promise<Sent> {
  const url = new URL(base + path);
  const buf = typeof body === "string" ? Buffer.from(body) : body;
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method: "POST", headers: opts.chunked ? headers : { ...headers, "content-length": String(buf.length) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({ status: res.statusCode!, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} });
        });
      },
    );
    req.on("error", reject);
    if (opts.chunked) {
      req.write(buf.subarray(0, 5));
      req.end(buf.subarray(5));
    } else req.end(buf);
  });
}

let n = 0;
const headers = (over: Record<string, string | undefined> = {}) => {
  const h: Record<string, string | undefined> = {
    authorization: `Bearer ${s.token}`,
    "content-type": "application/json",
    "idempotency-key": `hot-${Date.now()}-${++n}`,
    ...over,
  };
  return Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined)) as Record<string, string>;
};
const earn = (over: Record<string, unknown> = {}) =>
  JSON.stringify({ member_id: s.member.id, partner_transaction_id: `hot-${Date.now()}-${++n}`, amount_minor: 1_234, currency: "EUR", ...over });

/** Sends the same request to both servers (fresh key and transaction id for each unless fixed) and counts what Express handled. */
async function both(make: () => { path?: string; headers: Record<string, string>; body: Buffer | string; chunked?: boolean }) {
  // Express's app function hands every request to app.handle (not in its types).
  const handle = vi.spyOn(hub.hub.app as unknown as { handle: (...args: unknown[]) => void }, "handle");
  try {
    const a = make();
    const hot = await send(hub.url, a.path ?? "/v1/earn", a.headers, a.body, { chunked: a.chunked ?? false });
    const viaExpressFromHub = handle.mock.calls.length;
    const b = make();
    const plain = await send(expressUrl, b.path ?? "/v1/earn", b.headers, b.body, { chunked: b.chunked ?? false });
    return { hot, plain, hotWentToExpress: viaExpressFromHub > 0 };
  } finally {
    handle.mockRestore();
  }
}

const withoutIds = (b: Record<string, unknown>) => {
  const { request_id: _r, transaction_id: _t, lot: _l, partner_transaction_id: _p, occurred_at: _o, ...rest } = b;
  return rest;
};

describe("the hot path for POST /v1/earn", () => {
  it("answers a plain earn itself, as Express does: status, body, headers", async () => {
    const r = await both(() => ({ headers: headers(), body: earn() }));
    expect(r.hotWentToExpress).toBe(false);
    expect(r.hot.status).toBe(201);
    expect(r.plain.status).toBe(201);
    expect(withoutIds(r.hot.body)).toEqual({ ...withoutIds(r.plain.body), balance: r.hot.body.balance });
    for (const h of ["content-type", "x-content-type-options", "referrer-policy"]) expect(r.hot.headers[h], h).toBe(r.plain.headers[h]);
    expect(r.hot.headers["x-request-id"]).toMatch(/^req_/);
    expect(Number(r.hot.headers["content-length"])).toBeGreaterThan(0);
    expect(r.hot.headers.etag).toBeUndefined();
  });

  it("replays a retried Idempotency-Key and keeps the caller's X-Request-Id", async () => {
    const h = headers({ "x-request-id": "caller-req-0001" });
    const body = earn();
    const first = await send(hub.url, "/v1/earn", h, body);
    const again = await send(hub.url, "/v1/earn", h, body);
    expect(first.status).toBe(201);
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    expect(first.headers["x-request-id"]).toBe("caller-req-0001");
  });

  const refused: Array<[string, () => { headers: Record<string, string>; body: Buffer | string }, number, string]> = [
    ["malformed JSON", () => ({ headers: headers(), body: '{"member_id": ' }), 400, "malformed-json"],
    ["a JSON string, not an object", () => ({ headers: headers(), body: '"earn"' }), 400, "malformed-json"],
    ["whitespace only", () => ({ headers: headers(), body: "   " }), 400, "malformed-json"],
    ["a field of the wrong type", () => ({ headers: headers(), body: earn({ amount_minor: "12" }) }), 422, "validation-error"],
    ["a byte order mark before a wrong field", () => ({ headers: headers(), body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(earn({ currency: 7 }))]) }), 422, "validation-error"],
    ["a NUL character", () => ({ headers: headers(), body: earn({ partner_transaction_id: "a\u0000b" }) }), 422, "validation-error"],
    ["no Idempotency-Key", () => ({ headers: headers({ "idempotency-key": undefined }), body: earn() }), 422, "validation-error"],
    ["no token", () => ({ headers: headers({ authorization: undefined }), body: earn() }), 401, "invalid-token"],
    ["a malformed token", () => ({ headers: headers({ authorization: "Bearer not-a-jwt" }), body: earn() }), 401, "invalid-token"],
    ["charset=utf-8 named, wrong field", () => ({ headers: headers({ "content-type": "application/json; charset=UTF-8" }), body: earn({ amount_minor: -1 }) }), 422, "validation-error"],
  ];
  for (const [what, make, status, code] of refused) {
    it(`refuses ${what} as Express does (${status} ${code})`, async () => {
      const r = await both(make);
      expect(r.hotWentToExpress).toBe(false);
      expect(r.hot.status).toBe(status);
      expect(r.hot.body.code).toBe(code);
      expect(r.hot.headers["content-type"]).toBe("application/problem+json; charset=utf-8");
      expect({ ...r.hot.body, request_id: "-" }).toEqual({ ...r.plain.body, request_id: "-" });
      expect(r.hot.headers["www-authenticate"]).toBe(r.plain.headers["www-authenticate"]);
    });
  }

  it("refuses a token without earn:write (403) as Express does", async () => {
    const token = await partnerToken(hub, s.partner.id, ["members:read"]);
    const r = await both(() => ({ headers: headers({ authorization: `Bearer ${token}` }), body: earn() }));
    expect(r.hotWentToExpress).toBe(false);
    expect(r.hot.status).toBe(403);
    expect({ ...r.hot.body, request_id: "-" }).toEqual({ ...r.plain.body, request_id: "-" });
  });

  const leftToExpress: Array<[string, () => { path?: string; headers: Record<string, string>; body: Buffer | string; chunked?: boolean }, number]> = [
    ["a query string (?dry_run=true)", () => ({ path: "/v1/earn?dry_run=true", headers: headers(), body: earn() }), 200],
    ["a chunked body", () => ({ headers: headers(), body: earn(), chunked: true }), 201],
    ["another media type", () => ({ headers: headers({ "content-type": "text/plain" }), body: earn() }), 415],
    ["another charset", () => ({ headers: headers({ "content-type": "application/json; charset=latin1" }), body: earn() }), 415],
    ["a body over BODY_LIMIT", () => ({ headers: headers(), body: earn({ lines: Array.from({ length: 150 }, (_, i) => ({ sku: `S${i}`, category: "food", amount_minor: 1 })) }) }), 413],
    ["a gzip body that is not", () => ({ headers: headers({ "content-encoding": "gzip" }), body: earn() }), 400],
    ["a trailing slash", () => ({ path: "/v1/earn/", headers: headers(), body: earn() }), 201],
  ];
  for (const [what, make, status] of leftToExpress) {
    it(`leaves ${what} to Express (${status})`, async () => {
      const r = await both(make);
      expect(r.hotWentToExpress).toBe(true);
      expect(r.hot.status).toBe(status);
      expect(r.plain.status).toBe(status);
    });
  }

  it("records the call in the partner's request log under its route", async () => {
    const r = await send(hub.url, "/v1/earn", headers(), earn());
    expect(r.status).toBe(201);
    const id = r.headers["x-request-id"] as string;
    let row: { route: string; status: number; method: string } | undefined;
    for (let i = 0; i < 50 && !row; i++) {
      row = await hub.db("portal_request_log").where({ request_id: id }).first();
      if (!row) await new Promise((res) => setTimeout(res, 100));
    }
    expect(row).toMatchObject({ route: "/v1/earn", status: 201, method: "POST" });
  });
});

describe("the hot path for POST /v1/burn", () => {
  const burn = (over: Record<string, unknown> = {}) =>
    JSON.stringify({ member_id: s.member.id, partner_transaction_id: `hot-b-${Date.now()}-${++n}`, points: 2, amount_minor: 2, currency: "EUR", ...over });
  beforeAll(async () => {
    // Points to spend, earned first.
    const r = await send(hub.url, "/v1/earn", headers(), earn({ amount_minor: 2_000_000 }));
    expect(r.status).toBe(201);
  });

  it("answers a burn itself, as Express does: status, body, headers", async () => {
    const r = await both(() => ({ path: "/v1/burn", headers: headers(), body: burn() }));
    expect(r.hotWentToExpress).toBe(false);
    expect(r.hot.status).toBe(201);
    expect(r.plain.status).toBe(201);
    const { balance: _b1, ...hot } = withoutIds(r.hot.body);
    const { balance: _b2, ...plain } = withoutIds(r.plain.body);
    expect(hot).toEqual(plain);
    // The second burn saw the first one's points gone.
    expect((r.plain.body.balance as { available: number }).available).toBe((r.hot.body.balance as { available: number }).available - 2);
    for (const h of ["content-type", "x-content-type-options", "referrer-policy"]) expect(r.hot.headers[h], h).toBe(r.plain.headers[h]);
  });

  it("replays a retried burn: one effect", async () => {
    const h = headers();
    const body = burn();
    const first = await send(hub.url, "/v1/burn", h, body);
    const again = await send(hub.url, "/v1/burn", h, body);
    expect(first.status).toBe(201);
    expect(again.status).toBe(201);
    expect(again.headers["idempotent-replayed"]).toBe("true");
    expect(again.body).toEqual(first.body);
  });

  const refused: Array<[string, () => { headers: Record<string, string>; body: string }, number, string]> = [
    ["more points than the member has", () => ({ headers: headers(), body: burn({ points: 10_000_000 }) }), 422, "insufficient-points"],
    ["a field of the wrong type", () => ({ headers: headers(), body: burn({ points: "2" }) }), 422, "validation-error"],
    ["no Idempotency-Key", () => ({ headers: headers({ "idempotency-key": undefined }), body: burn() }), 422, "validation-error"],
    ["no token", () => ({ headers: headers({ authorization: undefined }), body: burn() }), 401, "invalid-token"],
  ];
  for (const [what, make, status, code] of refused) {
    it(`refuses ${what} as Express does (${status} ${code})`, async () => {
      const r = await both(() => ({ path: "/v1/burn", ...make() }));
      expect(r.hotWentToExpress).toBe(false);
      expect(r.hot.status).toBe(status);
      expect(r.hot.body.code).toBe(code);
      expect(r.hot.headers["content-type"]).toBe("application/problem+json; charset=utf-8");
      expect({ ...r.hot.body, request_id: "-" }).toEqual({ ...r.plain.body, request_id: "-" });
    });
  }

  it("refuses a token without burn:write (403) as Express does", async () => {
    const token = await partnerToken(hub, s.partner.id, ["earn:write"]);
    const r = await both(() => ({ path: "/v1/burn", headers: headers({ authorization: `Bearer ${token}` }), body: burn() }));
    expect(r.hotWentToExpress).toBe(false);
    expect(r.hot.status).toBe(403);
    expect({ ...r.hot.body, request_id: "-" }).toEqual({ ...r.plain.body, request_id: "-" });
  });

  it("leaves a chunked burn to Express, which answers it", async () => {
    const r = await both(() => ({ path: "/v1/burn", headers: headers(), body: burn(), chunked: true }));
    expect(r.hotWentToExpress).toBe(true);
    expect(r.hot.status).toBe(201);
    expect(r.plain.status).toBe(201);
  });
});
