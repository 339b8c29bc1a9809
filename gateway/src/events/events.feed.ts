import type { Db } from "../infra/db.ts";
import { validationError } from "../http/problem.ts";
import { listEvents } from "./events.dal.ts";

export interface FeedQuery {
  types?: string[];
  since?: Date;
  until?: Date;
  cursor?: string;
  limit?: number;
}

const CURSOR = /^(\d{1,20}):(\d{1,19})$/;

function decodeCursor(cursor: string) {
  const m = CURSOR.exec(Buffer.from(cursor, "base64url").toString("utf8"));
  if (!m) throw validationError([{ field: "query/cursor", reason: "is not a cursor this API handed out" }]);
  return { txId: m[1]!, seq: BigInt(m[2]!) };
}

const encodeCursor = (txId: string, seq: bigint) => Buffer.from(`${txId}:${seq}`).toString("base64url");

/**
 * The partner's event feed: what webhooks would have told it, readable at its own pace. The cursor
 * it returns is a position in the feed, never null once the feed has started, so a partner polls
 * with the last cursor and gets only what is new.
 */
export function createEventFeed(deps: { db: Db }) {
  return {
    async list(partnerId: string, q: FeedQuery) {
      const limit = q.limit ?? 50;
      const after = q.cursor ? decodeCursor(q.cursor) : undefined;
      const rows = await listEvents(
        {
          partnerId,
          limit: limit + 1,
          ...(q.types ? { types: q.types } : {}),
          ...(q.since ? { since: q.since } : {}),
          ...(q.until ? { until: q.until } : {}),
          ...(after ? { after } : {}),
        },
        deps.db,
      );
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        items: page.map((e) => ({ id: e.id, type: e.type, occurred_at: e.occurred_at.toISOString(), data: e.data })),
        has_more: rows.length > limit,
        next_cursor: last ? encodeCursor(last.tx_id, last.seq) : (q.cursor ?? null),
      };
    },
  };
}

export type EventFeed = ReturnType<typeof createEventFeed>;
