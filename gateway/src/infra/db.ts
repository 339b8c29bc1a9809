import fs from "node:fs";
import path from "node:path";
import knexFactory, { type Knex } from "knex";
import pg from "pg";
import { PGlite } from "@electric-sql/pglite";
import ClientPGLite from "knex-pglite";

export type Db = Knex;
export type Trx = Knex.Transaction;
/** Data access functions take an optional transaction last; the service owns its boundary. */
export type DbOrTrx = Knex | Knex.Transaction;

const INT8 = 20;
const DATE = 1082;
// Both drivers answer alike: int8 as bigint (exact, never a float), a DATE as its 'YYYY-MM-DD' text.
pg.types.setTypeParser(INT8, (v: string) => BigInt(v));
pg.types.setTypeParser(DATE, (v: string) => v);

export interface DbOptions {
  /** postgres:// URL; absent means the embedded PGlite. */
  url?: string;
  /** Where PGlite keeps its files; absent with no url means in memory. */
  dataDir?: string;
  /** A PGlite data directory dump to start from (tests start from a migrated template). */
  loadDataDir?: Blob;
  poolMax?: number;
}

export async function createDb(opts: DbOptions): Promise<Db> {
  if (opts.url) {
    return knexFactory({
      client: "pg",
      connection: { connectionString: opts.url, application_name: "loyalty-hub" },
      pool: { min: 0, max: opts.poolMax ?? 20 },
      acquireConnectionTimeout: 10_000,
    });
  }
  if (opts.dataDir) fs.mkdirSync(path.dirname(opts.dataDir), { recursive: true });
  const pglite = await PGlite.create({
    ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
    ...(opts.loadDataDir ? { loadDataDir: opts.loadDataDir } : {}),
    // PGlite answers int8 as a number when it fits and a bigint when not; pin it to bigint, as pg.
    parsers: { [DATE]: (v: string) => v, [INT8]: (v: string) => BigInt(v) },
  });
  const db = knexFactory({ client: ClientPGLite as unknown as typeof knexFactory.Client, connection: () => ({ pglite }) } as Knex.Config);
  embedded.set(db, pglite);
  return db;
}

const embedded = new WeakMap<Db, PGlite>();

/** The PGlite instance behind an embedded Db (for dumps); undefined on a PostgreSQL server. */
export function pgliteOf(db: Db): PGlite | undefined {
  return embedded.get(db);
}

/** True when the error is PostgreSQL telling us to retry the whole transaction. */
export function isRetryableDbError(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === "40001" || code === "40P01";
}

export function pgErrorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

export function pgConstraint(err: unknown): string | undefined {
  const c = (err as { constraint?: unknown } | null)?.constraint;
  return typeof c === "string" ? c : undefined;
}

const positional = new Map<string, string>();

/** `sql` with its `?` placeholders numbered ($1, $2, …), as PostgreSQL takes them. */
function positionalOf(sql: string): string {
  let text = positional.get(sql);
  if (text === undefined) {
    let n = 0;
    text = sql.replace(/\?/g, () => `$${++n}`);
    positional.set(sql, text);
  }
  return text;
}

/**
 * One statement, prepared under `name` (PostgreSQL plans it once per connection), sent straight on
 * a connection of knex's pool: none of knex's query building, runner, events or debug formatting,
 * which cost about as much client CPU as a short statement's round trip itself. For hot paths.
 * `sql` takes `?` placeholders, as db.raw does (so it must not use the jsonb `?` operators). On
 * PGlite — one connection, which a knex transaction may hold — it goes through db.raw.
 */
export async function namedQuery<R>(db: Db, name: string, sql: string, values: Knex.RawBinding[]): Promise<R[]> {
  if (pgliteOf(db)) return (await db.raw(sql, values)).rows as R[];
  const text = positionalOf(sql);
  const client = db.client as Knex.Client;
  const conn = (await client.acquireConnection()) as pg.Client;
  try {
    return (await conn.query({ name, text, values })).rows as R[];
  } finally {
    void client.releaseConnection(conn);
  }
}

export interface PipelinedQuery {
  /** As namedQuery; on a connection of its own, sent at once even while earlier ones run. */
  query<R>(name: string, sql: string, values: Knex.RawBinding[]): Promise<R[]>;
  close(): Promise<void>;
}

/**
 * Statements pipelined on a connection of their own, outside knex's pool (node-postgres's pipeline
 * mode): each is sent at once, with its own Sync — its own transaction, its own error — even while
 * earlier ones still run, and PostgreSQL runs them one after the other on one backend. The next
 * statement is already in the server's socket when the one before it commits, instead of leaving
 * only once this process has read that one's answer. For the earn batch (earn.batch.ts).
 *
 * Connected on first use and again after it breaks; while it is not connected, statements go
 * through the pool (namedQuery). A connection that breaks after it was up is replaced at the next
 * statement; one that cannot be made is tried again after a backoff (`retryMinMs`, doubling up to
 * `retryMaxMs`), so a server that refuses connections is not asked again at every batch. A
 * statement's own error leaves the connection as it is; a broken connection fails the statements
 * sent on it (their callers see the error). On PGlite it is namedQuery.
 */
export function pipelinedQuery(db: Db, applicationName: string, opts: PipelinedQueryOptions = {}): PipelinedQuery {
  if (pgliteOf(db)) return { query: (name, sql, values) => namedQuery(db, name, sql, values), close: async () => undefined };
  const connectionString = opts.connectionString ?? ((db.client as { config: Knex.Config }).config.connection as { connectionString: string }).connectionString;
  const retryMinMs = opts.retryMinMs ?? 250;
  const retryMaxMs = opts.retryMaxMs ?? 10_000;
  let client: pg.Client | undefined;
  let ready = false;
  let closed = false;
  // Connections that could not be made in a row, and when the next may be tried.
  let failures = 0;
  let retryAt = 0;
  const drop = (c: pg.Client) => {
    if (client !== c) return;
    // One that was up is replaced at the next statement (failures is 0 and retryAt past since it
    // connected); one that never came up waits out the backoff.
    if (!ready) {
      failures++;
      retryAt = Date.now() + Math.min(retryMaxMs, retryMinMs * 2 ** (failures - 1));
    }
    client = undefined;
    ready = false;
    void c.end().catch(() => undefined);
  };
  const connect = () => {
    const c = new pg.Client({ connectionString, application_name: applicationName, pipeline: true } as pg.ClientConfig);
    client = c;
    c.on("error", () => drop(c));
    c.on("end", () => drop(c));
    c.connect().then(
      () => {
        if (client !== c || closed) return void c.end().catch(() => undefined);
        // As the pool's connections, it does not keep the process alive on its own.
        (c as unknown as { connection: { stream: { unref(): void } } }).connection.stream.unref();
        ready = true;
        failures = 0;
      },
      () => drop(c),
    );
  };
  return {
    async query<R>(name: string, sql: string, values: Knex.RawBinding[]): Promise<R[]> {
      const c = client;
      if (!c || !ready) {
        if (!c && !closed && Date.now() >= retryAt) connect();
        return namedQuery<R>(db, name, sql, values);
      }
      try {
        return (await c.query({ name, text: positionalOf(sql), values })).rows as R[];
      } catch (err) {
        if (pgErrorCode(err) === undefined) drop(c);
        throw err;
      }
    },
    async close() {
      closed = true;
      const c = client;
      client = undefined;
      ready = false;
      await c?.end().catch(() => undefined);
    },
  };
}

export interface PipelinedQueryOptions {
  /** Another route to the same database than the pool's (tests: through a proxy they can cut). */
  connectionString?: string;
  /** The wait before trying again after a connection could not be made, doubled each time up to retryMaxMs (250 ms, 10 s). */
  retryMinMs?: number;
  retryMaxMs?: number;
}

export interface NotificationHandlers {
  /** A NOTIFY on the channel (its payload). */
  onNotify(payload: string): void;
  /** Listening: from now on every notification on the channel arrives (again after a reconnect). */
  onReady(): void;
  /** Notifications may have been missed (the connection broke); onReady follows once listening again. */
  onLost(err?: unknown): void;
}

export interface Listening {
  close(): Promise<void>;
}

/**
 * LISTEN on a channel. On PostgreSQL through a connection of its own (LISTEN is per connection; a
 * pooled one goes back to the pool), reconnecting with backoff when it breaks; its socket does not
 * keep the process alive. On PGlite, in process. `channel` is a lower-case SQL identifier.
 */
export function listen(db: Db, channel: string, handlers: NotificationHandlers): Listening {
  if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`not a channel name: ${channel}`);
  const pglite = pgliteOf(db);
  if (pglite) {
    const unlisten = pglite.listen(channel, (payload) => handlers.onNotify(payload)).then((u) => {
      handlers.onReady();
      return u;
    });
    return {
      async close() {
        await (await unlisten)();
      },
    };
  }
  const connection = (db.client as { config: Knex.Config }).config.connection as { connectionString: string };
  let closed = false;
  let client: pg.Client | undefined;
  let timer: NodeJS.Timeout | undefined;
  let backoffMs = 250;
  const connect = async () => {
    timer = undefined;
    const c = new pg.Client({ connectionString: connection.connectionString, application_name: "loyalty-hub-listen" });
    client = c;
    let lost = false;
    const lose = (err?: unknown) => {
      if (lost) return;
      lost = true;
      c.removeAllListeners("notification");
      void c.end().catch(() => undefined);
      if (closed) return;
      handlers.onLost(err);
      timer = setTimeout(() => void connect(), backoffMs);
      timer.unref();
      backoffMs = Math.min(backoffMs * 2, 10_000);
    };
    c.on("error", lose);
    c.on("end", () => lose());
    c.on("notification", (n) => {
      if (n.channel === channel) handlers.onNotify(n.payload ?? "");
    });
    try {
      await c.connect();
      (c as unknown as { connection: { stream: { unref(): void } } }).connection.stream.unref();
      await c.query(`LISTEN ${channel}`);
      if (closed || lost) return;
      backoffMs = 250;
      handlers.onReady();
    } catch (err) {
      lose(err);
    }
  };
  void connect();
  return {
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      await client?.end().catch(() => undefined);
    },
  };
}
