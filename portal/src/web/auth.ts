import type { NextFunction, Request, RequestHandler, Response } from "express";
import { Passport } from "passport";

export type PortalPassport = InstanceType<typeof Passport>;
import { Strategy as LocalStrategy } from "passport-local";
import type { RateLimiter } from "../../../gateway/src/auth/rate-limit.ts";
import type { PortalRole, PortalUser, PortalUsers } from "../users/users.service.ts";
import { normaliseEmail } from "../users/users.service.ts";
import { PageNotFound } from "./errors.ts";

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    // The signed-in portal user, as passport's deserializer loads it.
    // eslint-disable-next-line @typescript-eslint/no-empty-object-type
    interface User extends PortalUser {}
  }
}

export interface LoginLimits {
  /** Attempts per email address per window (right or wrong). */
  perEmail: number;
  /** Attempts per client address per window. */
  perAddress: number;
  windowSeconds: number;
}

/** Limits come from PORTAL_LOGIN_LIMIT_PER_EMAIL / _PER_ADDRESS, counted in 15-minute windows. */
export const LOGIN_WINDOW_SECONDS = 900;

/**
 * Passport (its own instance, not the global one) with the local
 * strategy: email + password checked by the users service; the session keeps only the user id and
 * each request reloads the user, so a disabled account is out at its next click.
 */
export function createPortalPassport(users: PortalUsers): PortalPassport {
  const passport = new Passport();
  passport.use(
    "portal-local",
    new LocalStrategy({ usernameField: "email", passwordField: "password" }, (email, password, done) => {
      users.authenticate(email, password).then(
        (user) => done(null, user ?? false),
        (err: unknown) => done(err),
      );
    }),
  );
  passport.serializeUser((user, done) => done(null, (user as PortalUser).id));
  passport.deserializeUser((id: string, done) => {
    users.get(id).then(
      (u) => done(null, u && u.status === "active" ? u : false),
      (err: unknown) => done(err),
    );
  });
  return passport;
}

export class TooManyAttempts extends Error {
  readonly status = 429;
  constructor(readonly retryAfter: number) {
    super(`Too many login attempts. Try again in ${Math.ceil(retryAfter / 60)} minute(s).`);
  }
}

/**
 * Login attempts are counted per email and per client address in fixed windows, on the hub's rate
 * limiter (Redis when configured, so every API process counts together). Counted before the
 * password is checked: a guesser learns nothing from the 429 about whether a guess was right.
 */
export function loginRateLimit(limiter: RateLimiter, limits: LoginLimits): RequestHandler {
  return async (req, _res, next) => {
    const email = normaliseEmail(String((req.body as Record<string, unknown> | undefined)?.email ?? ""));
    const [byEmail, byAddress] = await Promise.all([
      limiter.hit(`portal-login:email:${email}`, limits.perEmail, limits.windowSeconds),
      limiter.hit(`portal-login:ip:${req.ip ?? "unknown"}`, limits.perAddress, limits.windowSeconds),
    ]);
    const refused = [byEmail, byAddress].filter((d) => !d.allowed);
    if (refused.length) return next(new TooManyAttempts(Math.max(...refused.map((d) => d.retryAfter))));
    next();
  };
}

/**
 * Pages behind a login: anonymous visitors go to the login page (and come back after); a user of
 * the other role gets a 404, as if the page did not exist.
 */
export function requireRole(role: PortalRole): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    if (!req.user) {
      const back = req.method === "GET" ? `?next=${encodeURIComponent(req.originalUrl)}` : "";
      res.redirect(303, `/portal/login${back}`);
      return;
    }
    if (req.user.role !== role) return next(new PageNotFound());
    next();
  };
}

/** Only local paths under /portal are followed after login (no open redirect). */
export function safeNext(next: unknown, fallback: string): string {
  return typeof next === "string" && /^\/portal(\/[\w\-./?=&%]*)?$/.test(next) && !next.startsWith("//") ? next : fallback;
}
