import type { RequestHandler } from "express";
import { namedQuery, type Db } from "../../../gateway/src/infra/db.ts";
import type { Clock } from "../../../gateway/src/infra/clock.ts";
import type { Logger } from "../../../gateway/src/infra/logger.ts";
import type { Principal } from "../../../gateway/src/http/router.ts";

export interface LoggedCall {
  id: string;
  at: Date;
  method: string;
  route: string;
  status: number;
  latency_ms: number;
  request_id: string;
  client_id: string;
}

interface Pending {
  partner_id: string;
  client_id: string;
  at: Date;
  method: string;
  route: string;
  status: number;
  latency_ms: number;
  request_id: string;
}

/** Rows kept per partner: the portal shows recent calls, not an archive. */
export const REQUEST_LOG_CAP = 1_000;

/**
 * One statement writes a flush: each partner's calls numbered on from its head (the head row locked
 * meanwhile, so two processes' flushes for one partner take turns), each call into the slot
 * `seq % cap` of the partner's ring — an update in place of the call `cap` before it, a heap-only
 * one (migration 20261202020000) — and the calls and errors counted per partner and UTC day. Of a
 * flush with more than `cap` calls for a partner only the last `cap` are kept (one slot, one call).
 */
const WRITE_SQL = `
  WITH r AS MATERIALIZED (
         SELECT r.*, count(*) OVER (PARTITION BY r.partner_id) AS c, row_number() OVER (PARTITION BY r.partner_id ORDER BY r.i) AS n
           FROM jsonb_to_recordset(?::jsonb)
             AS r(i integer, partner_id text, client_id text, at timestamptz, method text, route text, status integer, latency_ms integer, request_id text)),
       heads AS (
         INSERT INTO portal_request_log_heads AS h (partner_id, seq)
         SELECT r.partner_id, count(*) FROM r GROUP BY r.partner_id ORDER BY r.partner_id
         ON CONFLICT (partner_id) DO UPDATE SET seq = h.seq + excluded.seq
         RETURNING h.partner_id, h.seq),
       usage AS (
         INSERT INTO portal_usage_daily AS u (partner_id, day, calls, errors)
         SELECT r.partner_id, (r.at AT TIME ZONE 'UTC')::date, count(*), count(*) FILTER (WHERE r.status >= 400) FROM r GROUP BY 1, 2 ORDER BY 1, 2
         ON CONFLICT (partner_id, day) DO UPDATE SET calls = u.calls + excluded.calls, errors = u.errors + excluded.errors
         RETURNING 1)
  INSERT INTO portal_request_log AS l (partner_id, slot, seq, client_id, at, method, route, status, latency_ms, request_id)
  SELECT r.partner_id, ((h.seq - r.c + r.n) % ?)::integer, h.seq - r.c + r.n, r.client_id, r.at, r.method, r.route, r.status, r.latency_ms, r.request_id
    FROM r JOIN heads h ON h.partner_id = r.partner_id
   WHERE r.n > r.c - ?
   ORDER BY r.partner_id, r.n
  ON CONFLICT (partner_id, slot) DO UPDATE
     SET seq = excluded.seq, client_id = excluded.client_id, at = excluded.at, method = excluded.method, route = excluded.route,
         status = excluded.status, latency_ms = excluded.latency_ms, request_id = excluded.request_id`;

/**
 * The partners' request log. A middleware in front of the API notes each call made with a partner
 * token when its response finishes — time, route template (never the raw path: it could hold an
 * id a partner would rather not log), status, latency, request id — into memory; a timer writes
 * the batch in one statement (above): the partner's last `cap` calls are kept in a ring of slots,
 * and its calls and errors are counted per day for the usage charts. The API's answer never waits
 * for any of it; a failed write loses log lines, never a request.
 */
export function createRequestLog(deps: { db: Db; clock: Clock; log: Logger; flushMs?: number; cap?: number }) {
  const { db, log } = deps;
  const cap = deps.cap ?? REQUEST_LOG_CAP;
  let buffer: Pending[] = [];
  let flushing: Promise<void> | null = null;
  const timer = setInterval(() => void flush(), deps.flushMs ?? 500);
  timer.unref();

  async function write(batch: Pending[]): Promise<void> {
    const rows = JSON.stringify(batch.map((b, i) => ({ i, ...b })));
    await namedQuery(db, "portal_request_log_write", WRITE_SQL, [rows, cap, cap]);
  }

  /** Writes what is buffered; a flush in progress first, then what was buffered meanwhile. */
  async function flush(): Promise<void> {
    while (flushing) await flushing;
    if (buffer.length === 0) return;
    const batch = buffer;
    buffer = [];
    flushing = write(batch)
      .catch((err: unknown) => log.warn({ err, lost: batch.length }, "request log write failed"))
      .finally(() => {
        flushing = null;
      });
    return flushing;
  }

  const middleware: RequestHandler = (req, res, next) => {
    const started = process.hrtime.bigint();
    res.once("finish", () => {
      const principal = res.locals.principal as Principal | undefined;
      if (!principal?.partnerId) return;
      const route = (req.route as { path?: string } | undefined)?.path;
      buffer.push({
        partner_id: principal.partnerId,
        client_id: principal.clientId,
        at: deps.clock.now(),
        method: req.method,
        route: route ?? "(unmatched)",
        status: res.statusCode,
        latency_ms: Number((process.hrtime.bigint() - started) / 1_000_000n),
        request_id: String(res.locals.requestId ?? ""),
      });
      // Once as the buffer reaches 500 (not at every call after, while a flush is in progress).
      if (buffer.length === 500) void flush();
    });
    next();
  };

  return {
    middleware,
    flush,
    async recent(partnerId: string, opts: { limit?: number; status?: "errors" } = {}): Promise<LoggedCall[]> {
      // The slots still holding one of the partner's last `cap` calls, newest first.
      const q = db("portal_request_log as l")
        .join("portal_request_log_heads as h", "h.partner_id", "l.partner_id")
        .where("l.partner_id", partnerId)
        .andWhereRaw("l.seq > h.seq - ?", [cap])
        .orderBy("l.seq", "desc")
        .limit(Math.min(opts.limit ?? 100, cap))
        .select("l.seq as id", "l.at", "l.method", "l.route", "l.status", "l.latency_ms", "l.request_id", "l.client_id");
      if (opts.status === "errors") void q.where("l.status", ">=", 400);
      return (await q).map((r: LoggedCall & { id: bigint | string }) => ({ ...r, id: String(r.id) }));
    },
    async callsPerDay(partnerId: string, from: string): Promise<Array<{ day: string; calls: number; errors: number }>> {
      return db("portal_usage_daily").where({ partner_id: partnerId }).andWhere("day", ">=", from).orderBy("day").select("day", "calls", "errors");
    },
    async close(): Promise<void> {
      clearInterval(timer);
      await flush();
    },
  };
}

export type RequestLog = ReturnType<typeof createRequestLog>;
