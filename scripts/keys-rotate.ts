// npm run keys:rotate — promotes the pre-published next signing key, retires the current one (it
// stays in the JWKS for one token lifetime) and publishes a new next key. Safe while the hub runs:
// every API process already knows the key that starts signing.
import { configOrExit, openDb } from "../gateway/src/runtime.ts";
import { createKeyStore } from "../gateway/src/auth/keys.ts";
import { createLogger } from "../gateway/src/infra/logger.ts";
import { systemClock } from "../gateway/src/infra/clock.ts";
import { migrateLatest } from "../gateway/src/infra/migrate.ts";

const config = configOrExit();
const db = await openDb(config);
if (config.embedded) await migrateLatest(db);
const keys = createKeyStore({ db, clock: systemClock, log: createLogger("silent"), tokenTtlSeconds: config.ACCESS_TOKEN_TTL_SECONDS });
await keys.ensure();
const r = await keys.rotate();
console.log(`signing key rotated: ${r.activated} now signs; ${r.retired ?? "no key"} retired; ${r.next} published as next`);
await db.destroy();
