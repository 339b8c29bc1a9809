import type { AddressInfo } from "node:net";
import express from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../infra/logger.ts";
import { createApiRouter, type Principal } from "./router.ts";
import { notFound, problemHandler } from "./errors.middleware.ts";
import { requestContext } from "./request-context.middleware.ts";
import { httpErrors } from "./problem.ts";
import { json } from "../../../test/http.ts";

const spec = {
  openapi: "3.1.0",
  info: { title: "t", version: "1" },
  paths: {
    "/things": {
      post: {
        operationId: "createThing",
        security: [{ partner: ["things:write"] }],
        parameters: [{ $ref: "#/components/parameters/IdempotencyKey" }],
        requestBody: {
          required: true,
          content: { "application/json": { schema: { $ref: "#/components/schemas/NewThing" } } },
        },
        responses: { "201": { description: "", content: { "application/json": { schema: { $ref: "#/components/schemas/Thing" } } } } },
      },
    },
    "/things/{id}": {
      get: {
        operationId: "getThing",
        security: [],
        parameters: [
          { name: "id", in: "path", required: true, schema: { type: "integer" } },
          { name: "limit", in: "query", schema: { type: "integer", maximum: 10, default: 5 } },
        ],
        responses: { "200": { description: "", content: { "application/json": { schema: { $ref: "#/components/schemas/Thing" } } } } },
      },
    },
    // Registered after /things/{id}: Express finds that route first for GET /things/special.
    "/things/special": {
      get: { operationId: "getSpecialThing", security: [], responses: { "200": { description: "", content: { "application/json": { schema: { type: "object" } } } } } },
    },
    "/stats": {
      get: { operationId: "getStats", security: [], responses: { "200": { description: "", content: { "application/json": { schema: { type: "object" } } } } } },
    },
  },
  components: {
    parameters: { IdempotencyKey: { name: "Idempotency-Key", in: "header", required: true, schema: { type: "string", minLength: 1 } } },
    schemas: {
      NewThing: {
        type: "object",
        additionalProperties: false,
        required: ["name", "points"],
        properties: { name: { type: "string", minLength: 1 }, points: { type: "integer", minimum: 1 } },
      },
      Thing: { type: "object", required: ["id"], properties: { id: { type: "integer" }, limit: { type: "integer" } } },
    },
  },
};

let url = "";
let server: ReturnType<express.Express["listen"]>;
const log = createLogger("silent");

beforeAll(async () => {
  const { router } = createApiRouter({
    spec,
    log,
    validateResponses: true,
    bodyLimit: "1kb",
    authenticate: async (req): Promise<Principal> => {
      const auth = req.headers.authorization;
      if (!auth) throw httpErrors.make("unauthorized");
      return { audience: "partner", clientId: "c", partnerId: "p", tokenId: "t", scopes: new Set(auth.replace("Bearer ", "").split(",")) };
    },
    handlers: {
      createThing: async ({ body }) => ({ status: 201, body: { id: (body as { points: number }).points } }),
      getThing: async ({ params, query }) =>
        params.id === 13 ? { status: 200, body: { id: "not-an-integer" } } : { status: 200, body: { id: params.id, limit: query.limit } },
      getSpecialThing: async () => ({ status: 200, body: { special: true } }),
      getStats: async ({ req }) => ({ status: 200, body: { route: (req.route as { path: string }).path, params: req.params } }),
    },
  });
  const app = express();
  app.use(...requestContext(log));
  app.use(router);
  app.use(notFound());
  app.use(problemHandler(log));
  server = app.listen(0);
  await new Promise((r) => server.once("listening", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const post = (body: string, headers: Record<string, string> = {}) =>
  fetch(`${url}/things`, {
    method: "POST",
    body,
    headers: { "content-type": "application/json", authorization: "Bearer things:write", "idempotency-key": "k1", ...headers },
  });

describe("contract-driven router", () => {
  it("serves a valid request and coerces typed path and query parameters", async () => {
    const res = await fetch(`${url}/things/7?limit=3`);
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ id: 7, limit: 3 });
    expect((await post(JSON.stringify({ name: "a", points: 5 }))).status).toBe(201);
  });

  it("answers 422 problem+json naming each bad field", async () => {
    const res = await post(JSON.stringify({ name: "", points: 0, extra: 1 }));
    expect(res.status).toBe(422);
    expect(res.headers.get("content-type")).toMatch(/application\/problem\+json/);
    const p = await json(res);
    expect(p.code).toBe("validation-error");
    expect(p.request_id).toBe(res.headers.get("x-request-id"));
    expect(p.errors).toEqual(
      expect.arrayContaining([
        { field: "body/name", reason: expect.any(String) },
        { field: "body/points", reason: expect.any(String) },
        { field: "body/extra", reason: "is not a known field" },
      ]),
    );
  });

  it("refuses a NUL character (U+0000) in a body or query string as a 422 naming the field (the database refused it as a 500)", async () => {
    const res = await post(JSON.stringify({ name: "a\u0000b", points: 1 }));
    expect(res.status).toBe(422);
    expect((await json(res)).errors).toEqual([{ field: "body/name", reason: "must not contain the NUL character (U+0000)" }]);
    const q = await fetch(`${url}/stats?note=a%00b`);
    expect(q.status).toBe(422);
    expect((await json(q)).errors).toEqual([{ field: "query/note", reason: "must not contain the NUL character (U+0000)" }]);
    expect((await post(JSON.stringify({ name: "a\\u0000b", points: 2 }))).status).toBe(201);
  });

  it("requires declared headers", async () => {
    const res = await post(JSON.stringify({ name: "a", points: 1 }), { "idempotency-key": "" });
    expect(res.status).toBe(422);
    expect((await json(res)).errors[0].field).toBe("header/idempotency-key");
  });

  it("refuses bad query parameters", async () => {
    const res = await fetch(`${url}/things/7?limit=99`);
    expect(res.status).toBe(422);
    expect((await json(res)).errors[0].field).toBe("query/limit");
  });

  it("answers 400 for malformed JSON, 413 for an oversized body, 415 for a wrong content type", async () => {
    expect((await post("{nope")).status).toBe(400);
    expect((await post(JSON.stringify({ name: "x".repeat(5000), points: 1 }))).status).toBe(413);
    const res = await post("name=a", { "content-type": "text/plain" });
    expect(res.status).toBe(415);
    expect((await json(res)).code).toBe("unsupported-media-type");
  });

  it("checks the token before the body, then the scopes the contract declares", async () => {
    const anon = await fetch(`${url}/things`, { method: "POST", body: "{", headers: { "content-type": "application/json" } });
    expect(anon.status).toBe(401);
    const wrongScope = await post(JSON.stringify({ name: "a", points: 1 }), { authorization: "Bearer other:scope" });
    expect(wrongScope.status).toBe(403);
    expect(wrongScope.headers.get("www-authenticate")).toMatch(/insufficient_scope/);
  });

  it("answers 404 and 405 as problems", async () => {
    const nf = await fetch(`${url}/nothing`);
    expect(nf.status).toBe(404);
    expect((await json(nf)).code).toBe("not-found");
    const na = await fetch(`${url}/things/1`, { method: "DELETE" });
    expect(na.status).toBe(405);
    expect(na.headers.get("allow")).toBe("GET, HEAD");
  });

  it("holds responses to the contract outside production", async () => {
    const res = await fetch(`${url}/things/13`);
    expect(res.status).toBe(500);
    expect((await json(res)).code).toBe("response-validation-failed");
  });

  it("reaches a path without parameters directly, as Express would: same route, same route path, any case", async () => {
    for (const p of ["/stats", "/STATS", "/stats/"]) {
      const res = await fetch(`${url}${p}`);
      expect(res.status, p).toBe(200);
      expect(await json(res), p).toEqual({ route: "/stats", params: {} });
    }
    // An earlier route's pattern takes the path first, as it did before.
    const shadowed = await fetch(`${url}/things/special`);
    expect(shadowed.status).toBe(422);
    expect((await json(shadowed)).errors[0].field).toBe("path/id");
    expect((await fetch(`${url}/stats`, { method: "POST" })).status).toBe(405);
  });

  it("refuses to start when an operation has no handler", () => {
    expect(() => createApiRouter({ spec, log, validateResponses: false, authenticate: async () => ({}) as Principal, handlers: {} })).toThrow(/createThing/);
  });
});
