import type { DbOrTrx } from "../infra/db.ts";

/** Who made an admin change: the operator's staff client, or the system itself. */
export interface Actor {
  type: "admin" | "partner" | "system";
  id: string;
  requestId?: string;
}

export interface AuditEntry {
  action: string;
  objectType: string;
  objectId: string | null;
  before?: unknown;
  after?: unknown;
  reason?: string | null;
}

/**
 * Appends one row to the audit log inside the caller's transaction, so the change and its record
 * commit together or not at all. The table refuses UPDATE and DELETE.
 */
export async function writeAudit(trx: DbOrTrx, actor: Actor, entry: AuditEntry): Promise<void> {
  await trx("audit_log").insert({
    actor_type: actor.type,
    actor_id: actor.id,
    action: entry.action,
    object_type: entry.objectType,
    object_id: entry.objectId,
    before: entry.before === undefined ? null : JSON.stringify(entry.before),
    after: entry.after === undefined ? null : JSON.stringify(entry.after),
    reason: entry.reason ?? null,
    request_id: actor.requestId ?? null,
  });
}

export interface AuditQuery {
  objectType?: string;
  objectId?: string;
  /** Cursor: only rows with an id below this one (newest first). */
  before?: bigint;
  limit: number;
}

export async function listAudit(db: DbOrTrx, q: AuditQuery) {
  const rows: Array<Record<string, unknown>> = await db("audit_log")
    .modify((b) => {
      if (q.objectType) b.where("object_type", q.objectType);
      if (q.objectId) b.where("object_id", q.objectId);
      if (q.before !== undefined) b.where("id", "<", String(q.before));
    })
    .orderBy("id", "desc")
    .limit(q.limit + 1);
  const more = rows.length > q.limit;
  const page = rows.slice(0, q.limit);
  return {
    items: page.map((r) => ({
      id: String(r.id),
      at: toIso(r.at),
      actor: { type: r.actor_type as string, id: r.actor_id as string },
      action: r.action as string,
      object_type: r.object_type as string,
      object_id: (r.object_id as string | null) ?? null,
      before: r.before ?? null,
      after: r.after ?? null,
      reason: (r.reason as string | null) ?? null,
      request_id: (r.request_id as string | null) ?? null,
    })),
    next_cursor: more ? String(page[page.length - 1]!.id) : null,
  };
}

/** Timestamps come back as Date from pg and as Date or text from PGlite; answers carry ISO text. */
export function toIso(v: unknown): string {
  return (v instanceof Date ? v : new Date(String(v))).toISOString();
}
