import fs from "node:fs";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { inject } from "vitest";
import { createDb, type Db } from "../gateway/src/infra/db.ts";
import { loadConfig, type Config } from "../gateway/src/config/config.ts";
import { createLogger } from "../gateway/src/infra/logger.ts";
import { fixedClock, systemClock, type Clock } from "../gateway/src/infra/clock.ts";
import { createMemoryQueue } from "../gateway/src/infra/queue/memory.queue.ts";
import { createBullmqQueue } from "../gateway/src/infra/queue/bullmq.queue.ts";
import type { JobQueue } from "../gateway/src/infra/queue/queue.types.ts";
import { createHub, type Hub, type HubDeps } from "../gateway/src/hub.ts";

let counter = 0;

/** A fresh database for one test file, cloned from the run's migrated template. */
export async function createTestDb(): Promise<Db> {
  const tpl = inject("dbTemplate");
  if (tpl.kind === "pglite") {
    const buf = fs.readFileSync(tpl.file);
    return createDb({ loadDataDir: new Blob([buf]) });
  }
  const name = `${tpl.template.replace("hub_tpl_", "hub_t")}_${process.pid}_${++counter}`;
  const admin = await createDb({ url: tpl.url, poolMax: 1 });
  await admin.raw(`CREATE DATABASE ${name} TEMPLATE ${tpl.template}`);
  await admin.destroy();
  const u = new URL(tpl.url);
  u.pathname = `/${name}`;
  return createDb({ url: u.toString(), poolMax: 40 });
}

/** The queue a test gets: BullMQ on its own key prefix when REDIS_URL is set, else in-process. */
export function createTestQueue(log = createLogger("silent")): JobQueue {
  const url = process.env.REDIS_URL;
  return url ? createBullmqQueue(url, log, { prefix: `t${process.pid}x${Date.now().toString(36)}x${++counter}` }) : createMemoryQueue(log);
}

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({ NODE_ENV: "test", LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent", DATA_DIR: "node_modules/.cache/hub-tests/data", PORT: "0", ...overrides });
}

export interface TestHub {
  hub: Hub;
  deps: HubDeps;
  db: Db;
  url: string;
  clock: Clock;
  /** fetch against the running hub; `path` starts with /. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

/**
 * A whole hub on a real database and an ephemeral port, with its workers running. Pass `clock` to
 * control time.
 */
export async function startTestHub(opts: { clock?: Clock; config?: Record<string, string>; workers?: boolean } = {}): Promise<TestHub> {
  const db = await createTestDb();
  const log = createLogger(process.env.TEST_LOG_LEVEL ?? "silent");
  const queue = createTestQueue(log);
  const deps: HubDeps = { config: testConfig(opts.config), db, queue, log, clock: opts.clock ?? systemClock };
  const hub = createHub(deps);
  await hub.init();
  const server: Server = hub.listen(0, "127.0.0.1");
  await new Promise<void>((r) => server.once("listening", () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  deps.config.PUBLIC_URL = url;
  if (opts.workers !== false) hub.startWorkers();
  return {
    hub,
    deps,
    db,
    url,
    clock: deps.clock,
    fetch: (path, init) => fetch(url + path, init),
    async close() {
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
      await hub.stopWorkers();
      await hub.close();
      await queue.close();
      await db.destroy();
    },
  };
}

export { fixedClock };
