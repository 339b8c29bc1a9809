// Usage: npm run migration:new -- create_widgets   → migrations/YYYYMMDDHHMMSS_create_widgets.ts
import fs from "node:fs";
import path from "node:path";

const name = process.argv[2];
if (!name || !/^[a-z][a-z0-9_]*$/.test(name)) {
  console.error("usage: npm run migration:new -- verb_noun   (lower case, digits, underscores)");
  process.exit(64);
}
const stamp = new Date().toISOString().replace(/[-:T]/g, "").slice(0, 14);
const file = path.join("migrations", `${stamp}_${name}.ts`);
fs.writeFileSync(
  file,
  `import type { Knex } from "knex";

export async function up(knex: Knex): Promise<void> {
  // TODO: write the change; migrations are never edited once landed.
  await knex.raw("select 1");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("select 1");
}
`,
);
console.log(`created ${file}`);
