import type { RequestHandler } from "express";
import type { Logger } from "../infra/logger.ts";
import { newId } from "../infra/ids.ts";

const CLIENT_ID_PATTERN = /^[A-Za-z0-9._:-]{8,128}$/;

/**
 * A path never reaches the log — nor a problem's `instance` or detail — with a long run of digits
 * in it: it could be a card number.
 */
export function redactLongNumbers(path: string): string {
  return path.replace(/\d(?:[ -]?\d|%20\d){12,}/g, "[redacted]");
}

/** What a request's log line says of the request: method and path, never the query or a header. */
function reqView(req: { method: string; originalUrl: string }) {
  return { method: req.method, url: redactLongNumbers(req.originalUrl.split("?")[0]!) };
}

/**
 * Gives every request an id (the caller's X-Request-Id when it is sane, else ours), echoes it in
 * the response, and logs one line per request with it. The same id is in every problem body, so a
 * partner quoting it lets us find the request in the logs.
 *
 * The line is written when the response finishes (or the connection closes first): `req` (method
 * and path), `res` (status), `responseTime` and `request_id`, at info — error for a 5xx. Handlers
 * log through `res.locals.log`, a child bound to the request, made only when a handler asks for it:
 * most requests never log anything but their one line, so they do not pay for a child logger.
 */
export function requestContext(log: Logger): RequestHandler[] {
  // A request's line holds only the fields written below — method, path (long numbers redacted),
  // status, time, id — none of which the logger's redaction paths could match, so the info line of
  // a request that went well skips the redaction walk (a few percent of a request's CPU). Lines
  // with an error go through `log`, redaction and all.
  const lines = log.child({}, { redact: [] });
  const context: RequestHandler = (req, res, next) => {
    const started = Date.now();
    const offered = req.headers["x-request-id"];
    const id = typeof offered === "string" && CLIENT_ID_PATTERN.test(offered) ? offered : newId("req");
    res.locals.requestId = id;
    res.setHeader("X-Request-Id", id);
    let child: Logger | undefined;
    Object.defineProperty(res.locals, "log", {
      configurable: true,
      enumerable: true,
      get: () => (child ??= log.child({ req: reqView(req), request_id: id })),
    });
    if (req.url !== "/healthz" && req.url !== "/readyz") {
      let done = false;
      const finished = (err?: Error) => {
        if (done) return;
        done = true;
        const line = { req: reqView(req), request_id: id, res: { status: res.statusCode }, responseTime: Date.now() - started, ...(err ? { err } : {}) };
        if (err !== undefined || res.statusCode >= 500) log.error(line, "request errored");
        else lines.info(line, res.writableFinished ? "request completed" : "request aborted");
      };
      res.once("finish", () => finished());
      res.once("close", () => finished());
      res.once("error", finished);
    }
    next();
  };
  return [context];
}
