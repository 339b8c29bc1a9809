import { listen, namedQuery, type Db, type Listening } from "../infra/db.ts";
import type { Logger } from "../infra/logger.ts";
import { createBatcher } from "../infra/batcher.ts";

/** What a request's token check needs to know of its client and its token, beyond the token itself. */
export interface ClientState {
  status: string;
  partner_id: string | null;
  rate_limit_per_minute: number;
  revoked: boolean;
}

/** The channel the database notifies on any change to `oauth_clients` or `oauth_revoked_tokens` (migration 20261201160000). */
export const CLIENT_STATE_CHANNEL = "oauth_client_state";

const CACHE_MAX = 50_000;

/**
 * A client's status and a token's revocation, as each request's token check reads them, cached per
 * process for at most `ttlMs` (AUTH_STATE_CACHE_MS) so that a busy token costs one database read
 * per process per `ttlMs` instead of one per request.
 *
 * How soon a revocation or a disabled client is refused:
 * - in the process that made the change (revoke, disable, enable): at once — it empties its cache
 *   when the change has committed;
 * - in every other process: as soon as the database's notification arrives — triggers on
 *   `oauth_clients` and `oauth_revoked_tokens` NOTIFY `oauth_client_state` in the changing
 *   transaction, and each process LISTENs on a connection of its own and empties its cache;
 * - in any case within `ttlMs`: an entry never lives longer, notification or not.
 * The cache is used only while the process is listening: when the listening connection breaks, the
 * cache is emptied and every request reads the database until it listens again. A read that was in
 * flight when the cache was emptied is not cached (it may predate the change).
 *
 * `ttlMs` 0 turns the cache off: every request reads the database (requests that arrive while a
 * read is in flight share the next one).
 */
export function createClientStates(deps: { db: Db; log: Logger; ttlMs: number }) {
  const { db, log, ttlMs } = deps;
  const cache = new Map<string, { state: ClientState | undefined; until: number }>();
  let generation = 0;
  let listening = false;
  let listener: Listening | undefined;
  let closed = false;
  let hits = 0;
  let misses = 0;

  // Requests that arrive while a read is in flight share the next one (one query for many).
  const reads = createBatcher<{ clientId: string; jti: string }, ClientState | undefined>({ maxItems: 200, maxWaitMs: 0, maxInFlight: 2 }, async (asks) => {
    const rows = await namedQuery<ClientState & { i: number }>(
      db,
      "oauth_client_states",
      // By primary key, item by item (LATERAL … LIMIT 1): guessing 100 rows for the recordset, the
      // planner would otherwise hash whole tables, revoked tokens included. Named: planned once per connection.
      `SELECT k.i, c.status, c.partner_id, c.rate_limit_per_minute, coalesce(r.revoked, false) AS revoked
         FROM jsonb_to_recordset(?::jsonb) AS k(i integer, client_id text, jti text)
         JOIN LATERAL (SELECT c.status, c.partner_id, c.rate_limit_per_minute FROM oauth_clients c WHERE c.id = k.client_id LIMIT 1) c ON true
         LEFT JOIN LATERAL (SELECT true AS revoked FROM oauth_revoked_tokens r WHERE r.jti = k.jti LIMIT 1) r ON true`,
      [JSON.stringify(asks.map((a, i) => ({ i, client_id: a.clientId, jti: a.jti })))],
    );
    const by = new Map(rows.map((r) => [Number(r.i), r]));
    return asks.map((_, i) => ({ ok: true as const, value: by.get(i) }));
  });

  /** Forgets every cached state (a client or a token changed, or a notification may have been missed). */
  function invalidate(): void {
    generation++;
    cache.clear();
  }

  function startListening(): void {
    listener = listen(db, CLIENT_STATE_CHANNEL, {
      onNotify: invalidate,
      onReady: () => {
        // Whatever changed before we listened is not in the cache: it was empty, and stays so until now.
        invalidate();
        listening = true;
      },
      onLost: (err) => {
        listening = false;
        invalidate();
        log.warn({ err }, "client state notifications lost; reading every request's client state until they are back");
      },
    });
  }

  return {
    invalidate,

    /** The state of the token `jti` of client `clientId`; undefined when there is no such client. */
    async get(clientId: string, jti: string): Promise<ClientState | undefined> {
      if (ttlMs <= 0 || closed) return reads.submit({ clientId, jti });
      if (!listener) startListening();
      const key = `${clientId} ${jti}`;
      const now = performance.now();
      const hit = cache.get(key);
      if (hit) {
        if (hit.until > now) {
          hits++;
          return hit.state;
        }
        cache.delete(key);
      }
      misses++;
      const gen = generation;
      const state = await reads.submit({ clientId, jti });
      if (listening && gen === generation) {
        if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
        cache.set(key, { state, until: now + ttlMs });
      }
      return state;
    },

    /** True while notifications reach this process (the cache is in use only then). */
    listening: () => listening,
    /** Requests answered from the cache, and those that read the database. */
    stats: () => ({ hits, misses }),

    async close(): Promise<void> {
      closed = true;
      listening = false;
      invalidate();
      await listener?.close();
    },
  };
}

export type ClientStates = ReturnType<typeof createClientStates>;
