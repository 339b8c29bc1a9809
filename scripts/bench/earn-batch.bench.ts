/**
 * What one batched earn costs the database, by batch size: the fixed cost of a batch and the cost
 * of each earn in it. The earn bench (`npm run bench`) measures the whole pipeline under load, and
 * its rates swing with whatever else the machine runs; this measures the batch's own work — the
 * one statement that checks and writes it, through the real `createEarnBatch`, one batch at a time
 * on one connection — as the CPU time of the PostgreSQL backend, which holds to a few percent from run to
 * run. The figure to watch when changing `points_earn_batch`, `ledger_earn_rows` or the triggers of
 * the tables they write.
 *
 *   DATABASE_URL=postgres://… npm run bench:earn-batch
 *   env: SIZES (1,4,10,16,32: calls a batch), BATCHES (300 a size, after 30 not counted), MEMBERS (2000),
 *        SQL_BEFORE (SQL run once the database is migrated: an experiment, e.g. an ALTER FUNCTION … SET)
 *
 * It prints a row a size (PostgreSQL and Node CPU a batch and an earn, wall time a batch) and, on
 * the last line, the least-squares line through them: fixed ms a batch + ms an earn.
 */
import os from "node:os";
import { createLogger } from "../../gateway/src/infra/logger.ts";
import { systemClock } from "../../gateway/src/infra/clock.ts";
import { createLedger } from "../../gateway/src/ledger/ledger.service.ts";
import { createIdempotency } from "../../gateway/src/idempotency/idempotency.service.ts";
import { createMemberAccess } from "../../gateway/src/members/member-access.ts";
import { createEarnService } from "../../gateway/src/earn/earn.service.ts";
import { createEarnBatch } from "../../gateway/src/earn/earn.batch.ts";
import { baseRateRules } from "../../gateway/src/earn/earn.rules.ts";
import { benchDatabase, cpuMeter, seedEarnNetwork } from "./bench-setup.ts";

const url = process.env.DATABASE_URL;
if (!url) {
  console.error("DATABASE_URL is required: the bench measures PostgreSQL's backend (it creates and drops a database of its own).");
  process.exit(2);
}
const SIZES = (process.env.SIZES ?? "1,4,10,16,32").split(",").map(Number);
const BATCHES = Number(process.env.BATCHES ?? 300);
const WARMUP = 30;
const MEMBERS = Number(process.env.MEMBERS ?? 2000);

async function main() {
  // One connection: every batch runs on the backend the meter reads, one at a time.
  const { db, drop } = await benchDatabase(url!, "batch", 1);
  try {
    const { partnerId, members } = await seedEarnNetwork(db, MEMBERS);
    if (process.env.SQL_BEFORE) await db.raw(process.env.SQL_BEFORE);

    const log = createLogger("silent");
    const earn = createEarnService({ db, clock: systemClock, log, ledger: createLedger({ db }), members: createMemberAccess() });
    const idempotency = createIdempotency({ db });
    let seq = 0;
    const rows: Array<{ size: number; pg: number; node: number; wall: number }> = [];
    for (const size of SIZES) {
      // A batch leaves when its size-th call arrives: each round submits exactly one batch.
      const batch = createEarnBatch({ db, clock: systemClock, log, rules: baseRateRules, earn, idempotency, options: { maxItems: size, maxWaitMs: 10_000, maxInFlight: 1 } });
      const round = () =>
        Promise.all(
          Array.from({ length: size }, () => {
            const n = seq++;
            const input = { member_id: members[n % members.length]!, partner_transaction_id: `b-${n}`, amount_minor: 12_345, currency: "EUR" };
            return batch.submit({ partnerId, input, request: { principal: `partner:${partnerId}`, key: `b-${n}`, method: "POST", path: "/v1/earn", body: input } });
          }),
        );
      for (let i = 0; i < WARMUP; i++) await round();
      const meter = await cpuMeter(db);
      const t0 = performance.now();
      for (let i = 0; i < BATCHES; i++) await round();
      const wall = (performance.now() - t0) / BATCHES;
      const used = await meter.stop();
      const stats = batch.stats();
      if (stats.written !== stats.items) throw new Error(`size ${size}: ${stats.items - stats.written} calls went one by one; the figures would not be the batch's`);
      rows.push({ size, pg: (used.postgres * 1000) / BATCHES, node: (used.node * 1000) / BATCHES, wall });
    }

    console.log(`earn batches on one connection, ${BATCHES} a size, ${MEMBERS} members, ${os.cpus().length} CPU(s), load ${os.loadavg().map((x) => x.toFixed(2)).join(", ")}`);
    console.log("calls a batch | PostgreSQL ms a batch | PostgreSQL ms an earn | Node ms an earn | wall ms a batch");
    console.log("--------------|-----------------------|-----------------------|-----------------|----------------");
    for (const r of rows) {
      console.log(
        [String(r.size).padEnd(13), r.pg.toFixed(2).padEnd(21), (r.pg / r.size).toFixed(3).padEnd(21), (r.node / r.size).toFixed(3).padEnd(15), r.wall.toFixed(2)].join(" | "),
      );
    }
    // Least squares: PostgreSQL ms a batch = fixed + per earn × calls.
    const n = rows.length;
    const mx = rows.reduce((s, r) => s + r.size, 0) / n;
    const my = rows.reduce((s, r) => s + r.pg, 0) / n;
    const slope = rows.reduce((s, r) => s + (r.size - mx) * (r.pg - my), 0) / rows.reduce((s, r) => s + (r.size - mx) ** 2, 0);
    console.log(`PostgreSQL CPU a batch = ${(my - slope * mx).toFixed(2)} ms fixed + ${slope.toFixed(3)} ms an earn`);
  } finally {
    await drop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
