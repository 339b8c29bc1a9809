/**
 * npm run bench:settlement — clears a generated month of TRANSACTIONS ledger entries across
 * PARTNERS partners and prints the time and the peak memory of this process; the last line is the
 * clearing's seconds.
 *
 * Needs DATABASE_URL (a PostgreSQL server; a fresh database is created on it and dropped after).
 * The month (May 2026) is generated set-based in SQL, in one transaction with triggers off
 * (session_replication_role = replica): every entry is balanced by construction, and the
 * generator is the one writer of ledger tables outside gateway/src/ledger/ — a fixture, not a path
 * the hub runs. The mix, per 100 entries:
 *   60 earns at a merchant (every 5th with 50 operator-funded bonus points: a second posting and lot),
 *   25 burns at a merchant, 5 refunds (points taken back), 4 expiries (2 of partner-funded lots,
 *   2 of operator-funded ones), 4 cashback credits (60% funded by the merchant), 1 round-up sweep with
 *   a merchant's match through a bank, 1 cashback payout through a bank.
 * Then the clearing runs as the workers would, in this process: statements → per partner collect
 * (the statements dealt into one collect group per lane, each group's items in one pass, the groups
 * at once), price, verify, render → network → close.
 * It prints each step's wall time summed over statements, so the cost of each step shows.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run bench:settlement
 *   env: TRANSACTIONS (1000000), PARTNERS (50, of which 2 are banks), MEMBERS (100000), KEEP_DB=1,
 *        CLEAR_CONCURRENCY (statements cleared at once, as settlement.clear workers would; default one per CPU)
 *        REUSE_DB=<name of a database a KEEP_DB run left>: skip the generation, clear its month again
 */
import os from "node:os";
import { createDb, type Db } from "../../gateway/src/infra/db.ts";
import { migrateLatest } from "../../gateway/src/infra/migrate.ts";
import { createLogger } from "../../gateway/src/infra/logger.ts";
import { fixedClock } from "../../gateway/src/infra/clock.ts";
import { createClearingService } from "../../settlement/src/clearing.service.ts";

const url = process.env.DATABASE_URL;
if (!url) {
  process.stderr.write("npm run bench:settlement needs DATABASE_URL=postgres://… (a server it may create a database on)\n");
  process.exit(2);
}
const N = Number(process.env.TRANSACTIONS ?? 1_000_000);
const PARTNERS = Number(process.env.PARTNERS ?? 50);
const BANKS = 2;
const MERCHANTS = PARTNERS - BANKS;
const MEMBERS = Number(process.env.MEMBERS ?? 100_000);
// Partners' statements cleared at once, as that many settlement.clear workers would (one per CPU).
const CLEAR_CONCURRENCY = Number(process.env.CLEAR_CONCURRENCY ?? os.cpus().length);

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

async function generate(db: Db): Promise<void> {
  await db.transaction(async (trx) => {
    await trx.raw("SET LOCAL session_replication_role = replica");
    await trx.raw("SET LOCAL work_mem = '256MB'");
    // Partners 0..MERCHANTS-1 are merchants, the last BANKS are banks; one EUR contract each.
    await trx.raw(
      `INSERT INTO partners (id, name, kind, sector, status)
       SELECT 'ptn_b' || lpad(i::text, 3, '0'), 'Bench ' || i, CASE WHEN i >= ? THEN 'bank' ELSE 'merchant' END, 'bench-' || i, 'active'
         FROM generate_series(0, ? - 1) i`,
      [MERCHANTS, PARTNERS],
    );
    await trx.raw(
      `INSERT INTO contract_versions (id, partner_id, version, effective_from, currency, issuance_price_micros, redemption_price_micros, earn_points, earn_per_minor,
                                      points_validity_days, refund_policy, negative_floor, transaction_fee_minor, monthly_fee_minor, breakage_share_bps)
       SELECT 'ctr_b' || lpad(i::text, 3, '0'), 'ptn_b' || lpad(i::text, 3, '0'), 1, '2020-01-01T00:00:00Z', 'EUR', 10000 + 100 * (i % 7), 8000 + 50 * (i % 5), 1, 1000,
              365, 'negative_balance', -1000, 3 + i % 3, 5000 + 1000 * (i % 4), 2500 * (i % 3)
         FROM generate_series(0, ? - 1) i`,
      [PARTNERS],
    );
    await trx.raw(
      `INSERT INTO members (id, status, enrolled_by_partner_id)
       SELECT 'mem_b' || lpad(i::text, 7, '0'), 'active', 'ptn_b' || lpad((i % ?)::text, 3, '0') FROM generate_series(0, ? - 1) i`,
      [MERCHANTS, MEMBERS],
    );
    // Accounts: members' points, cashback and savings; partners' points and money; the network's.
    await trx.raw(
      `INSERT INTO ledger_accounts (id, kind, asset, member_id, partner_id, balance, floor)
       SELECT 'acc_pts_' || m.id, 'member_points', 'PTS', m.id, NULL, 0, 0 FROM members m
       UNION ALL SELECT 'acc_cb_' || m.id || '_EUR', 'member_cashback', 'EUR', m.id, NULL, 0, NULL FROM members m
       UNION ALL SELECT 'acc_ru_' || m.id || '_EUR', 'member_roundup', 'EUR', m.id, NULL, 0, NULL FROM members m
       UNION ALL SELECT 'acc_iss_' || p.id, 'partner_issuance', 'PTS', NULL, p.id, NULL, NULL FROM partners p
       UNION ALL SELECT 'acc_red_' || p.id, 'partner_redemption', 'PTS', NULL, p.id, NULL, NULL FROM partners p
       UNION ALL SELECT 'acc_rec_' || p.id, 'partner_recovery', 'PTS', NULL, p.id, NULL, NULL FROM partners p
       UNION ALL SELECT 'acc_opf_' || p.id, 'funding', 'PTS', NULL, p.id, NULL, NULL FROM partners p
       UNION ALL SELECT 'acc_rcv_' || p.id || '_EUR', 'partner_receivable', 'EUR', NULL, p.id, NULL, NULL FROM partners p
       UNION ALL SELECT 'acc_pay_' || p.id || '_EUR', 'partner_payable', 'EUR', NULL, p.id, NULL, NULL FROM partners p
       UNION ALL SELECT 'acc_fund_' || p.id || '_EUR', 'funding', 'EUR', NULL, p.id, NULL, NULL FROM partners p WHERE p.kind = 'bank'
       UNION ALL SELECT 'acc_breakage', 'breakage', 'PTS', NULL, NULL, NULL, NULL
       UNION ALL SELECT 'acc_opfund_EUR', 'funding', 'EUR', NULL, NULL, NULL, NULL`,
    );
    // The month: entry g has type r = g % 100 (see the header), a merchant, a bank and a member.
    await trx.raw(
      `CREATE TEMP TABLE gen ON COMMIT DROP AS
       SELECT g, g % 100 AS r,
              'ent_b' || lpad(g::text, 8, '0') AS id,
              'ptn_b' || lpad(((g * 7 + g / 100) % ?)::text, 3, '0') AS merchant,
              'ptn_b' || lpad((? + g % ?)::text, 3, '0') AS bank,
              'mem_b' || lpad((g % ?)::text, 7, '0') AS member,
              timestamptz '2026-05-01T00:00:00Z' + (g::float8 / ? * 2678399) * interval '1 second' AS at
         FROM generate_series(0, ? - 1) g`,
      [MERCHANTS, MERCHANTS, BANKS, MEMBERS, N, N],
    );
    await trx.raw(
      `INSERT INTO ledger_entries (id, kind, partner_id, member_id, ref_type, ref_id, contract_version_id, occurred_at, memo)
       SELECT id,
              CASE WHEN r < 60 THEN 'earn' WHEN r < 85 THEN 'burn' WHEN r < 90 THEN 'refund' WHEN r < 94 THEN 'expire' WHEN r < 98 THEN 'earn' ELSE 'adjust' END,
              CASE WHEN r BETWEEN 90 AND 93 THEN NULL WHEN r >= 98 THEN bank ELSE merchant END,
              member,
              CASE WHEN r < 90 THEN 'transaction' WHEN r < 94 THEN 'expiry' WHEN r < 98 THEN 'card_purchase' WHEN r = 98 THEN 'roundup_sweep' ELSE 'cashback_payout' END,
              'ref_' || g,
              CASE WHEN r < 90 OR r BETWEEN 94 AND 97 THEN 'ctr_b' || substr(merchant, 6) END,
              at,
              CASE WHEN r BETWEEN 94 AND 97 THEN '{"money":"cashback"}'::jsonb WHEN r = 98 THEN '{"money":"roundup_sweep"}'::jsonb
                   WHEN r = 99 THEN '{"money":"cashback_payout"}'::jsonb END
         FROM gen`,
    );
    await trx.raw(
      `INSERT INTO ledger_postings (entry_id, account_id, asset, amount)
       SELECT gen.id, v.account, v.asset, v.amount
         FROM gen, LATERAL (VALUES
           -- earn: the merchant funds 10..99 points, the operator 50 more on every 5th
           (CASE WHEN r < 60 THEN 'acc_iss_' || merchant END, 'PTS', -(10 + g % 90)),
           (CASE WHEN r < 60 AND g % 5 = 0 THEN 'acc_opf_' || merchant END, 'PTS', -50),
           (CASE WHEN r < 60 THEN 'acc_pts_' || member END, 'PTS', 10 + g % 90 + CASE WHEN g % 5 = 0 THEN 50 ELSE 0 END),
           -- burn
           (CASE WHEN r BETWEEN 60 AND 84 THEN 'acc_pts_' || member END, 'PTS', -(5 + g % 40)),
           (CASE WHEN r BETWEEN 60 AND 84 THEN 'acc_red_' || merchant END, 'PTS', 5 + g % 40),
           -- refund
           (CASE WHEN r BETWEEN 85 AND 89 THEN 'acc_pts_' || member END, 'PTS', -(5 + g % 20)),
           (CASE WHEN r BETWEEN 85 AND 89 THEN 'acc_iss_' || merchant END, 'PTS', 5 + g % 20),
           -- expiry: 5 points of one lot
           (CASE WHEN r BETWEEN 90 AND 93 THEN 'acc_pts_' || member END, 'PTS', -5),
           (CASE WHEN r BETWEEN 90 AND 93 THEN 'acc_breakage' END, 'PTS', 5),
           -- cashback: 1.00..9.99, the merchant funds 60%
           (CASE WHEN r BETWEEN 94 AND 97 THEN 'acc_cb_' || member || '_EUR' END, 'EUR', 100 + g % 900),
           (CASE WHEN r BETWEEN 94 AND 97 THEN 'acc_rcv_' || merchant || '_EUR' END, 'EUR', -((100 + g % 900) * 6 / 10)),
           (CASE WHEN r BETWEEN 94 AND 97 THEN 'acc_opfund_EUR' END, 'EUR', -((100 + g % 900) - (100 + g % 900) * 6 / 10)),
           -- round-up 0.50 with a 0.10 match
           (CASE WHEN r = 98 THEN 'acc_ru_' || member || '_EUR' END, 'EUR', 60),
           (CASE WHEN r = 98 THEN 'acc_fund_' || bank || '_EUR' END, 'EUR', -60),
           (CASE WHEN r = 98 THEN 'acc_pay_' || bank || '_EUR' END, 'EUR', 10),
           (CASE WHEN r = 98 THEN 'acc_rcv_' || merchant || '_EUR' END, 'EUR', -10),
           -- cashback payout 0.50
           (CASE WHEN r = 99 THEN 'acc_cb_' || member || '_EUR' END, 'EUR', -50),
           (CASE WHEN r = 99 THEN 'acc_pay_' || bank || '_EUR' END, 'EUR', 50)
         ) AS v(account, asset, amount)
        WHERE v.account IS NOT NULL
        ORDER BY gen.g`,
    );
    await trx.raw(
      `INSERT INTO ledger_lots (id, member_id, account_id, issuing_partner_id, contract_version_id, entry_id, earned_at, expires_at, amount, remaining, funded_by)
       SELECT 'lot_bp' || g, member, 'acc_pts_' || member, merchant, 'ctr_b' || substr(merchant, 6), id, at, at + interval '365 days', 10 + g % 90, 10 + g % 90, 'partner:' || merchant
         FROM gen WHERE r < 60
       UNION ALL
       SELECT 'lot_bo' || g, member, 'acc_pts_' || member, merchant, 'ctr_b' || substr(merchant, 6), id, at, at + interval '365 days', 50, 50, 'operator'
         FROM gen WHERE r < 60 AND g % 5 = 0`,
    );
    // Expiries 90, 91 take 5 points of the partner-funded lots of earns r = 0, 1 of the same hundred;
    // 92, 93 of the operator-funded lot of earn r = 0 (g − r is a multiple of 5).
    await trx.raw(
      `INSERT INTO ledger_lot_movements (lot_id, entry_id, amount)
       SELECT CASE WHEN r < 92 THEN 'lot_bp' || (g - r + (r - 90)) ELSE 'lot_bo' || (g - r) END, id, 5 FROM gen WHERE r BETWEEN 90 AND 93`,
    );
  });
  await db.raw("ANALYZE");
}

async function main() {
  const reuse = process.env.REUSE_DB;
  const dbName = reuse ?? `hub_bench_settle_${Date.now().toString(36)}`;
  const admin = await createDb({ url: url!, poolMax: 1 });
  if (!reuse) await admin.raw(`CREATE DATABASE ${dbName}`);
  const u = new URL(url!);
  u.pathname = `/${dbName}`;
  const db = await createDb({ url: u.toString(), poolMax: 4 });
  try {
    await migrateLatest(db);
    let t = performance.now();
    if (reuse) {
      // A bench database only: the run's statements are dropped with their triggers off.
      await db.transaction(async (trx) => {
        await trx.raw("SET LOCAL session_replication_role = replica");
        await trx.raw("DELETE FROM settlement_items; DELETE FROM settlement_lines; DELETE FROM settlement_statements; DELETE FROM settlement_runs; DELETE FROM outbox");
      });
      await db.raw("VACUUM ANALYZE settlement_items");
    } else await generate(db);
    const counts = (await db.raw("SELECT (SELECT count(*) FROM ledger_entries)::int AS entries, (SELECT count(*) FROM ledger_postings)::int AS postings")).rows[0] as { entries: number; postings: number };
    console.log(`generated ${counts.entries} ledger entries (${counts.postings} postings) across ${PARTNERS} partners and ${MEMBERS} members in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    const clock = fixedClock("2026-06-01T01:00:00Z");
    // Where the time goes: each step's wall time, summed over statements (from the step hooks; with
    // lanes in parallel, a statement's step is timed from that statement's previous step).
    const stepMs = new Map<string, number>();
    let stepStart = performance.now();
    const lastStepAt = new Map<string, number>();
    let laneFreeAt = 0;
    const clearing = createClearingService({
      db,
      clock,
      log: createLogger("silent"),
      hooks: {
        onStep(at) {
          if (at.phase !== "after-commit") return;
          const now = performance.now();
          const k = `${at.scope}:${at.step}`;
          // A statement's later steps from its previous one; its first step and the run's steps from
          // the latest step of anything (a lane starts its next statement as its last one ends).
          // A statement collected with its group's first waits for a lane: its price step is timed
          // from the later of its collect and the last statement a lane finished.
          const from =
            at.scope !== "statement" ? stepStart : at.step === "price" ? Math.max(lastStepAt.get(at.id) ?? stepStart, laneFreeAt) : (lastStepAt.get(at.id) ?? stepStart);
          stepMs.set(k, (stepMs.get(k) ?? 0) + (now - from));
          if (at.scope === "statement") lastStepAt.set(at.id, now);
          if (at.scope === "statement" && at.step === "render") laneFreeAt = now;
          stepStart = now;
        },
      },
    });
    let peakRss = process.memoryUsage().rss;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }, 20);
    const rssBefore = process.memoryUsage().rss;
    t = performance.now();
    stepStart = t;
    laneFreeAt = t;
    const { run } = await clearing.startRun("2026-05");
    const done = await clearing.runToEnd(run.id, { concurrency: CLEAR_CONCURRENCY });
    const seconds = (performance.now() - t) / 1000;
    clearInterval(sampler);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    if (done.status !== "closed") throw new Error(`the run ended ${done.status}: ${done.failure}`);
    const report = (await clearing.getRun(run.id)).run.report as { currencies: Array<{ network_sum_minor: number; operator_revenue_total_minor: number }>; points: Record<string, unknown> };
    const items = (await db.raw("SELECT count(*)::int AS n FROM settlement_items")).rows[0] as { n: number };
    console.log(`cleared ${items.n} items into ${PARTNERS} statements; network sum ${report.currencies.map((c) => c.network_sum_minor).join(", ")}; operator revenue ${report.currencies[0]?.operator_revenue_total_minor} minor units`);
    // One digest of every statement's content, CSV and PDF hashes: a change that must not change the
    // statements' bytes (a faster query, say) prints the same digest for the same month.
    const hashes = (await db.raw("SELECT partner_id, content_sha256, csv_sha256, pdf_sha256 FROM settlement_statements ORDER BY partner_id")).rows as Array<Record<string, string>>;
    const { createHash } = await import("node:crypto");
    const digest = createHash("sha256").update(hashes.map((h) => `${h.partner_id}|${h.content_sha256}|${h.csv_sha256}|${h.pdf_sha256}\n`).join("")).digest("hex");
    console.log(`statements' content, CSV and PDF hashes: sha256 ${digest}`);
    console.log(`memory: rss before ${mb(rssBefore)}, peak rss during clearing ${mb(peakRss)}, process maxRSS ${mb(process.resourceUsage().maxRSS * 1024)}, heap used now ${mb(process.memoryUsage().heapUsed)}`);
    console.log(`steps: ${[...stepMs].map(([k, v]) => `${k} ${(v / 1000).toFixed(2)} s`).join(", ")}`);
    const { loadavg } = await import("node:os");
    console.log(`load average: ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
    console.log(`clearing of ${N} transactions: ${seconds.toFixed(2)} s`);
    console.log(seconds.toFixed(2));
  } finally {
    await db.destroy();
    if (!process.env.KEEP_DB && !reuse) await admin.raw(`DROP DATABASE IF EXISTS ${dbName}`);
    await admin.destroy();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
