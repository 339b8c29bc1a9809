import path from "node:path";
import { randomBytes } from "node:crypto";
import express, { Router } from "express";
import type { PortalDeps, PortalContext } from "./context.ts";
import { createPortalUsers } from "./users/users.service.ts";
import { sessionMiddleware } from "./web/session.ts";
import { csrfProtection } from "./web/csrf.ts";
import { createPortalPassport } from "./web/auth.ts";
import { notFoundPage, portalErrorHandler } from "./web/errors.ts";
import { accountPages } from "./developer/account.pages.ts";
import { consolePages } from "./console/console.pages.ts";
import { credentialsPages } from "./developer/credentials.pages.ts";
import { referencePages } from "./developer/reference.pages.ts";
import { activityPages } from "./developer/activity.pages.ts";
import { webhooksPages } from "./developer/webhooks.pages.ts";
import { statementsPages } from "./developer/statements.pages.ts";
import { createRequestLog, type RequestLog } from "./request-log/request-log.ts";
import { provisionSandbox } from "./developer/sandbox.service.ts";
import { setUpTestBankFeed } from "./developer/test-bank.service.ts";
import { testBankPages } from "./developer/test-bank.pages.ts";

const PUBLIC_DIR = path.resolve(import.meta.dirname, "../public");

/**
 * Pages are HTML: a strict policy allows only the portal's own scripts, styles and images (inline
 * SVG charts are markup, not images); no framing, forms post only here.
 */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "form-action 'self'",
  "base-uri 'none'",
  "object-src 'none'",
].join("; ");

export interface Portal {
  /** Mounted by hub.ts at /portal. */
  router: Router;
  ctx: PortalContext;
  /** Mounted by hub.ts in front of the API: notes each partner call for the request log. */
  requestLog: RequestLog;
  close(): Promise<void>;
}

/**
 * The developer portal and the operator console, served by the hub itself under /portal:
 * server-rendered HTML, one stylesheet, a little progressive-enhancement script, sessions in the
 * hub's database, passport's local strategy, a CSRF token on every form.
 */
export function createPortal(deps: PortalDeps): Portal {
  const ctx: PortalContext = { ...deps, users: createPortalUsers(deps) };
  const secure = deps.config.PUBLIC_URL.startsWith("https://");
  const secret = deps.config.PORTAL_SESSION_SECRET ?? randomBytes(32).toString("base64url");
  if (!deps.config.PORTAL_SESSION_SECRET && !deps.config.embedded) {
    deps.log.warn("PORTAL_SESSION_SECRET is not set: portal sessions are signed with a per-process key and do not survive a restart or move between API processes");
  }
  const { middleware: session, store } = sessionMiddleware({ db: deps.db, clock: deps.clock, log: deps.log, secret, secure });
  const passport = createPortalPassport(ctx.users);
  const requestLog = createRequestLog({ db: deps.db, clock: deps.clock, log: deps.log });

  const router = Router();
  router.use("/static", express.static(PUBLIC_DIR, { maxAge: "1h", index: false, fallthrough: false }));
  router.use((_req, res, next) => {
    res.setHeader("Content-Security-Policy", CSP);
    res.setHeader("X-Frame-Options", "DENY");
    res.setHeader("Cache-Control", "no-store");
    next();
  });
  router.use(express.urlencoded({ extended: false, limit: "64kb", parameterLimit: 200 }));
  router.use(session, passport.initialize(), passport.session());
  // A redirect that carries a flash message saves the session first. express-session writes the
  // response's head before its own save finishes, so a browser can follow the 303 and read the
  // session before the flash is in it — on a loaded server the message then showed a page late.
  router.use((req, res, next) => {
    const redirect = res.redirect.bind(res) as (...args: unknown[]) => void;
    res.redirect = ((...args: unknown[]) => {
      if (!req.session?.flash?.length) return redirect(...args);
      req.session.save((err) => (err ? next(err) : redirect(...args)));
    }) as typeof res.redirect;
    next();
  });
  router.use(csrfProtection());

  router.use(
    accountPages(ctx, passport, {
      afterSignup: async (user) => {
        const sandboxId = await provisionSandbox(ctx, user);
        // The feed is a convenience: if it cannot be set up now, the page offers to set it up.
        await setUpTestBankFeed(ctx, user.id, sandboxId).catch((err: unknown) => ctx.log.warn({ err, user_id: user.id }, "portal sign-up: the test bank feed was not set up"));
      },
    }),
  );
  router.use(credentialsPages(ctx));
  router.use(referencePages(ctx));
  router.use(webhooksPages(ctx));
  router.use(statementsPages(ctx));
  router.use(testBankPages(ctx));
  router.use(activityPages(ctx, requestLog));
  router.use(consolePages(ctx));

  router.use(notFoundPage());
  router.use(portalErrorHandler(deps.log));

  return {
    router,
    ctx,
    requestLog,
    async close() {
      await requestLog.close();
      await store.prune();
    },
  };
}
