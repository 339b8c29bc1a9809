import path from "node:path";
import { z } from "zod";

/**
 * Configuration is read once, from the environment, at boot. Every variable is listed in
 * `.env.example` with its default. A wrong value stops the process with one line naming it.
 */
const bool = z
  .enum(["true", "false", "1", "0", "yes", "no"])
  .transform((v) => v === "true" || v === "1" || v === "yes");

const url = (protocols: string[]) =>
  z.string().refine((v) => {
    try {
      return protocols.includes(new URL(v).protocol);
    } catch {
      return false;
    }
  }, `must be a URL starting with ${protocols.map((p) => `${p}//`).join(" or ")}`);

const schema = z.object({
  NODE_ENV: z.enum(["development", "test", "production"]).default("development"),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().min(1).default("0.0.0.0"),
  PUBLIC_URL: url(["http:", "https:"]).optional(),
  DATA_DIR: z.string().min(1).default("./data"),
  DATABASE_URL: url(["postgres:", "postgresql:"]).optional(),
  DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(500).default(20),
  REDIS_URL: url(["redis:", "rediss:"]).optional(),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  BODY_LIMIT: z.string().regex(/^\d+(b|kb|mb)$/, "must look like 100kb or 1mb").default("1mb"),
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  SEED_DEMO: bool.optional(),
  OUTBOX_POLL_MS: z.coerce.number().int().min(10).max(60_000).default(250),
  // Group commit of plain earns: up to this many calls per batch (1 turns batching off), a batch
  // leaves at most this many ms after its first call, and this many batches run at once (one: the
  // next batch fills while one is in the database, and leaves the moment it returns — fewer, larger
  // batches, each paying the fixed cost of a batch once; the bench's figures in README.md).
  EARN_BATCH_MAX_ITEMS: z.coerce.number().int().min(1).max(60).default(32),
  EARN_BATCH_MAX_WAIT_MS: z.coerce.number().int().min(0).max(50).default(1),
  EARN_BATCH_MAX_IN_FLIGHT: z.coerce.number().int().min(1).max(32).default(1),
  // On PostgreSQL, earn batches are pipelined on a connection of their own: the next leaves, queued
  // behind the one in flight, once this share of the callers in the system waits (0: not pipelined,
  // EARN_BATCH_MAX_IN_FLIGHT batches at a time on the pool).
  EARN_BATCH_PIPELINE: z.coerce.number().min(0).max(1).default(0.45),
  // A burn by member id in one statement when nothing unusual is in the way (false: every burn one by one).
  BURN_ONE_STATEMENT: bool.default(true),
  // Those burns, when several arrive together, written together: at most this many a transaction,
  // the first at once and the next batch when it returns (1: each burn its own statement).
  BURN_BATCH_MAX_ITEMS: z.coerce.number().int().min(1).max(60).default(32),
  WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(8),
  // Statements one worker clears at once, and the collect groups a month's collection is dealt
  // into (one pass over the month's ledger per group, the groups at once): about the cores the
  // database can give a month's clearing (settlement/src/clearing.service.ts, collectGroup).
  SETTLEMENT_CLEAR_LANES: z.coerce.number().int().min(1).max(32).default(2),
  ACCESS_TOKEN_TTL_SECONDS: z.coerce.number().int().min(30).max(600).default(600),
  // How long an API process may trust what it read of a client's status and a token's revocation
  // (ms; 0: read them on every request). The database's notifications make a change take effect
  // sooner; this bounds it when a notification is lost (gateway/src/auth/client-states.ts).
  AUTH_STATE_CACHE_MS: z.coerce.number().int().min(0).max(60_000).default(2_000),
  TOKEN_ENDPOINT_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).max(1_000_000).default(600),
  WEBHOOK_ALLOW_LOOPBACK: bool.default(false),
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
  WEBHOOK_RETRY_SCHEDULE: z
    .string()
    .default("5s,5m,30m,2h,5h,10h,14h,20h,24h")
    .transform((v, ctx) => {
      const delays = parseDurations(v);
      if (!delays) ctx.addIssue({ code: "custom", message: "must be a comma-separated list of durations such as 5s,5m,2h (units ms, s, m, h, d)" });
      return delays ?? [];
    }),
  WEBHOOK_SWEEP_INTERVAL_MS: z.coerce.number().int().min(100).max(3_600_000).default(60_000),
  // Paid membership: Stripe's secret key, the webhook endpoint's signing secret, and (for a local
  // stand-in or stripe-mock only) another API base than https://api.stripe.com.
  STRIPE_SECRET_KEY: z.string().min(1).optional(),
  STRIPE_WEBHOOK_SECRET: z.string().min(1).optional(),
  STRIPE_API_URL: url(["http:", "https:"]).optional(),
  // Banks: an auth with no clearing after this many days expires (its pending reward lapses).
  CARD_AUTH_EXPIRY_DAYS: z.coerce.number().int().min(1).max(90).default(7),
  // Banks: available cashback is paid out through the member's bank from this amount (minor units).
  CASHBACK_PAYOUT_THRESHOLD_MINOR: z.coerce.number().int().min(1).max(100_000_000).default(1000),
  // The portal: the key that signs its session cookies (shared by every API process; required in production).
  PORTAL_SESSION_SECRET: z.string().min(32, "must be at least 32 characters").optional(),
  // The portal: login attempts allowed per email and per client address in 15 minutes.
  PORTAL_LOGIN_LIMIT_PER_EMAIL: z.coerce.number().int().min(1).max(10_000).default(10),
  PORTAL_LOGIN_LIMIT_PER_ADDRESS: z.coerce.number().int().min(1).max(100_000).default(50),
});

/** "5s,5m,2h" → milliseconds; undefined when any part is not a duration. */
export function parseDurations(v: string): number[] | undefined {
  const unit: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  const out: number[] = [];
  for (const part of v.split(",").map((x) => x.trim()).filter(Boolean)) {
    const m = /^(\d+)(ms|s|m|h|d)$/.exec(part);
    if (!m) return undefined;
    out.push(Number(m[1]) * unit[m[2]!]!);
  }
  return out;
}

export type RawConfig = z.infer<typeof schema>;

export interface Config extends Omit<RawConfig, "SEED_DEMO" | "PUBLIC_URL"> {
  /** The issuer and base of every absolute URL the hub hands out. */
  PUBLIC_URL: string;
  /** Embedded mode: PGlite under DATA_DIR and the in-process queue. */
  embedded: boolean;
  SEED_DEMO: boolean;
  dataDir: string;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    reason: string,
  ) {
    super(`${variable} ${reason}`);
    this.name = "ConfigError";
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Empty strings are treated as unset, as docker-compose and shells hand them over.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0] ?? "environment");
    const got = cleaned[variable];
    throw new ConfigError(variable, `${issue.message}${got === undefined ? "" : ` (got ${JSON.stringify(got)})`}`);
  }
  const raw = parsed.data;
  const embedded = raw.DATABASE_URL === undefined;
  if (raw.REDIS_URL !== undefined && embedded) {
    throw new ConfigError("REDIS_URL", "is set without DATABASE_URL: the embedded database serves one process only, so a shared queue cannot help");
  }
  if (raw.NODE_ENV === "production" && raw.PORTAL_SESSION_SECRET === undefined) {
    throw new ConfigError("PORTAL_SESSION_SECRET", "is required in production: every API process must sign the portal's session cookies with the same key");
  }
  const host = raw.HOST === "0.0.0.0" || raw.HOST === "::" ? "localhost" : raw.HOST;
  return {
    ...raw,
    PUBLIC_URL: (raw.PUBLIC_URL ?? `http://${host}:${raw.PORT}`).replace(/\/+$/, ""),
    embedded,
    SEED_DEMO: raw.SEED_DEMO ?? embedded,
    dataDir: path.resolve(raw.DATA_DIR),
  };
}
