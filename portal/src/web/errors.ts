import type { ErrorRequestHandler, Request, RequestHandler } from "express";
import { AppError } from "../../../gateway/src/http/problem.ts";
import type { Logger } from "../../../gateway/src/infra/logger.ts";
import { html } from "../html.ts";
import { page } from "../layout.ts";
import { CsrfError } from "./csrf.ts";
import { TooManyAttempts } from "./auth.ts";

/** A page that does not exist — or that this user may not see (another partner's object). */
export class PageNotFound extends Error {
  readonly status = 404;
  constructor() {
    super("There is no such page, or it is not yours.");
  }
}

/** A form that failed validation: the page re-renders with these messages next to the fields. */
export class FormError extends Error {
  readonly status = 422;
  constructor(readonly fields: Record<string, string>) {
    super(Object.values(fields).join(" "));
  }
}

export function notFoundPage(): RequestHandler {
  return (_req, _res, next) => next(new PageNotFound());
}

function errorPage(req: Request, status: number, title: string, detail: string, requestId: string): string {
  return page(req, {
    title,
    body: html`<p>${detail}</p><p class="hint">Request id <code>${requestId}</code>${status >= 500 ? " — quote it when you contact the operator." : ""}</p>
<p><a href="/portal">Back to the portal</a></p>`,
  });
}

/**
 * Errors as HTML pages (the portal is for people): CSRF → 403, too many logins → 429 with
 * Retry-After, a service's typed error → its status and message, anything else → 500 without
 * detail (logged with the request id). Requests that asked for JSON get problem+json instead.
 */
export function portalErrorHandler(log: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    if (res.headersSent) return next(err);
    const requestId = String(res.locals.requestId ?? "");
    let status = 500;
    let title = "Something went wrong";
    let detail = "The portal could not do that. Nothing was changed.";
    let code = "internal";
    if (err instanceof CsrfError) [status, title, detail, code] = [403, "Form expired", err.message, "csrf-token-invalid"];
    else if (err instanceof TooManyAttempts) {
      [status, title, detail, code] = [429, "Too many attempts", err.message, "too-many-requests"];
      res.setHeader("Retry-After", String(err.retryAfter));
    } else if (err instanceof PageNotFound) [status, title, detail, code] = [404, "Not found", err.message, "not-found"];
    else if (err instanceof AppError) [status, title, detail, code] = [err.status, err.title, err.detail ?? err.title, err.code];
    else if ((err as { type?: string }).type === "entity.too.large") [status, title, detail, code] = [413, "Too large", "That form is too large.", "payload-too-large"];
    else log.error({ err, request_id: requestId }, "portal request failed");
    res.status(status);
    if (req.accepts(["html", "json"]) === "json" || req.path.startsWith("/api/")) {
      res.type("application/problem+json").send(JSON.stringify({ type: `/problems/${code}`, title, status, detail, code, request_id: requestId }));
      return;
    }
    res.type("html").send(errorPage(req, status, title, detail, requestId));
  };
}
