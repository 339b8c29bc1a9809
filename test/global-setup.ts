import fs from "node:fs";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { createDb, pgliteOf } from "../gateway/src/infra/db.ts";
import { migrateLatest } from "../gateway/src/infra/migrate.ts";

declare module "vitest" {
  export interface ProvidedContext {
    dbTemplate: { kind: "postgres"; url: string; template: string } | { kind: "pglite"; file: string };
  }
}

/**
 * Migrates one template database per run; every test file then starts from a copy of it.
 * On PostgreSQL the copy is CREATE DATABASE … TEMPLATE; on PGlite it is a dump of the data dir.
 */
export default async function setup(project: TestProject) {
  const runId = `${process.pid}_${Date.now().toString(36)}`;
  const url = process.env.DATABASE_URL;
  if (url) {
    const admin = await createDb({ url, poolMax: 1 });
    const template = `hub_tpl_${runId}`;
    await admin.raw(`CREATE DATABASE ${template}`);
    const u = new URL(url);
    u.pathname = `/${template}`;
    const tdb = await createDb({ url: u.toString(), poolMax: 1 });
    await migrateLatest(tdb);
    await tdb.destroy();
    project.provide("dbTemplate", { kind: "postgres", url, template });
    return async () => {
      const rows = (await admin.raw(`SELECT datname FROM pg_database WHERE datname LIKE ?`, [`hub_%_${runId}%`])).rows as Array<{ datname: string }>;
      for (const r of rows) await admin.raw(`DROP DATABASE IF EXISTS ${r.datname} WITH (FORCE)`);
      await admin.destroy();
    };
  }
  const tdb = await createDb({});
  await migrateLatest(tdb);
  const dump = await pgliteOf(tdb)!.dumpDataDir("gzip");
  await tdb.destroy();
  const dir = path.resolve("node_modules/.cache/hub-tests");
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `template_${runId}.tgz`);
  fs.writeFileSync(file, Buffer.from(await dump.arrayBuffer()));
  project.provide("dbTemplate", { kind: "pglite", file });
  return () => fs.rmSync(file, { force: true });
}
