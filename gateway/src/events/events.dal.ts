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
 * A partner's committed events in feed order. Only events of transactions older than every
 * transaction still running are served (tx_id < the snapshot's xmin), in (tx_id, seq) order: an
 * event committed late by a slow transaction can then never land behind a cursor already handed
 * out, which ordering by seq alone would allow (seq is taken at insert, not at commit).
 */
export async function listEvents(q: EventQuery, trx: DbOrTrx): Promise<EventRow[]> {
  const query = trx("events")
    .where("partner_id", q.partnerId)
    .andWhereRaw("tx_id < pg_snapshot_xmin(pg_current_snapshot())")
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
