import type { IncomingMessage, ServerResponse } from "node:http";
import type { ErrorRequestHandler, Request, RequestHandler, Response } from "express";
import { httpErrors } from "./problem.ts";
import { runSteps, type HotRoute } from "./router.ts";

/** `1mb`, `100kb`, `512b` (config's BODY_LIMIT) in bytes. */
export function parseByteLimit(limit: string): number {
  const m = /^(\d+)(b|kb|mb)$/.exec(limit);
  if (!m) throw new Error(`not a byte limit: ${limit}`);
  return Number(m[1]) * { b: 1, kb: 1024, mb: 1024 * 1024 }[m[2] as "b" | "kb" | "mb"];
}

/**
 * The busiest operations (`POST /v1/earn`), served from node:http without Express in between.
 *
 * Express costs a request about 0.2 ms of CPU before and around our own code — its layers matched
 * one by one, the request and response prototypes, body-parser's content negotiation — about as
 * much as the earn itself costs PostgreSQL once batched (`npm run bench:http`, `npm run bench`).
 * The hot path runs the same steps the Express app would, in the same order, with the same
 * functions: the base middleware (request id, log line, security headers), the partners' request
 * log, the router's authentication step and its answer step (validation, handler, response), and
 * the same problem handler for anything thrown. Only the body is read here, by a reader that does
 * what `express.json` does for the requests it takes.
 *
 * It takes a request only when everything that could make Express behave otherwise is absent: the
 * exact path with no query string, a JSON body of a stated length within the limit, UTF-8, not
 * compressed. Anything else — `?dry_run=true`, chunked or gzip bodies, another media type, a
 * trailing slash — goes to the Express app, which answers as it always has.
 */
export function createHotPath(deps: {
  routes: Map<string, HotRoute>;
  /** Run before the route's steps, in order (the app's own middleware up to the API router). */
  before: RequestHandler[];
  onError: ErrorRequestHandler;
  /** The largest body the router's JSON parser accepts. */
  bodyLimit: string;
  /** Everything the hot path does not take. */
  fallback: (req: IncomingMessage, res: ServerResponse) => void;
}): (req: IncomingMessage, res: ServerResponse) => void {
  const limit = parseByteLimit(deps.bodyLimit);
  const readJson: RequestHandler = (req, _res, next) => readJsonBody(req, next);
  // Each route's steps, in the order the app runs them, built once.
  const routes = new Map(
    [...deps.routes].map(([key, r]): [string, { route: HotRoute["route"]; steps: RequestHandler[] }] => [
      key,
      { route: r.route, steps: [...deps.before, r.authenticate, readJson, r.answer] },
    ]),
  );

  return (rawReq, rawRes) => {
    const hit = rawReq.url !== undefined && rawReq.url.indexOf("?") === -1 ? routes.get(`${rawReq.method} ${rawReq.url}`) : undefined;
    if (!hit || !plainJson(rawReq, limit)) {
      deps.fallback(rawReq, rawRes);
      return;
    }
    // What the steps read of an Express request and response, as Express would have set it.
    const req = rawReq as unknown as Request;
    const res = rawRes as unknown as Response;
    const ext = req as unknown as Record<string, unknown>;
    ext.originalUrl = rawReq.url;
    ext.params = {};
    ext.query = {};
    ext.route = hit.route;
    (res as unknown as { locals: Record<string, unknown> }).locals = {};

    runSteps(hit.steps, req, res, (err) => {
      // The answer step responds itself; a step that errs ends here, as Express ends in the problem handler.
      if (err === undefined || err === null) return;
      try {
        deps.onError(err, req, res, () => undefined);
      } catch {
        if (!rawRes.headersSent) rawRes.statusCode = 500;
        rawRes.end();
      }
    });
  };
}

/** A body `express.json` would read as plain UTF-8 JSON: stated length within the limit, no transfer or content coding, charset UTF-8 if named. */
function plainJson(req: IncomingMessage, limit: number): boolean {
  const h = req.headers;
  if (h["transfer-encoding"] !== undefined) return false;
  const enc = h["content-encoding"];
  if (enc !== undefined && enc.toLowerCase() !== "identity") return false;
  const len = h["content-length"];
  if (len === undefined || !/^\d{1,9}$/.test(len) || Number(len) === 0 || Number(len) > limit) return false;
  const type = h["content-type"];
  if (type === undefined) return false;
  const semi = type.indexOf(";");
  if ((semi === -1 ? type : type.slice(0, semi)).trim().toLowerCase() !== "application/json") return false;
  if (semi === -1) return true;
  // Parameters: only charset=utf-8, as body-parser accepts (any other charset is its 415).
  const params = type.slice(semi + 1).trim();
  return /^charset="?utf-8"?$/i.test(params);
}

/**
 * Reads the body and parses it as `express.json` (strict) would: a leading byte order mark
 * dropped, a top-level object or array only, the exact bytes kept on `req.rawBody`. Its errors are
 * the ones `toAppError` makes of body-parser's.
 */
function readJsonBody(req: Request, next: (err?: unknown) => void): void {
  const chunks: Buffer[] = [];
  let done = false;
  const finish = (err?: unknown) => {
    if (done) return;
    done = true;
    req.removeListener("data", onData);
    req.removeListener("end", onEnd);
    req.removeListener("aborted", onAborted);
    req.removeListener("error", onError);
    next(err);
  };
  const onData = (c: Buffer) => chunks.push(c);
  const onAborted = () => finish(httpErrors.make("malformed-json", "The request body was cut short."));
  const onError = () => finish(httpErrors.make("malformed-json", "The request body was cut short."));
  const onEnd = () => {
    const raw = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    let text = raw.toString("utf8");
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    // body-parser reads a body that is only a byte order mark as {}.
    if (text.length === 0) text = "{}";
    const first = /^[ \t\n\r]*(.)/s.exec(text)?.[1];
    let body: unknown;
    try {
      if (first !== "{" && first !== "[") throw new SyntaxError("not an object or array");
      body = JSON.parse(text);
    } catch {
      finish(httpErrors.make("malformed-json", "The body could not be parsed as JSON."));
      return;
    }
    (req as { rawBody?: Buffer }).rawBody = raw;
    req.body = body;
    finish();
  };
  req.on("data", onData);
  req.once("end", onEnd);
  req.once("aborted", onAborted);
  req.once("error", onError);
}
