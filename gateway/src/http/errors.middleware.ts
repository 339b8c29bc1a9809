import type { ErrorRequestHandler, RequestHandler } from "express";
import type { Logger } from "../infra/logger.ts";
import { isRetryableDbError, pgErrorCode } from "../infra/db.ts";
import { AppError, httpErrors } from "./problem.ts";
import { redactLongNumbers } from "./request-context.middleware.ts";

/** What a thrown thing means to the client. Anything unknown is our fault: a 500 without details. */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const e = err as { type?: string; status?: number; statusCode?: number } | null;
  // body-parser's errors carry a type; they are the client's mistakes.
  switch (e?.type) {
    case "entity.parse.failed":
      return httpErrors.make("malformed-json", "The body could not be parsed as JSON.");
    case "entity.too.large":
      return httpErrors.make("payload-too-large", "The body exceeds the size this endpoint accepts.");
    case "charset.unsupported":
    case "encoding.unsupported":
      return httpErrors.make("unsupported-media-type", "Send UTF-8 encoded JSON.");
    case "request.aborted":
      return httpErrors.make("malformed-json", "The request body was cut short.");
  }
  // Any other 400 the body parser raises is the client's too: a body that says gzip (or deflate,
  // br) and is not, for one — zlib's error, until now a 500.
  if ((err as { expose?: boolean } | null)?.expose === true && (e?.status ?? e?.statusCode) === 400) {
    return httpErrors.make("malformed-body", "The body could not be read: check that it is encoded as its Content-Encoding says.");
  }
  if (isRetryableDbError(err)) {
    return httpErrors.make("concurrency-conflict", "Another request changed the same data at the same moment. Retry it.", {}, { "Retry-After": "1" });
  }
  // The pool had no free connection within its acquire timeout: the server is saturated, which is
  // neither the client's mistake nor a bug; it may retry, as after any 503.
  if ((err as { name?: string } | null)?.name === "KnexTimeoutError") {
    return httpErrors.make("overloaded", "Every database connection is busy. Retry the request shortly.", {}, { "Retry-After": "1" });
  }
  if (pgErrorCode(err) === "23505") {
    return httpErrors.make("conflict", "This object already exists.");
  }
  return httpErrors.make("internal", "Something went wrong on our side. The request id identifies it in our logs.");
}

export function notFound(): RequestHandler {
  return (req) => {
    throw httpErrors.make("not-found", `No route for ${req.method} ${redactLongNumbers(req.path)}.`);
  };
}

export function problemHandler(baseLog: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const appErr = toAppError(err);
    const log = (res.locals.log as Logger | undefined) ?? baseLog;
    if (appErr.status >= 500) log.error({ err, code: appErr.code }, "request failed");
    else log.info({ code: appErr.code, status: appErr.status }, "request refused");
    if (res.headersSent) {
      res.end();
      return;
    }
    const requestId = res.locals.requestId as string | undefined;
    for (const [k, v] of Object.entries(appErr.headers)) res.setHeader(k, v);
    // The path as the log shows it: a card number sent in a path is refused, never echoed.
    const text = JSON.stringify({ ...appErr.toProblem(requestId), instance: redactLongNumbers(req.originalUrl.split("?")[0]!) });
    // Sent with node:http's own calls (the hot path's responses are not Express's).
    res.statusCode = appErr.status;
    res.setHeader("Content-Type", "application/problem+json; charset=utf-8");
    res.setHeader("Content-Length", Buffer.byteLength(text));
    if (req.method === "HEAD") res.end();
    else res.end(text);
  };
}
