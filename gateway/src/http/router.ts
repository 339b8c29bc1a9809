import express, { Router, type Request, type RequestHandler, type Response } from "express";
import type { Logger } from "../infra/logger.ts";
import { AppError, httpErrors, validationError, type FieldError } from "./problem.ts";
import { compileOperations, fieldErrors, toExpressPath, type Operation, type Spec } from "./openapi.ts";

/** Who is calling: set by the authenticator from a verified access token. */
export interface Principal {
  /** `partner` tokens act for one partner; `admin` tokens are the operator's staff. */
  audience: "partner" | "admin";
  clientId: string;
  partnerId: string | null;
  scopes: ReadonlySet<string>;
  tokenId: string;
}

export interface HandlerContext {
  req: Request;
  res: Response;
  op: Operation;
  params: Record<string, unknown>;
  query: Record<string, unknown>;
  headers: Record<string, string | undefined>;
  body: unknown;
  /** Present on every operation that declares security; the router has checked its scopes. */
  principal: Principal;
  requestId: string;
  log: Logger;
}

export interface HandlerResult {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Non-JSON answers (CSV, PDF): sent as they are. */
  raw?: { contentType: string; data: string | Buffer };
}

export type Handler = (ctx: HandlerContext) => Promise<HandlerResult>;
export type Handlers = Record<string, Handler>;

/** Verifies the caller against one of the operation's security schemes; throws a 401 AppError. */
export type Authenticate = (req: Request, schemes: string[]) => Promise<Principal>;

export interface RouterOptions {
  spec: Spec;
  handlers: Handlers;
  authenticate: Authenticate;
  validateResponses: boolean;
  log: Logger;
  /** Largest JSON body accepted (bank files have their own, larger limit). */
  bodyLimit?: string;
  /**
   * Runs after authentication and parsing, before validation: a guard that must see the request
   * before anything could echo it (the banks' PAN guard). Throws an AppError to refuse.
   */
  beforeValidate?: (op: Operation, parts: { params: unknown; query: unknown; body: unknown }) => void;
  /**
   * Operations (by operationId) that may also be served without Express, from node:http: see
   * hot-path.ts. Each must have a path without parameters that no earlier route matches.
   */
  hotOperations?: string[];
}

/** What the hot path (hot-path.ts) needs of an operation: its route and the router's own steps but the body parser. */
export interface HotRoute {
  op: Operation;
  route: { path: string; methods: Record<string, boolean> };
  /** Who is calling (the router's step 1). */
  authenticate: RequestHandler;
  /** Validate, run the handler, answer (the router's steps 2 to 4); reads `req.body` as the parser left it. */
  answer: RequestHandler;
}

function mediaType(req: Request): string | undefined {
  return req.headers["content-type"]?.split(";")[0]?.trim().toLowerCase();
}

/** Adds an error for every string (or key) under `v` that holds U+0000, named as a validation error names its field. */
function nulFields(v: unknown, at: string, out: FieldError[]): void {
  if (typeof v === "string") {
    if (v.includes("\u0000")) out.push({ field: at, reason: "must not contain the NUL character (U+0000)" });
  } else if (Array.isArray(v)) {
    v.forEach((x, i) => nulFields(x, `${at}/${i}`, out));
  } else if (v !== null && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) nulFields(k.includes("\u0000") ? "\u0000" : x, `${at}/${k.replaceAll("\u0000", "")}`, out);
  }
}

function hasBody(req: Request): boolean {
  const len = req.headers["content-length"];
  return (len !== undefined && len !== "0") || req.headers["transfer-encoding"] !== undefined;
}

/** Enforces the scopes the contract declares: exactly those, no more, no fewer. */
export function authorize(op: Operation, principal: Principal, scheme: string): void {
  const alternatives = op.security.filter((alt) => scheme in alt);
  const ok = alternatives.some((alt) => Object.values(alt).every((scopes) => scopes.every((s) => principal.scopes.has(s))));
  if (!ok) {
    const needed = alternatives.map((alt) => Object.values(alt).flat().join(" ")).join(" | ");
    throw httpErrors.make("insufficient-scope", `This operation needs the scope ${needed}.`, { required_scopes: needed.split(" ") }, {
      "WWW-Authenticate": `Bearer error="insufficient_scope", scope="${needed}"`,
    });
  }
}

/**
 * Builds the API from the contract: every operation of `openapi/openapi.yaml` is mounted at its
 * path with its handler (looked up by operationId), its declared security and scopes enforced, and
 * its parameters and body validated. Nothing reaches a handler that the contract does not admit.
 */
export function createApiRouter(opts: RouterOptions): { router: Router; operations: Operation[]; hot: Map<string, HotRoute> } {
  const operations = compileOperations(opts.spec);
  const missing = operations.filter((op) => !opts.handlers[op.operationId]).map((op) => op.operationId);
  if (missing.length > 0) throw new Error(`No handler for operations: ${missing.join(", ")}`);
  const router = Router();
  const [jsonParser, formParser, textParser] = [
    // The exact bytes stay on the request for signature checks (Stripe's webhooks sign the raw body).
    express.json({
      limit: opts.bodyLimit ?? "1mb",
      type: ["application/json", "application/*+json"],
      verify: (req, _res, buf) => {
        (req as { rawBody?: Buffer }).rawBody = buf;
      },
    }),
    express.urlencoded({ extended: false, limit: "64kb", type: "application/x-www-form-urlencoded" }),
    // Files (bank statements, clearing files) keep their exact bytes too: imports hash them.
    express.text({
      limit: "200mb",
      type: ["text/csv", "application/x-ndjson", "application/xml"],
      verify: (req, _res, buf) => {
        (req as { rawBody?: Buffer }).rawBody = buf;
      },
    }),
  ];
  // One step hands the body to the one parser its media type calls for (each parser acts only on
  // its own types, and checks them again): one layer per request instead of three, each of which
  // matched the content type anew.
  const TEXT_TYPES = new Set(["text/csv", "application/x-ndjson", "application/xml"]);
  const parseBody: RequestHandler = (req, res, next) => {
    const type = mediaType(req);
    if (type === "application/json" || (type?.startsWith("application/") && type.endsWith("+json"))) return jsonParser(req, res, next);
    if (type === "application/x-www-form-urlencoded") return formParser(req, res, next);
    if (type !== undefined && TEXT_TYPES.has(type)) return textParser(req, res, next);
    next();
  };

  const routes: Array<{ op: Operation; chain: RequestHandler[] }> = [];
  const direct: DirectRoutes = new Map();
  router.use(directRoutes(direct));
  for (const op of operations) {
    const handler = opts.handlers[op.operationId]!;
    // 1. Who is calling — before the body is even read: an anonymous caller learns nothing.
    const schemes = [...new Set(op.security.flatMap((alt) => Object.keys(alt)))];
    const authenticateStep: RequestHandler = async (req, res, next) => {
      if (op.security.length > 0) {
        const principal = await opts.authenticate(req, schemes);
        const scheme = principal.audience === "admin" ? "admin" : "partner";
        if (!schemes.includes(scheme)) {
          throw httpErrors.make("forbidden", `${principal.audience === "admin" ? "An" : "A"} ${principal.audience} token cannot call this operation.`);
        }
        authorize(op, principal, scheme);
        res.locals.principal = principal;
      }
      next();
    };
    const answer = async (req: Request, res: Response) => {
      const requestId = res.locals.requestId as string;
      // The request's child logger is made when something logs through it, not before (most requests never do).
      const log = () => (res.locals.log as Logger | undefined) ?? opts.log;
      const principal = res.locals.principal as Principal | undefined;

      // 2. What was sent.
      const type = mediaType(req);
      if (op.requestContentTypes.length > 0 && hasBody(req) && (!type || !op.requestContentTypes.includes(type))) {
        throw httpErrors.make("unsupported-media-type", `Send ${op.requestContentTypes.join(" or ")}.`, {
          accepted: op.requestContentTypes,
        });
      }
      // Express 5 parses the query string anew on every read of req.query: once is enough.
      const rawQuery = req.query;
      opts.beforeValidate?.(op, { params: req.params, query: rawQuery, body: req.body });
      const errors: FieldError[] = [];
      const params = { ...req.params } as Record<string, unknown>;
      if (op.validateParams && !op.validateParams(params)) errors.push(...fieldErrors("path", op.validateParams.errors));
      const query = { ...(rawQuery as Record<string, unknown>) };
      if (op.validateQuery && !op.validateQuery(query)) errors.push(...fieldErrors("query", op.validateQuery.errors));
      const headers: Record<string, string | undefined> = {};
      for (const name of op.headerNames) {
        const v = req.headers[name];
        if (typeof v === "string") headers[name] = v;
      }
      if (op.validateHeaders && !op.validateHeaders(headers)) errors.push(...fieldErrors("header", op.validateHeaders.errors));
      let body: unknown = undefined;
      if (op.requestContentTypes.length > 0) {
        const present = hasBody(req) && req.body !== undefined;
        if (!present && op.bodyRequired) {
          errors.push({ field: "body", reason: "is required" });
        } else if (present) {
          body = req.body;
          const validate = op.validateBody?.[type ?? ""];
          if (validate && !validate(body)) errors.push(...fieldErrors("body", validate.errors));
        }
      }
      // PostgreSQL text cannot hold U+0000: a NUL in a path, query or body string reached the
      // database and answered 500. Bodies are walked only when their bytes can hold one.
      if (errors.length === 0) {
        nulFields(params, "path", errors);
        nulFields(query, "query", errors);
        const raw = (req as { rawBody?: Buffer }).rawBody;
        if (typeof body === "string" ? body.includes("\u0000") : body !== undefined && (raw === undefined || raw.includes("\\u0000"))) nulFields(body, "body", errors);
      }
      if (errors.length > 0) throw validationError(errors);

      // 3. Do it.
      const result = await handler({
        req,
        res,
        op,
        params,
        query,
        headers,
        body,
        principal: principal as Principal,
        requestId,
        get log() {
          return log();
        },
      });

      // 4. Answer, holding ourselves to the contract outside production.
      if (res.headersSent) return;
      for (const [k, v] of Object.entries(result.headers ?? {})) res.setHeader(k, v);
      if (result.raw) {
        res.status(result.status).type(result.raw.contentType).send(result.raw.data);
        return;
      }
      if (opts.validateResponses) checkResponse(op, result, log);
      if (result.body === undefined) {
        res.statusCode = result.status;
        res.end();
      } else if (op.method === "get") res.status(result.status).json(result.body);
      else sendJson(res, result.status, result.body);
    };
    const chain = [authenticateStep, parseBody, answer];
    router[op.method](toExpressPath(op.path), ...chain);
    routes.push({ op, chain });
  }
  fillDirectRoutes(direct, routes);
  const hot = new Map<string, HotRoute>();
  for (const id of opts.hotOperations ?? []) {
    const found = routes.find((r) => r.op.operationId === id);
    const key = found ? `${found.op.method.toUpperCase()} ${found.op.path}` : "";
    const entry = direct.get(key);
    if (!found || !entry) throw new Error(`${id} cannot be served by the hot path: its path has parameters or an earlier route matches it`);
    hot.set(key, { op: found.op, route: entry.route, authenticate: found.chain[0]!, answer: found.chain[2]! });
  }

  // A known path with a method the contract does not list: 405 with Allow.
  const allowed = new Map<string, Set<string>>();
  for (const op of operations) {
    const key = toExpressPath(op.path);
    const set = allowed.get(key) ?? new Set<string>();
    set.add(op.method.toUpperCase());
    if (op.method === "get") set.add("HEAD");
    allowed.set(key, set);
  }
  for (const [p, methods] of allowed) {
    router.all(p, (_req, res) => {
      res.setHeader("Allow", [...methods].join(", "));
      throw httpErrors.make("method-not-allowed", `Allowed: ${[...methods].join(", ")}.`);
    });
  }
  return { router, operations, hot };
}

/** True when the template (`/v1/members/{memberId}`) matches the path, as Express matches: by segment, any case. */
function templateMatches(template: string, path: string): boolean {
  const t = template.split("/");
  const p = path.split("/");
  return t.length === p.length && t.every((seg, i) => /^\{[^}]+\}$/.test(seg) || seg.toLowerCase() === p[i]!.toLowerCase());
}

type DirectRoutes = Map<string, { route: { path: string; methods: Record<string, boolean> }; chain: RequestHandler[] }>;

/**
 * A call to a path without parameters goes straight to its operation's steps: Express would try
 * every route registered before it first (the earn route is the 45th), matching each one's
 * pattern. Only exact paths are looked up, and only where that operation is the first route
 * Express would find for them; anything else (another case, a trailing slash, HEAD, parameters)
 * goes through the routes as before. The steps run as Express runs a route's: in order, an error
 * thrown, passed or rejected goes to the error handlers; `req.route` names the route (the
 * portal's request log reads its path) and `req.params` is empty.
 */
function directRoutes(direct: DirectRoutes): RequestHandler {
  return (req, res, next) => {
    const hit = direct.get(`${req.method} ${req.path}`);
    if (!hit) {
      next();
      return;
    }
    (req as { route?: unknown }).route = hit.route;
    req.params = {};
    runSteps(hit.chain, req, res, next);
  };
}

/**
 * Runs handlers in order as Express runs a route's: each calls `next()` to go on; an error passed,
 * thrown or rejected ends the chain with `done(err)`; `done()` once every step called next.
 */
export function runSteps(chain: RequestHandler[], req: Request, res: Response, done: (err?: unknown) => void): void {
  let i = 0;
  const step = (err?: unknown): void => {
    if (err !== undefined && err !== null) {
      done(err);
      return;
    }
    const fn = chain[i++];
    if (!fn) {
      done();
      return;
    }
    try {
      const ret = fn(req, res, step) as unknown;
      if (ret instanceof Promise) ret.then(undefined, (e: unknown) => step(e ?? new Error("Rejected promise")));
    } catch (e) {
      step(e);
    }
  };
  step();
}

/** The operations that may be reached directly: static paths no earlier route's pattern matches. */
function fillDirectRoutes(direct: DirectRoutes, routes: Array<{ op: Operation; chain: RequestHandler[] }>): void {
  routes.forEach(({ op, chain }, i) => {
    if (op.path.includes("{")) return;
    if (routes.slice(0, i).some((r) => r.op.method === op.method && templateMatches(r.op.path, op.path))) return;
    direct.set(`${op.method.toUpperCase()} ${op.path}`, { route: { path: toExpressPath(op.path), methods: { [op.method]: true } }, chain });
  });
}

/**
 * What `res.json` sends, without its ETag: an entity tag on the answer to a POST, PUT, PATCH or
 * DELETE serves no conditional request, and hashing every such body costs CPU on the busiest
 * routes. GET answers keep `res.json` (ETag, 304 to a matching If-None-Match).
 */
function sendJson(res: Response, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  // As res.send does: JSON unless the handler chose a type (a replayed problem), always with charset utf-8.
  const type = res.getHeader("Content-Type");
  if (typeof type !== "string") res.setHeader("Content-Type", "application/json; charset=utf-8");
  else if (!/;\s*charset=utf-8$/i.test(type)) res.setHeader("Content-Type", `${type.replace(/;\s*charset=[^;]*/i, "")}; charset=utf-8`);
  if (status === 204 || status === 304) {
    res.removeHeader("Content-Type");
    res.end();
    return;
  }
  res.setHeader("Content-Length", Buffer.byteLength(text));
  res.end(text);
}

function checkResponse(op: Operation, result: HandlerResult, log: () => Logger): void {
  const byType = op.responses.get(String(result.status)) ?? op.responses.get(`${String(result.status)[0]}XX`) ?? op.responses.get("default");
  const fail = (why: string) => {
    log().error({ operationId: op.operationId, status: result.status, why }, "response does not match the contract");
    throw new AppError(500, "response-validation-failed", "The response broke the API contract", `${op.operationId} ${result.status}: ${why}`);
  };
  if (!byType) return fail(`status ${result.status} is not declared`);
  const validate = byType["application/json"] ?? byType["application/problem+json"];
  if (result.body === undefined) {
    if (Object.keys(byType).length > 0) fail("a body is declared but none was sent");
    return;
  }
  if (validate && !validate(JSON.parse(JSON.stringify(result.body)))) {
    fail(fieldErrors("body", validate.errors).map((e) => `${e.field} ${e.reason}`).join("; "));
  }
}
