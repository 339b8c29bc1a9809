/** Times each SQL statement of one earn through the service (a profiling aid for the bench). */
import { createDb } from "../../gateway/src/infra/db.ts";
import { migrateLatest } from "../../gateway/src/infra/migrate.ts";
import { createLogger } from "../../gateway/src/infra/logger.ts";
import { systemClock } from "../../gateway/src/infra/clock.ts";
import { createLedger } from "../../gateway/src/ledger/ledger.service.ts";
import { createIdempotency } from "../../gateway/src/idempotency/idempotency.service.ts";
import { createMemberAccess } from "../../gateway/src/members/member-access.ts";
import { createEarnService } from "../../gateway/src/earn/earn.service.ts";

const url = process.env.DATABASE_URL!;
const name = `hub_prof_${Date.now().toString(36)}`;
const admin = await createDb({ url, poolMax: 1 });
await admin.raw(`CREATE DATABASE ${name}`);
const u = new URL(url);
u.pathname = `/${name}`;
const db = await createDb({ url: u.toString(), poolMax: 4 });
try {
  await migrateLatest(db);
  await db("partners").insert({ id: "ptn_p", name: "P", kind: "merchant", sector: "s", status: "active" });
  await db("contract_versions").insert({ id: "ctr_p", partner_id: "ptn_p", version: 1, effective_from: new Date("2020-01-01"), currency: "EUR", issuance_price_micros: "1", redemption_price_micros: "1", earn_points: "1", earn_per_minor: "1000" });
  await db("members").insert({ id: "mem_1", enrolled_by_partner_id: "ptn_p" });
  await db("member_partner_links").insert({ member_id: "mem_1", partner_id: "ptn_p", relation: "enrolled" });
  const ledger = createLedger({ db });
  const idem = createIdempotency({ db });
  const earn = createEarnService({ db, clock: systemClock, log: createLogger("silent"), ledger, members: createMemberAccess() });
  const times = new Map<string, number[]>();
  const started = new Map<string, number>();
  db.on("query", (q: { __knexQueryUid: string }) => started.set(q.__knexQueryUid, performance.now()));
  db.on("query-response", (_r: unknown, q: { __knexQueryUid: string; sql: string }) => {
    const t = performance.now() - started.get(q.__knexQueryUid)!;
    const k = q.sql.slice(0, 70);
    times.set(k, [...(times.get(k) ?? []), t]);
  });
  const N = Number(process.env.N ?? 50);
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const body = { member_id: "mem_1", partner_transaction_id: `t${i}`, amount_minor: 12345, currency: "EUR" };
    await idem.run({ principal: "p", key: `k${i}`, method: "POST", path: "/v1/earn", body }, async (trx) => ({ status: 201, body: await earn.earn(trx, "ptn_p", body) }));
  }
  const total = (performance.now() - t0) / N;
  const rows = [...times.entries()].map(([k, v]) => [k, v.reduce((a, b) => a + b, 0) / v.length, v.length] as const).sort((a, b) => b[1] - a[1]);
  for (const [k, avg, n] of rows) process.stdout.write(`${avg.toFixed(2).padStart(7)} ms  x${n}  ${k}\n`);
  process.stdout.write(`${total.toFixed(2)} ms per earn (sequential)\n`);
} finally {
  await db.destroy();
  await admin.raw(`DROP DATABASE ${name} WITH (FORCE)`);
  await admin.destroy();
}
