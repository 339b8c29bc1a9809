// Drops everything and migrates again. Embedded: removes $DATA_DIR (the demo is seeded anew on the
// next start). PostgreSQL: rolls back every migration, then applies them all.
import fs from "node:fs";
import { loadConfig } from "../gateway/src/config/config.ts";
import { openDb } from "../gateway/src/runtime.ts";
import { migrateLatest, migrateRollbackAll } from "../gateway/src/infra/migrate.ts";

const config = loadConfig();
if (config.embedded) {
  fs.rmSync(config.dataDir, { recursive: true, force: true });
  console.log(`removed ${config.dataDir}; 'npm start' migrates and seeds it again`);
} else {
  const db = await openDb(config);
  const undone = await migrateRollbackAll(db);
  const applied = await migrateLatest(db);
  console.log(`rolled back ${undone.length}, applied ${applied.length} migration(s)`);
  await db.destroy();
}
