import fs from "node:fs";
import path from "node:path";
import type { Server } from "node:http";
import { loadConfig, ConfigError, type Config } from "./config/config.ts";
import { createDb, type Db } from "./infra/db.ts";
import { createLogger, type Logger } from "./infra/logger.ts";
import { systemClock } from "./infra/clock.ts";
import { createMemoryQueue } from "./infra/queue/memory.queue.ts";
import { createBullmqQueue } from "./infra/queue/bullmq.queue.ts";
import type { JobQueue } from "./infra/queue/queue.types.ts";
import type { HubDeps } from "./hub.ts";

/** Reads the configuration or stops the process with one line naming the wrong variable. */
export function configOrExit(): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`config error: ${err.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
}

export function openQueue(config: Config, log: Logger): JobQueue {
  return config.REDIS_URL ? createBullmqQueue(config.REDIS_URL, log) : createMemoryQueue(log);
}

export async function openDb(config: Config): Promise<Db> {
  return config.embedded
    ? createDb({ dataDir: path.join(config.dataDir, "pgdata") })
    : createDb({ url: config.DATABASE_URL!, poolMax: config.DATABASE_POOL_MAX });
}

/**
 * PGlite is one process's database: a second process on the same files would corrupt them, so the
 * embedded hub holds a lock file for as long as it runs.
 */
export function lockDataDir(config: Config): () => void {
  fs.mkdirSync(config.dataDir, { recursive: true });
  const file = path.join(config.dataDir, "hub.pid");
  try {
    const pid = Number(fs.readFileSync(file, "utf8"));
    if (pid && pid !== process.pid) {
      try {
        process.kill(pid, 0);
        process.stderr.write(`another hub (pid ${pid}) is using ${config.dataDir}; stop it first or set DATA_DIR\n`);
        process.exit(1);
      } catch {
        // stale lock: that process is gone
      }
    }
  } catch {
    // no lock yet
  }
  fs.writeFileSync(file, String(process.pid));
  return () => fs.rmSync(file, { force: true });
}

export async function openDeps(config: Config, role: string): Promise<HubDeps> {
  const log = createLogger(config.LOG_LEVEL, { role }, { buffered: true });
  const db = await openDb(config);
  const queue = openQueue(config, log);
  return { config, db, queue, log, clock: systemClock };
}

/** Graceful stop on SIGTERM/SIGINT: finish in-flight requests and jobs, then close connections. */
export function onShutdown(log: Logger, timeoutMs: number, steps: Array<() => Promise<void> | void>): void {
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    const force = setTimeout(() => {
      log.error("shutdown took too long; exiting");
      process.exit(1);
    }, timeoutMs);
    force.unref();
    for (const step of steps) {
      try {
        await step();
      } catch (err) {
        log.error({ err }, "shutdown step failed");
      }
    }
    log.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
