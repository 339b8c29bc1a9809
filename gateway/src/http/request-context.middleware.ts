import type { RequestHandler } from "express";
import { pinoHttp } from "pino-http";
import type { Logger } from "../infra/logger.ts";
import { newId } from "../infra/ids.ts";

const CLIENT_ID_PATTERN = /^[A-Za-z0-9._:-]{8,128}$/;

/** A path never reaches the log with a long run of digits in it: it could be a card number. */
function redactLongNumbers(path: string): string {
  return path.replace(/\d(?:[ -]?\d|%20\d){12,}/g, "[redacted]");
}

/**
 * Gives every request an id (the caller's X-Request-Id when it is sane, else ours), echoes it in
 * the response, and logs one line per request with it. The same id is in every problem body, so a
 * partner quoting it lets us find the request in the logs.
 */
export function requestContext(log: Logger): RequestHandler[] {
  const assign: RequestHandler = (req, res, next) => {
    const offered = req.headers["x-request-id"];
    const id = typeof offered === "string" && CLIENT_ID_PATTERN.test(offered) ? offered : newId("req");
    res.locals.requestId = id;
    res.setHeader("X-Request-Id", id);
    next();
  };
  const http = pinoHttp({
    logger: log,
    genReqId: (_req, res) => (res as unknown as { locals: { requestId: string } }).locals.requestId,
    customProps: (_req, res) => ({ request_id: (res as unknown as { locals: { requestId: string } }).locals.requestId }),
    serializers: {
      req: (req: { method: string; url: string }) => ({ method: req.method, url: redactLongNumbers(req.url.split("?")[0]!) }),
      res: (res: { statusCode: number }) => ({ status: res.statusCode }),
    },
    customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? "error" : "info"),
    autoLogging: { ignore: (req) => req.url === "/healthz" || req.url === "/readyz" },
  });
  const attach: RequestHandler = (req, res, next) => {
    res.locals.log = req.log;
    next();
  };
  return [assign, http, attach];
}
