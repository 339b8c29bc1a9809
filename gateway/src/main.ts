import fs from "node:fs";
import path from "node:path";
import { createHub } from "./hub.ts";
import { migrateLatest, migrateRollbackAll } from "./infra/migrate.ts";
import { closeServer, configOrExit, lockDataDir, onShutdown, openDb, openDeps } from "./runtime.ts";
import { seedDemo } from "./seed/seed.ts";

/**
 * One entry point, several roles:
 *   start    the whole hub in one process (API, workers, portal); migrates and seeds on the way
 *   api      the HTTP API only          (scale out behind a load balancer)
 *   worker   the outbox relay and jobs  (scale out next to the API)
 *   migrate  apply pending migrations;  rollback: undo all of them
 *   seed     seed the demo network if it is not there yet
 */
const USAGE = "usage: hub <start|api|worker|migrate|rollback|seed>";

async function main(command: string | undefined): Promise<void> {
  const config = configOrExit();
  switch (command) {
    case "start":
    case "api":
    case "worker":
      return serve(command);
    case "migrate": {
      const db = await openDb(config);
      const applied = await migrateLatest(db);
      process.stdout.write(applied.length ? `applied ${applied.length} migration(s):\n  ${applied.join("\n  ")}\n` : "database is up to date\n");
      await db.destroy();
      return;
    }
    case "rollback": {
      const db = await openDb(config);
      const undone = await migrateRollbackAll(db);
      process.stdout.write(`rolled back ${undone.length} migration(s)\n`);
      await db.destroy();
      return;
    }
    case "seed": {
      const deps = await openDeps(config, "seed");
      await migrateLatest(deps.db);
      const creds = await seedDemo(deps);
      process.stdout.write(creds ? `seeded; credentials in ${creds.file}\n` : "already seeded\n");
      await deps.db.destroy();
      return;
    }
    default:
      process.stderr.write(`${USAGE}\n`);
      process.exit(64);
  }
}

async function serve(role: "start" | "api" | "worker"): Promise<void> {
  const config = configOrExit();
  if (config.embedded && role !== "start") {
    process.stderr.write(`the embedded database serves one process: use 'npm start', or set DATABASE_URL (and REDIS_URL) to run '${role}' on its own\n`);
    process.exit(64);
  }
  const unlock = config.embedded ? lockDataDir(config) : () => undefined;
  const deps = await openDeps(config, role);
  const { log } = deps;
  if (role === "start") {
    const applied = await migrateLatest(deps.db);
    if (applied.length) log.info({ applied }, "migrations applied");
  }
  const hub = createHub(deps);
  await hub.init();
  const steps: Array<() => Promise<void>> = [];

  let seeded: Awaited<ReturnType<typeof seedDemo>> = null;
  if (role === "start" && config.SEED_DEMO) seeded = await seedDemo(deps);

  if (role !== "worker") {
    const server = hub.listen(config.PORT, config.HOST);
    await new Promise<void>((resolve, reject) => {
      server.once("listening", resolve);
      server.once("error", reject);
    });
    steps.push(() => closeServer(server));
    log.info({ url: config.PUBLIC_URL }, "api listening");
  }
  if (role !== "api") {
    hub.startWorkers();
    steps.push(() => hub.stopWorkers());
    log.info({ queue: deps.queue.kind }, "workers started");
  }
  steps.push(() => hub.close(), () => deps.queue.close(), () => deps.db.destroy(), async () => unlock());
  onShutdown(log, config.SHUTDOWN_TIMEOUT_MS, steps);

  if (role === "start") printWelcome(config.PUBLIC_URL, config.dataDir, seeded?.file);
}

function printWelcome(url: string, dataDir: string, credsFile?: string): void {
  const file = credsFile ?? path.join(dataDir, "demo-credentials.json");
  const lines = [
    "",
    "  Coalition Loyalty Hub is running",
    "",
    `  API            ${url}`,
    `  API reference  ${url}/docs`,
    `  Portal         ${url}/portal   (developers sign up here; operators log in to the console)`,
    `  Contract       ${url}/openapi.json`,
    `  Health         ${url}/readyz`,
    "",
  ];
  if (fs.existsSync(file)) {
    const creds = JSON.parse(fs.readFileSync(file, "utf8")) as {
      clients: Array<{ partner: string; client_id: string; client_secret: string; scopes: string[] }>;
      portal?: { url: string; operator: { email: string; password: string } };
    };
    if (creds.portal) lines.push(`  Operator console login (demo): ${creds.portal.operator.email}  ${creds.portal.operator.password}`, "");
    lines.push(`  Demo OAuth clients (client_id / client_secret; all in ${file}):`);
    for (const c of creds.clients) lines.push(`    ${c.partner.padEnd(26)} ${c.client_id}  ${c.client_secret}`);
    const first = creds.clients.find((c) => c.scopes.includes("earn:write"));
    if (first) {
      lines.push("", "  Try it:", `    curl -s -u '${first.client_id}:${first.client_secret}' -d grant_type=client_credentials ${url}/oauth/token`);
    }
    lines.push("");
  }
  lines.push("  Ctrl-C stops it. Data lives in " + dataDir, "");
  process.stdout.write(lines.join("\n") + "\n");
}

main(process.argv[2]).catch((err: unknown) => {
  process.stderr.write(`fatal: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
