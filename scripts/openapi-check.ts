// Fails when gateway/src/generated/openapi.ts is not what `npm run openapi:generate` makes of
// openapi/openapi.yaml, so the handlers' types never drift from the contract.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";

const target = "gateway/src/generated/openapi.ts";
const tmp = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "openapi-")), "openapi.ts");
execFileSync(process.execPath, ["node_modules/openapi-typescript/bin/cli.js", "openapi/openapi.yaml", "-o", tmp], { stdio: "pipe" });
if (!fs.existsSync(target) || fs.readFileSync(tmp, "utf8") !== fs.readFileSync(target, "utf8")) {
  console.error(`${target} is stale: run 'npm run openapi:generate' and commit the result`);
  process.exit(1);
}
console.log("openapi: generated types are in sync with openapi/openapi.yaml");
