import type { DbOrTrx } from "../infra/db.ts";

export interface EventRow {
  id: string;
  type: string;
  occurred_at: Date;
  data: Record<string, unknown>;
  tx_id: string;
  seq: bigint;
}

export interface EventQuery {
  partnerId: string;
  types?: string[];
  since?: Date;
  until?: Date;
  /** Resume strictly after this (transaction id, seq) position. */
  after?: { txId: string; seq: bigint };
  limit: number;
}

/**
 * The feed's horizon: the oldest transaction id still running that could write to this database.
 * The snapshot's in-progress list is cluster-wide, so the transactions of sessions on other
 * databases (known by pg_stat_activity) are left out — a stuck transaction elsewhere on the server
 * must not stall the feed. Whatever cannot be attributed (a session we may not see, one that ended
 * a moment ago, a prepared transaction) counts as ours: the horizon errs towards waiting.
 */
const HORIZON = `(
  WITH s AS (SELECT pg_current_snapshot() AS snap)
  SELECT coalesce(
    (SELECT x FROM s, pg_snapshot_xip(s.snap) AS x
      WHERE xid(x) NOT IN (SELECT backend_xid FROM pg_stat_activity WHERE datname IS DISTINCT FROM current_database() AND backend_xid IS NOT NULL)
      ORDER BY x LIMIT 1),
    (SELECT pg_snapshot_xmax(snap) FROM s)))`;

/**
 * A partner's committed events in feed order. Only events of transactions older than every
 * transaction still running here are served (tx_id below the horizon), in (tx_id, seq) order: an
 * event committed late by a slow transaction can then never land behind a cursor already handed
 * out, which ordering by seq alone would allow (seq is taken at insert, not at commit).
 */
export async function listEvents(q: EventQuery, trx: DbOrTrx): Promise<EventRow[]> {
  const query = trx("events")
    .where("partner_id", q.partnerId)
    .andWhereRaw(`tx_id < ${HORIZON}`)
    .orderBy([{ column: "tx_id" }, { column: "seq" }])
    .limit(q.limit)
    .select("id", "type", "occurred_at", "data", trx.raw("tx_id::text as tx_id"), "seq");
  if (q.types && q.types.length > 0) query.whereIn("type", q.types);
  if (q.since) query.andWhere("occurred_at", ">=", q.since);
  if (q.until) query.andWhere("occurred_at", "<", q.until);
  if (q.after) query.andWhereRaw("(tx_id, seq) > (?::xid8, ?::bigint)", [q.after.txId, String(q.after.seq)]);
  const rows = await query;
  return rows.map((r) => ({
    ...r,
    occurred_at: r.occurred_at instanceof Date ? r.occurred_at : new Date(r.occurred_at),
    data: typeof r.data === "string" ? JSON.parse(r.data) : r.data,
    seq: BigInt(r.seq),
  }));
}
