import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Knex } from "knex";
import type { Db } from "./db.ts";

export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../migrations");

interface MigrationModule {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

/**
 * Knex's own loader guesses at module formats; this source lists `migrations/*.ts` in name order
 * and imports them, so the same files run on PGlite and PostgreSQL, under tsx and under vitest.
 */
const source: Knex.MigrationSource<string> = {
  async getMigrations() {
    return fs
      .readdirSync(MIGRATIONS_DIR)
      .filter((f) => /^\d{14}_[a-z0-9_]+\.ts$/.test(f))
      .sort();
  },
  getMigrationName: (m) => m,
  async getMigration(m) {
    return (await import(pathToFileURL(path.join(MIGRATIONS_DIR, m)).href)) as MigrationModule;
  },
};

export async function migrateLatest(db: Db): Promise<string[]> {
  const [, applied] = (await db.migrate.latest({ migrationSource: source })) as [number, string[]];
  return applied;
}

export async function migrateRollbackAll(db: Db): Promise<string[]> {
  const [, undone] = (await db.migrate.rollback({ migrationSource: source }, true)) as [number, string[]];
  return undone;
}

export async function pendingMigrations(db: Db): Promise<string[]> {
  const [, pending] = (await db.migrate.list({ migrationSource: source })) as [unknown[], Array<{ file: string } | string>];
  return pending.map((p) => (typeof p === "string" ? p : p.file));
}
