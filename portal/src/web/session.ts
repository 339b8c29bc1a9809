import session, { type SessionData, Store } from "express-session";
import type { RequestHandler } from "express";
import type { Db } from "../../../gateway/src/infra/db.ts";
import type { Clock } from "../../../gateway/src/infra/clock.ts";
import type { Logger } from "../../../gateway/src/infra/logger.ts";

/** What the portal keeps in a session besides passport's user id. */
declare module "express-session" {
  interface SessionData {
    csrf?: string;
    /** One-shot messages shown on the next page (never a secret). */
    flash?: Array<{ kind: "ok" | "error"; text: string }>;
    passport?: { user?: string };
  }
}

type Cb<T = void> = (err?: unknown, value?: T) => void;

/**
 * express-session's store on our own database (the `portal_sessions` table): sessions survive a
 * restart and are shared by every API process, and there is no second store to run. Expired rows
 * are ignored on read and swept now and then on write.
 */
export class KnexSessionStore extends Store {
  private writes = 0;
  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    super();
  }

  private expiry(sess: SessionData): Date {
    const exp = sess.cookie?.expires;
    return exp ? new Date(exp) : new Date(this.clock.now().getTime() + 8 * 3600_000);
  }

  override get(sid: string, cb: Cb<SessionData | null>): void {
    this.db("portal_sessions")
      .where({ sid })
      .andWhere("expires_at", ">", this.clock.now())
      .first("sess")
      .then((row: { sess: SessionData } | undefined) => cb(undefined, row ? row.sess : null), cb);
  }

  override set(sid: string, sess: SessionData, cb?: Cb): void {
    const row = { sid, sess: JSON.stringify(sess), expires_at: this.expiry(sess) };
    this.db("portal_sessions")
      .insert(row)
      .onConflict("sid")
      .merge(["sess", "expires_at"])
      .then(() => {
        if (++this.writes % 100 === 0) void this.prune();
        cb?.();
      }, (err: unknown) => cb?.(err));
  }

  override touch(sid: string, sess: SessionData, cb?: Cb): void {
    this.db("portal_sessions")
      .where({ sid })
      .update({ expires_at: this.expiry(sess) })
      .then(() => cb?.(), (err: unknown) => cb?.(err));
  }

  override destroy(sid: string, cb?: Cb): void {
    this.db("portal_sessions")
      .where({ sid })
      .delete()
      .then(() => cb?.(), (err: unknown) => cb?.(err));
  }

  async prune(): Promise<number> {
    try {
      return await this.db("portal_sessions").where("expires_at", "<=", this.clock.now()).delete();
    } catch (err) {
      this.log.warn({ err }, "portal session sweep failed");
      return 0;
    }
  }
}

export const SESSION_COOKIE = "hub_portal_sid";
const EIGHT_HOURS_MS = 8 * 3600_000;

/**
 * The session middleware: HttpOnly, SameSite=Lax, Secure when the hub's public URL is https (then
 * the hub sits behind a TLS terminator, so X-Forwarded-Proto is trusted for this cookie only),
 * eight hours rolling. Nothing is stored until a page needs it (a form's CSRF token, a login).
 */
export function sessionMiddleware(opts: { db: Db; clock: Clock; log: Logger; secret: string; secure: boolean }): { middleware: RequestHandler; store: KnexSessionStore } {
  const store = new KnexSessionStore(opts.db, opts.clock, opts.log);
  const middleware = session({
    name: SESSION_COOKIE,
    secret: opts.secret,
    store,
    resave: false,
    saveUninitialized: false,
    rolling: true,
    proxy: opts.secure,
    cookie: { httpOnly: true, sameSite: "lax", secure: opts.secure, path: "/portal", maxAge: EIGHT_HOURS_MS },
  });
  return { middleware, store };
}
