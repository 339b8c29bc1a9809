// Re-derives a prize draw's winners from what the hub published, and says whether they match.
//   npm run verify-draw -- https://hub.example/draws/drw_…     (the public document)
//   npm run verify-draw -- draw.json                             (a saved copy)
// Exit code 0: the draw verifies; 1: it does not (each problem is printed); 2: usage.
// Needs nothing from the hub but its published JSON: sha256 and the arithmetic in draws.verify.ts.
import fs from "node:fs";
import { verifyDraw, type PublishedDraw } from "../gateway/src/rules/draws.verify.ts";

const source = process.argv[2];
if (!source) {
  console.error("usage: npm run verify-draw -- <draw JSON file or URL>");
  process.exit(2);
}
const text = /^https?:\/\//.test(source) ? await (await fetch(source)).text() : fs.readFileSync(source, "utf8");
const draw = JSON.parse(text) as PublishedDraw;
const problems = verifyDraw(draw);
if (problems.length === 0) {
  console.log(`draw ${draw.id}: verified — commitment, ${draw.entries?.length ?? 0} entries and ${draw.winners?.length ?? 0} winner(s) all follow from the published data`);
  process.exit(0);
}
console.error(`draw ${draw.id}: DOES NOT VERIFY`);
for (const p of problems) console.error(`  - ${p}`);
process.exit(1);
