import { randomBytes, timingSafeEqual } from "node:crypto";
import type { Request, RequestHandler } from "express";

/**
 * CSRF protection by synchronizer token: a random token kept in the session, put in every form as
 * `_csrf` (and sent by the portal's scripts as `X-CSRF-Token`). Every state-changing request must
 * carry it; a session regenerated at login gets a new one. SameSite=Lax on the cookie is a second
 * layer, not the defence.
 */
export function csrfToken(req: Request): string {
  if (!req.session.csrf) req.session.csrf = randomBytes(32).toString("base64url");
  return req.session.csrf;
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class CsrfError extends Error {
  readonly status = 403;
  constructor() {
    super("The form has expired or did not come from this portal. Reload the page and try again.");
  }
}

export function csrfProtection(): RequestHandler {
  return (req, _res, next) => {
    if (req.method === "GET" || req.method === "HEAD" || req.method === "OPTIONS") return next();
    const expected = req.session?.csrf;
    const body = req.body as Record<string, unknown> | undefined;
    const sent = (typeof body?._csrf === "string" ? body._csrf : undefined) ?? req.get("x-csrf-token");
    if (!expected || !sent || !same(expected, sent)) return next(new CsrfError());
    next();
  };
}
