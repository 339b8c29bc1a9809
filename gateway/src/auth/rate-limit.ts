import { Redis } from "ioredis";
import type { Logger } from "../infra/logger.ts";

export interface RateDecision {
  allowed: boolean;
  /** Seconds until the window resets, for Retry-After. */
  retryAfter: number;
  remaining: number;
}

export interface RateLimiter {
  hit(key: string, limit: number, windowSeconds: number): Promise<RateDecision>;
  close(): Promise<void>;
}

/**
 * Fixed-window counters. With Redis the window is shared by every API process; without it each
 * process counts alone (the embedded hub is one process). When Redis is unreachable the limiter
 * fails open and says so in the logs: a limiter outage must not take the API down with it.
 */
export function createRateLimiter(opts: { redisUrl?: string; log: Logger; prefix?: string }): RateLimiter {
  const prefix = opts.prefix ?? "hub:rl";
  if (!opts.redisUrl) {
    const windows = new Map<string, { resetAt: number; count: number }>();
    return {
      async hit(key, limit, windowSeconds) {
        const now = Date.now();
        let w = windows.get(key);
        if (!w || w.resetAt <= now) {
          w = { resetAt: now + windowSeconds * 1000, count: 0 };
          windows.set(key, w);
          if (windows.size > 100_000) for (const [k, v] of windows) if (v.resetAt <= now) windows.delete(k);
        }
        w.count++;
        return { allowed: w.count <= limit, retryAfter: Math.max(1, Math.ceil((w.resetAt - now) / 1000)), remaining: Math.max(0, limit - w.count) };
      },
      async close() {},
    };
  }
  const redis = new Redis(opts.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 1_000, lazyConnect: true });
  redis.on("error", () => undefined);
  let warned = 0;
  return {
    async hit(key, limit, windowSeconds) {
      const windowId = Math.floor(Date.now() / (windowSeconds * 1000));
      const k = `${prefix}:${key}:${windowId}`;
      try {
        if (redis.status === "wait" || redis.status === "end") await redis.connect();
        const [[, count]] = (await redis.multi().incr(k).expire(k, windowSeconds + 1).exec()) as [[unknown, number], unknown];
        const resetAt = (windowId + 1) * windowSeconds * 1000;
        return { allowed: count <= limit, retryAfter: Math.max(1, Math.ceil((resetAt - Date.now()) / 1000)), remaining: Math.max(0, limit - count) };
      } catch (err) {
        if (Date.now() - warned > 10_000) {
          warned = Date.now();
          opts.log.warn({ err: (err as Error).message }, "rate limiter cannot reach Redis; letting requests through");
        }
        return { allowed: true, retryAfter: 0, remaining: limit };
      }
    },
    async close() {
      redis.disconnect();
    },
  };
}
