import type { RequestHandler } from "express";
import type { Db } from "../../../gateway/src/infra/db.ts";
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
 * The partners' request log. A middleware in front of the API notes each call made with a partner
 * token when its response finishes — time, route template (never the raw path: it could hold an
 * id a partner would rather not log), status, latency, request id — into memory; a timer writes
 * the batch in one insert, counts calls per day, and trims each partner's log to the cap. The
 * API's answer never waits for any of it; a failed write loses log lines, never a request.
 */
export function createRequestLog(deps: { db: Db; clock: Clock; log: Logger; flushMs?: number; cap?: number }) {
  const { db, log } = deps;
  const cap = deps.cap ?? REQUEST_LOG_CAP;
  let buffer: Pending[] = [];
  let flushing: Promise<void> | null = null;
  const timer = setInterval(() => void flush(), deps.flushMs ?? 500);
  timer.unref();

  async function write(batch: Pending[]): Promise<void> {
    await db("portal_request_log").insert(batch);
    const perDay = new Map<string, { partner_id: string; day: string; calls: number; errors: number }>();
    for (const b of batch) {
      const day = b.at.toISOString().slice(0, 10);
      const k = `${b.partner_id}|${day}`;
      const row = perDay.get(k) ?? { partner_id: b.partner_id, day, calls: 0, errors: 0 };
      row.calls++;
      if (b.status >= 400) row.errors++;
      perDay.set(k, row);
    }
    for (const row of perDay.values()) {
      await db("portal_usage_daily")
        .insert(row)
        .onConflict(["partner_id", "day"])
        .merge({ calls: db.raw("portal_usage_daily.calls + excluded.calls"), errors: db.raw("portal_usage_daily.errors + excluded.errors") });
    }
    for (const partnerId of new Set(batch.map((b) => b.partner_id))) {
      await db.raw(
        `DELETE FROM portal_request_log WHERE partner_id = ? AND id < (
           SELECT id FROM portal_request_log WHERE partner_id = ? ORDER BY id DESC OFFSET ? LIMIT 1)`,
        [partnerId, partnerId, cap - 1],
      );
    }
  }

  async function flush(): Promise<void> {
    if (flushing) return flushing;
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
      if (buffer.length >= 500) void flush();
    });
    next();
  };

  return {
    middleware,
    flush,
    async recent(partnerId: string, opts: { limit?: number; status?: "errors" } = {}): Promise<LoggedCall[]> {
      const q = db("portal_request_log")
        .where({ partner_id: partnerId })
        .orderBy("id", "desc")
        .limit(Math.min(opts.limit ?? 100, cap))
        .select("id", "at", "method", "route", "status", "latency_ms", "request_id", "client_id");
      if (opts.status === "errors") void q.where("status", ">=", 400);
      return (await q).map((r: LoggedCall & { id: bigint | string }) => ({ ...r, id: String(r.id) }));
    },
    async callsPerDay(partnerId: string, from: string): Promise<Array<{ day: string; calls: number; errors: number }>> {
      return db("portal_usage_daily").where({ partner_id: partnerId }).andWhere("day", ">=", from).orderBy("day").select("day", "calls", "errors");
    },
    async close(): Promise<void> {
      clearInterval(timer);
      await flush();
      if (flushing) await flushing;
    },
  };
}

export type RequestLog = ReturnType<typeof createRequestLog>;
