/**
 * npm run bench — the earn and burn endpoints under load, against the raw SQL of one earn.
 *
 * Needs DATABASE_URL (a PostgreSQL server; a fresh database is created on it and dropped after).
 * Seeds a partner, members and OAuth clients, starts the API as API_PROCESSES `hub api` processes
 * (production settings; 0: in this process), then drives POST /v1/earn and POST /v1/burn from a
 * thread of its own with CONCURRENCY keep-alive HTTP clients for DURATION_S seconds each, and runs
 * pgbench on the same database with a script doing one equivalent earn per transaction (member row
 * lock, journal entry, two postings, a lot, a balance update) at the same concurrency. Earn and
 * pgbench take turns (ROUNDS), each phase and turn after VACUUM (ANALYZE) and a CHECKPOINT.
 * Prints a table; the last line is the ratio HTTP earn/s ÷ pgbench tps.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run bench
 *   env: CONCURRENCY (32), DURATION_S (15), WARMUP_S (3, per HTTP phase, not counted), MEMBERS (2000), API_PROCESSES (half the CPUs), API_LOG_LEVEL (info),
 *        API_NODE_ARGS (extra node flags for the API processes, e.g. --cpu-prof), API_STDOUT (1: the API processes' standard output
 *        on this one's, e.g. with API_NODE_ARGS=--trace-gc and API_LOG_LEVEL=warn),
 *        PHASES (health,service,earn,burn,pgbench), ROUNDS (3: earn and pgbench take turns), EARN_BATCH_*, BURN_ONE_STATEMENT and BURN_BATCH_MAX_ITEMS (passed to the API),
 *        TAIL (1: print, per turn, when the answers slower than 40 ms were sent, and the load generator's own event-loop delay), KEEP_DB (1: keep the database, to look into it after)
 */
import { randomBytes } from "node:crypto";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Worker } from "node:worker_threads";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { createDb } from "../../gateway/src/infra/db.ts";
import { migrateLatest } from "../../gateway/src/infra/migrate.ts";
import { loadConfig } from "../../gateway/src/config/config.ts";
import { createLogger } from "../../gateway/src/infra/logger.ts";
import { systemClock } from "../../gateway/src/infra/clock.ts";
import { createMemoryQueue } from "../../gateway/src/infra/queue/memory.queue.ts";
import { createHub } from "../../gateway/src/hub.ts";
import { seedEarnNetwork } from "./bench-setup.ts";
import { createLedger } from "../../gateway/src/ledger/ledger.service.ts";
import { createIdempotency } from "../../gateway/src/idempotency/idempotency.service.ts";
import { createMemberAccess } from "../../gateway/src/members/member-access.ts";
import { createEarnService } from "../../gateway/src/earn/earn.service.ts";
import type { LoadResult, LoadSpec } from "./http-load.worker.ts";

const run = promisify(execFile);
const url = process.env.DATABASE_URL;
if (!url) {
  process.stderr.write("npm run bench needs DATABASE_URL=postgres://… (a server it may create a database on)\n");
  process.exit(2);
}
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 32);
const DURATION_S = Number(process.env.DURATION_S ?? 15);
// Seconds of each HTTP phase's load run first and not counted: the API's JIT warms up, as a server does before it takes traffic.
const WARMUP_S = Number(process.env.WARMUP_S ?? 3);
const MEMBERS = Number(process.env.MEMBERS ?? 2000);
// Which phases run (all by default); e.g. PHASES=earn to profile the earn path alone.
const PHASES = new Set((process.env.PHASES ?? "health,service,earn,burn,pgbench").split(",").map((p) => p.trim()));
// HTTP earn and pgbench take turns this many times, DURATION_S ÷ ROUNDS seconds a turn (rounded, at least one).
const ROUNDS = Math.max(1, Number(process.env.ROUNDS ?? 3));
// The API in its own processes (0: in this process), and their log level (production logs at info).
// Half the cores by default: the API and PostgreSQL share this machine, and the other half is the
// database's. On 2 cores, with two batches in flight per process, two processes earned at about the
// same rate as one (2,250-2,760 /s against 2,400-2,690 /s, runs alternated) for ~0.1 ms more API and
// PostgreSQL CPU per earn: their batches are half as big.
const API_PROCESSES = Number(process.env.API_PROCESSES ?? Math.max(1, Math.floor(os.cpus().length / 2)));
const API_LOG_LEVEL = process.env.API_LOG_LEVEL ?? "info";
// Diagnoses: when the slow answers came (a stall of the whole pipeline shows as all clients at once); the database kept.
const TAIL = Boolean(process.env.TAIL);
const KEEP_DB = Boolean(process.env.KEEP_DB);
// Extra node flags for the API processes, e.g. API_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof";
// API_STDOUT=1 shows what they print (their logs, --trace-gc).
const API_STDOUT = Boolean(process.env.API_STDOUT);
const API_NODE_ARGS = (process.env.API_NODE_ARGS ?? "").split(" ").filter(Boolean);
const root = path.resolve(import.meta.dirname, "../..");
const children: ChildProcess[] = [];

async function stopChildren(): Promise<void> {
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
  await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once("exit", r)) : undefined)));
  children.length = 0;
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

async function waitReady(base: string): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    try {
      if ((await fetch(`${base}/readyz`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${base} did not become ready`);
}
const skipped = { name: "", perSec: NaN, p50: NaN, p99: NaN, total: 0, statuses: {}, cpu: undefined, machine: { busyMs: NaN, ctxt: NaN } };

/** CPU time (ms) a process has used so far, from /proc (Linux); undefined elsewhere. */
function procCpuMs(pid: number): number | undefined {
  try {
    // utime and stime are fields 14 and 15; the command name (field 2) may hold spaces, so count after ")".
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return undefined;
  }
}

/**
 * The whole machine's busy CPU (user, nice, system, irq, softirq: not idle, iowait or steal) in ms
 * and its context switches so far, from /proc/stat (Linux); undefined elsewhere. Every process
 * counts, so it compares the HTTP earn (API, PostgreSQL, load generator) with pgbench (client and
 * PostgreSQL) as the machine paid for each.
 */
function machineCpu(): { busyMs: number; ctxt: number } | undefined {
  try {
    const text = fs.readFileSync("/proc/stat", "utf8");
    const [user, nice, system, , , irq, softirq] = text.split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    const ctxt = Number(/^ctxt (\d+)$/m.exec(text)?.[1]);
    return { busyMs: ((user! + nice! + system! + irq! + softirq!) * 1000) / 100, ctxt };
  } catch {
    return undefined;
  }
}
type MachineCpu = NonNullable<ReturnType<typeof machineCpu>>;
const machineSince = (a: MachineCpu | undefined, b: MachineCpu | undefined): MachineCpu =>
  a && b ? { busyMs: b.busyMs - a.busyMs, ctxt: b.ctxt - a.ctxt } : { busyMs: NaN, ctxt: NaN };
const machineSum = (xs: MachineCpu[]): MachineCpu => xs.reduce((s, x) => ({ busyMs: s.busyMs + x.busyMs, ctxt: s.ctxt + x.ctxt }), { busyMs: 0, ctxt: 0 });

/** Where the CPU went during a phase: the API processes, PostgreSQL (the bench database's backends and the WAL writer), and this process (the load generator). */
interface CpuSplit {
  api: number;
  pg: number;
  load: number;
  /** Transactions the bench database committed or rolled back. */
  xacts: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main() {
  const dbName = `hub_bench_${Date.now().toString(36)}`;
  const admin = await createDb({ url, poolMax: 1 });
  await admin.raw(`CREATE DATABASE ${dbName}`);
  const u = new URL(url!);
  u.pathname = `/${dbName}`;
  const benchUrl = u.toString();
  // A small pool: the API processes have their own and pgbench needs 32 connections beside them.
  // With API_PROCESSES=0 this process serves the load itself and needs one per client.
  let db = await createDb({ url: benchUrl, poolMax: Number(process.env.DATABASE_POOL_MAX ?? (API_PROCESSES > 0 ? 8 : CONCURRENCY + 8)) });
  const log = createLogger(process.env.BENCH_LOG_LEVEL ?? "silent");
  const queue = createMemoryQueue(log);
  let server: Server | undefined;
  try {
    await migrateLatest(db);
    // Production settings: responses are not re-validated against the contract.
    // The earn batch's and the burn's settings, passed to the API (in this process and in its own).
    const tuningEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("EARN_BATCH_") || k === "BURN_ONE_STATEMENT" || k === "BURN_BATCH_MAX_ITEMS"));
    // One session key for the bench's API processes, as production requires of every API process.
    const portalSecret = randomBytes(32).toString("hex");
    const config = loadConfig({ NODE_ENV: "production", LOG_LEVEL: "silent", DATABASE_URL: benchUrl, PORT: "0", DATA_DIR: os.tmpdir(), PORTAL_SESSION_SECRET: portalSecret, ...tuningEnv });
    const hub = createHub({ config, db, queue, log, clock: systemClock });
    await hub.init();
    server = hub.listen(0, "127.0.0.1");
    await new Promise<void>((r) => server!.once("listening", () => r()));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    config.PUBLIC_URL = base;

    // Seed: one active merchant with a contract, members it enrolled, one OAuth client per HTTP client.
    const { partnerId, members } = await seedEarnNetwork(db, MEMBERS);
    const tokens: string[] = [];
    for (let i = 0; i < CONCURRENCY; i++) {
      const { client, secret } = await hub.auth.clients.create(
        { partnerId, name: `bench ${i}`, scopes: ["earn:write", "burn:write", "members:read"], rateLimitPerMinute: 10_000_000 },
        { type: "bench", id: "bench" },
      );
      const res = await fetch(`${base}/oauth/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.id)}:${encodeURIComponent(secret!)}`).toString("base64")}` },
        body: new URLSearchParams({ grant_type: "client_credentials" }),
      });
      if (res.status !== 200) throw new Error(`token request failed: ${res.status} ${await res.text()}`);
      tokens.push(((await res.json()) as { access_token: string }).access_token);
    }

    async function timed(name: string, once: () => Promise<number>) {
      const lat: number[] = [];
      const statuses = new Map<number, number>();
      const until = Date.now() + DURATION_S * 1000;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (Date.now() < until) {
            const t0 = performance.now();
            const st = await once();
            lat.push(performance.now() - t0);
            statuses.set(st, (statuses.get(st) ?? 0) + 1);
          }
        }),
      );
      const secs = (performance.now() - started) / 1000;
      lat.sort((a, b) => a - b);
      const ok = [...statuses.entries()].filter(([st]) => st < 300).reduce((n, [, k]) => n + k, 0);
      return { name, perSec: ok / secs, p50: percentile(lat, 50), p99: percentile(lat, 99), total: lat.length, statuses: Object.fromEntries(statuses) };
    }

    // API_PROCESSES > 0: the API runs as that many `hub api` processes (the real role, production
    // settings), each on its own port, the clients spread over them as a load balancer would.
    // 0: the hub in this process. Tokens are issued above; the issuer (PUBLIC_URL) is the same.
    const bases: string[] = [];
    if (API_PROCESSES > 0) {
      for (let i = 0; i < API_PROCESSES; i++) {
        const port = await freePort();
        const env: NodeJS.ProcessEnv = {
          ...process.env,
          ...tuningEnv,
          NODE_ENV: "production",
          LOG_LEVEL: API_LOG_LEVEL,
          DATABASE_URL: benchUrl,
          DATABASE_POOL_MAX: String(Math.max(4, Math.ceil(CONCURRENCY / API_PROCESSES) + 4)),
          PORT: String(port),
          HOST: "127.0.0.1",
          PUBLIC_URL: base,
          PORTAL_SESSION_SECRET: portalSecret,
        };
        // The in-process queue and rate limiter: the bench measures the API and the database.
        delete env.REDIS_URL;
        const child = spawn(process.execPath, [...API_NODE_ARGS, "--import", "tsx", path.join(root, "gateway/src/main.ts"), "api"], {
          cwd: root,
          env,
          stdio: ["ignore", API_STDOUT ? "inherit" : "ignore", "inherit"],
        });
        children.push(child);
        bases.push(`http://127.0.0.1:${port}`);
      }
      for (const b of bases) await waitReady(b);
    } else {
      bases.push(base);
    }

    const pgPids = async () =>
      ((await db.raw("SELECT pid FROM pg_stat_activity WHERE datname = ? OR backend_type = 'walwriter'", [dbName])).rows as Array<{ pid: number }>).map((r) => r.pid);
    async function cpuSnapshot() {
      const pg = new Map<number, number>();
      for (const pid of await pgPids()) pg.set(pid, procCpuMs(pid) ?? 0);
      const api = children.reduce((n, c) => n + (c.pid ? (procCpuMs(c.pid) ?? 0) : 0), 0);
      const load = process.cpuUsage();
      // Statements the bench database ran (each autocommit statement is a transaction of its own).
      const xacts = Number(((await db.raw("SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = ?", [dbName])).rows as Array<{ n: string }>)[0]!.n);
      return { pg, api, load: (load.user + load.system) / 1000, xacts };
    }
    function cpuSince(before: Awaited<ReturnType<typeof cpuSnapshot>>, after: Awaited<ReturnType<typeof cpuSnapshot>>): CpuSplit {
      let pg = 0;
      for (const [pid, ms] of after.pg) pg += ms - (before.pg.get(pid) ?? 0);
      return { api: after.api - before.api, pg, load: after.load - before.load, xacts: after.xacts - before.xacts };
    }

    // Every phase starts from the same database state: the previous phase's rows vacuumed and
    // analyzed (as pgbench vacuums before its own runs), so that autovacuum does not wake for them
    // during this one; a checkpoint (so that no checkpoint, timed or forced by WAL volume, lands
    // inside a phase, and each pays the same full-page writes after it); no autovacuum worker busy.
    async function quiesce(): Promise<void> {
      await db.raw("VACUUM (ANALYZE)");
      try {
        await db.raw("CHECKPOINT");
      } catch (err) {
        process.stderr.write(`bench: CHECKPOINT refused (${err instanceof Error ? err.message : String(err)}); phases may overlap a checkpoint\n`);
      }
      for (let i = 0; i < 100; i++) {
        const busy = ((await db.raw("SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' AND datname = ?", [dbName])).rows as Array<{ n: number }>)[0]!.n;
        if (busy === 0) return;
        await new Promise((r) => setTimeout(r, 100));
      }
    }

    // HTTP load from a thread of its own (see http-load.worker.ts): the server's event loop serves only.
    // One run of it: `durationS` measured after `warmupS` not counted.
    async function loadRun(phase: LoadSpec["phase"], durationS: number, warmupS: number, seqFrom: number) {
      await quiesce();
      const spec: LoadSpec = { bases, phase, tokens, members, concurrency: CONCURRENCY, durationS, warmupS, seqFrom };
      // A TypeScript worker: register tsx's loader in the thread, then load the file.
      const file = new URL("./http-load.worker.ts", import.meta.url).href;
      const boot = `import("tsx/esm/api").then((m) => { m.register(); return import(${JSON.stringify(file)}); })`;
      const worker = new Worker(boot, { eval: true, workerData: spec });
      // The CPU is counted from the end of the warm-up, when the worker says so (nothing heavier: a
      // query here would run beside the measured load).
      let measuring: Promise<Awaited<ReturnType<typeof cpuSnapshot>>> | undefined;
      let machine0: MachineCpu | undefined;
      let machine1: MachineCpu | undefined;
      const r = await new Promise<LoadResult>((resolve, reject) => {
        worker.on("message", (m: LoadResult | "measuring") => {
          if (m === "measuring") {
            machine0 = machineCpu();
            measuring = cpuSnapshot();
          } else {
            machine1 = machineCpu();
            resolve(m);
          }
        });
        worker.once("error", reject);
      });
      const cpu0 = await measuring!;
      // PostgreSQL publishes its counters at most once a second: wait for this run's.
      await new Promise((r) => setTimeout(r, 1_100));
      const cpu = cpuSince(cpu0, await cpuSnapshot());
      await worker.terminate();
      for (const [status, text] of Object.entries(r.firstErrors)) process.stderr.write(`${phase}: first ${status}: ${text}\n`);
      if (TAIL) {
        // When the slow answers were sent: counts of answers over 40 ms per 250 ms of the run, and the slowest.
        const buckets = new Map<number, number>();
        for (const [at] of r.slow) buckets.set(Math.floor(at / 250), (buckets.get(Math.floor(at / 250)) ?? 0) + 1);
        const worst = [...r.slow].sort((a, b) => b[1] - a[1]).slice(0, 8);
        process.stderr.write(`${phase}: ${r.latencies.length} answers, ${r.slow.length} over 40 ms; per 250 ms: ${[...buckets].map(([b, n]) => `${b * 0.25}s:${n}`).join(" ")}; slowest (sent at ms, took ms): ${JSON.stringify(worst)}; the load generator's own event-loop delay p99 ${r.loopDelay[0].toFixed(1)} ms, max ${r.loopDelay[1].toFixed(1)} ms\n`);
      }
      return { r, cpu, machine: machineSince(machine0, machine1) };
    }
    /** A phase's figures from its runs: rates over the measured seconds, percentiles over every latency. */
    function summarize(name: string, runs: Array<Awaited<ReturnType<typeof loadRun>>>) {
      const lat = runs.flatMap(({ r }) => r.latencies).sort((a, b) => a - b);
      const statuses: Record<number, number> = {};
      for (const { r } of runs) for (const [st, n] of Object.entries(r.statuses)) statuses[Number(st)] = (statuses[Number(st)] ?? 0) + n;
      const seconds = runs.reduce((s, { r }) => s + r.seconds, 0);
      const cpu = runs.reduce<CpuSplit>((s, { cpu: c }) => ({ api: s.api + c.api, pg: s.pg + c.pg, load: s.load + c.load, xacts: s.xacts + c.xacts }), { api: 0, pg: 0, load: 0, xacts: 0 });
      // Status 0: no answer (the connection failed or closed first), not a success.
      const ok = Object.entries(statuses).filter(([st]) => Number(st) >= 200 && Number(st) < 300).reduce((n, [, k]) => n + k, 0);
      return { name, perSec: ok / seconds, p50: percentile(lat, 50), p99: percentile(lat, 99), total: lat.length, statuses, cpu, machine: machineSum(runs.map((x) => x.machine)) };
    }
    const httpLoad = async (phase: LoadSpec["phase"]) => summarize(phase, [await loadRun(phase, DURATION_S, WARMUP_S, 0)]);

    // Where the time goes: the HTTP stack alone (no database), and the earn service without HTTP.
    const health = PHASES.has("health") ? await httpLoad("health") : skipped;
    // The service phase has a pool of its own, closed after it: pgbench needs its connections later.
    const svcDb = PHASES.has("service") ? await createDb({ url: benchUrl, poolMax: CONCURRENCY + 2 }) : db;
    const ledger = createLedger({ db: svcDb });
    const idem = createIdempotency({ db: svcDb });
    const earnService = createEarnService({ db: svcDb, clock: systemClock, log, ledger, members: createMemberAccess() });
    let svc = 0;
    if (PHASES.has("service")) await quiesce();
    const service = !PHASES.has("service") ? skipped : await timed("service", async () => {
      const i = ++svc;
      const body = { member_id: members[(i * 104729) % members.length]!, partner_transaction_id: `s-${i}`, amount_minor: 12_345, currency: "EUR" };
      const r = await idem.run({ principal: `partner:${partnerId}`, key: `svc-${i}`, method: "POST", path: "/v1/earn", body }, async (trx) => ({
        status: 201,
        body: await earnService.earn(trx, partnerId, body),
      }));
      return r.status;
    });
    if (svcDb !== db) await svcDb.destroy();

    // The same earn in raw SQL, on plain tables shaped like the ledger's (no triggers, no API).
    await db.raw(`
      CREATE TABLE pgb_accounts (id text PRIMARY KEY, member_id text NOT NULL, balance bigint NOT NULL DEFAULT 0 CHECK (balance >= 0));
      CREATE TABLE pgb_entries (id bigserial PRIMARY KEY, kind text NOT NULL, partner_id text NOT NULL, member_id text NOT NULL, occurred_at timestamptz NOT NULL, posted_at timestamptz NOT NULL DEFAULT now());
      CREATE TABLE pgb_postings (id bigserial PRIMARY KEY, entry_id bigint NOT NULL REFERENCES pgb_entries(id), account_id text NOT NULL, amount bigint NOT NULL);
      CREATE INDEX ON pgb_postings (entry_id);
      CREATE TABLE pgb_lots (id bigserial PRIMARY KEY, member_id text NOT NULL, entry_id bigint NOT NULL REFERENCES pgb_entries(id), earned_at timestamptz NOT NULL, expires_at timestamptz NOT NULL, amount bigint NOT NULL, remaining bigint NOT NULL);
      CREATE INDEX ON pgb_lots (member_id, expires_at) WHERE remaining > 0;
      INSERT INTO pgb_accounts (id, member_id) SELECT 'pts_' || g, 'm' || g FROM generate_series(1, ${MEMBERS}) g;
      INSERT INTO pgb_accounts (id, member_id) VALUES ('issuance', '-');
      ANALYZE pgb_accounts;`);
    const script = path.join(os.tmpdir(), `${dbName}.sql`);
    fs.writeFileSync(
      script,
      `\\set m random(1, ${MEMBERS})
BEGIN;
SELECT balance FROM pgb_accounts WHERE id = 'pts_' || :m FOR UPDATE;
WITH e AS (INSERT INTO pgb_entries (kind, partner_id, member_id, occurred_at) VALUES ('earn', 'p', 'm' || :m, now()) RETURNING id)
  INSERT INTO pgb_postings (entry_id, account_id, amount) SELECT id, 'pts_' || :m, 12 FROM e UNION ALL SELECT id, 'issuance', -12 FROM e;
INSERT INTO pgb_lots (member_id, entry_id, earned_at, expires_at, amount, remaining) VALUES ('m' || :m, currval('pgb_entries_id_seq'), now(), now() + interval '730 days', 12, 12);
UPDATE pgb_accounts SET balance = balance + 12 WHERE id = 'pts_' || :m;
COMMIT;
`,
    );
    /**
     * One pgbench run of `file`: `seconds` measured after `warmupS` not counted. The measured run logs
     * each transaction's latency (`--log`), so that its percentiles sit beside the HTTP earn's.
     */
    const pgbenchRun = async (file: string, seconds: number, warmupS: number) => {
      await quiesce();
      const args = (s: number) => ["-n", "-c", String(CONCURRENCY), "-j", "2", "-T", String(s), "-f", file, benchUrl];
      if (warmupS > 0) await run("pgbench", args(warmupS), { maxBuffer: 10 << 20 });
      const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "pgbench-log-"));
      try {
        const machine0 = machineCpu();
        const out = (await run("pgbench", ["--log", `--log-prefix=${path.join(logDir, "tx")}`, ...args(seconds)], { maxBuffer: 10 << 20 })).stdout;
        // The whole run, its connections' start included: a little more than the transactions' own.
        const machine = machineSince(machine0, machineCpu());
        const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? NaN);
        const n = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? NaN);
        // One line a transaction: client_id transaction_no time_us script_no time_epoch time_us_fraction.
        const latencies = fs
          .readdirSync(logDir)
          .flatMap((f) => fs.readFileSync(path.join(logDir, f), "utf8").split("\n"))
          .filter(Boolean)
          .map((line) => Number(line.split(" ")[2]) / 1000);
        return { tps, n, lat: Number(/latency average = ([\d.]+) ms/.exec(out)?.[1] ?? NaN), latencies, machine };
      } finally {
        fs.rmSync(logDir, { recursive: true, force: true });
      }
    };
    /** The figures of a pgbench phase not run. */
    const noPgbench = { tps: NaN, lat: NaN, p50: NaN, p99: NaN, n: 0, machine: { busyMs: NaN, ctxt: NaN } };
    /** Runs merged: transactions over seconds, the latency weighted by transactions, percentiles over every transaction. */
    const pgbenchSum = (runs: Array<Awaited<ReturnType<typeof pgbenchRun>>>) => {
      const n = runs.reduce((s, r) => s + r.n, 0);
      const lat = runs.flatMap((r) => r.latencies).sort((a, b) => a - b);
      return { tps: n / runs.reduce((s, r) => s + r.n / r.tps, 0), lat: runs.reduce((s, r) => s + r.lat * r.n, 0) / n, p50: percentile(lat, 50), p99: percentile(lat, 99), n, machine: machineSum(runs.map((r) => r.machine)) };
    };

    // HTTP earn and pgbench take turns, ROUNDS times each, about DURATION_S in all for each: this machine's
    // speed drifts by tens of percent over a minute (other tenants), and the ratio should compare
    // the two under the same conditions, not one minute's against the next.
    const roundS = Math.max(1, Math.round(DURATION_S / ROUNDS));
    const earnRuns: Array<Awaited<ReturnType<typeof loadRun>>> = [];
    const pgbenchRuns: Array<Awaited<ReturnType<typeof pgbenchRun>>> = [];
    // Earns per commit (group commit): every event of one transaction carries its transaction id.
    // Counted after the turn, over the events of its measured part (the worker's window), so that
    // the count's scan of the events table never runs beside the measured load.
    const commits = async (r: LoadResult) =>
      (
        (await db.raw("SELECT count(DISTINCT tx_id)::int AS n FROM events WHERE type = 'earn.posted' AND occurred_at >= ? AND occurred_at <= ?", [
          new Date(r.window[0]),
          new Date(r.window[1]),
        ])).rows as Array<{ n: number }>
      )[0]!.n;
    let earnCommits = 0;
    for (let round = 0; round < ROUNDS; round++) {
      // The first turn of each warms up for WARMUP_S; later ones for a second (new connections).
      const warmupS = round === 0 ? WARMUP_S : Math.min(WARMUP_S, 1);
      if (PHASES.has("earn")) {
        const run = await loadRun("earn", roundS, warmupS, round * 10_000_000);
        earnRuns.push(run);
        earnCommits += await commits(run.r);
      }
      if (PHASES.has("pgbench")) pgbenchRuns.push(await pgbenchRun(script, roundS, warmupS));
    }
    const earn = earnRuns.length > 0 ? summarize("earn", earnRuns) : skipped;
    const pg = pgbenchRuns.length > 0 ? pgbenchSum(pgbenchRuns) : noPgbench;
    fs.rmSync(script, { force: true });

    const burn = PHASES.has("burn") ? await httpLoad("burn") : skipped;
    await new Promise<void>((r) => server!.close(() => r()));
    server.closeAllConnections();
    server = undefined;
    await stopChildren();
    await db.destroy();
    db = await createDb({ url: benchUrl, poolMax: 2 });

    // The same earn in raw SQL on the hub's own ledger tables: triggers keep the balance and check
    // the entry at commit, so this row shows what the database-enforced invariants cost.
    await db.raw(`
      CREATE SEQUENCE pgb_seq;
      INSERT INTO ledger_accounts (id, kind, asset, member_id, balance, floor)
        SELECT 'acc_pts_' || m.id, 'member_points', 'PTS', m.id, 0, 0 FROM members m ON CONFLICT DO NOTHING;
      INSERT INTO ledger_accounts (id, kind, asset, partner_id) VALUES ('acc_iss_${partnerId}', 'partner_issuance', 'PTS', '${partnerId}') ON CONFLICT DO NOTHING;`);
    const script2 = path.join(os.tmpdir(), `${dbName}-ledger.sql`);
    fs.writeFileSync(
      script2,
      `\\set m random(0, ${MEMBERS - 1})
BEGIN;
SELECT balance FROM ledger_accounts WHERE id = 'acc_pts_mem_bench' || lpad(:m::text, 6, '0') FOR UPDATE;
WITH e AS (INSERT INTO ledger_entries (id, kind, partner_id, member_id, occurred_at) VALUES ('ent_pgb' || nextval('pgb_seq'), 'earn', '${partnerId}', 'mem_bench' || lpad(:m::text, 6, '0'), now()) RETURNING id, member_id),
     l AS (INSERT INTO ledger_lots (id, member_id, account_id, issuing_partner_id, entry_id, earned_at, expires_at, amount, remaining, funded_by)
           SELECT 'lot_pgb' || currval('pgb_seq'), member_id, 'acc_pts_' || member_id, '${partnerId}', id, now(), now() + interval '730 days', 12, 12, 'partner:${partnerId}' FROM e)
  INSERT INTO ledger_postings (entry_id, account_id, asset, amount)
    SELECT id, 'acc_pts_' || member_id, 'PTS', 12 FROM e UNION ALL SELECT id, 'acc_iss_${partnerId}', 'PTS', -12 FROM e;
COMMIT;
`,
    );
    const onLedger = PHASES.has("pgbench") ? pgbenchSum([await pgbenchRun(script2, DURATION_S, WARMUP_S)]) : noPgbench;
    fs.rmSync(script2, { force: true });

    const f = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : "-");
    const rows = [
      ["what", "per second", "p50 ms", "p99 ms", "requests", "statuses"],
      ["HTTP POST /v1/earn", f(earn.perSec), f(earn.p50), f(earn.p99), String(earn.total), `${JSON.stringify(earn.statuses)} in ${earnCommits} commits`],
      ["HTTP POST /v1/burn", f(burn.perSec), f(burn.p50), f(burn.p99), String(burn.total), JSON.stringify(burn.statuses)],
      ["pgbench raw SQL earn", f(pg.tps), f(pg.p50), f(pg.p99), "-", `avg ${f(pg.lat)} ms`],
      ["(diag) pgbench earn on ledger tables", f(onLedger.tps), f(onLedger.p50), f(onLedger.p99), "-", `avg ${f(onLedger.lat)} ms`],
      ["(diag) earn service, no HTTP", f(service.perSec), f(service.p50), f(service.p99), String(service.total), JSON.stringify(service.statuses)],
      ["(diag) HTTP GET /healthz, no DB", f(health.perSec), f(health.p50), f(health.p99), String(health.total), JSON.stringify(health.statuses)],
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    const out = rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join(" | "));
    process.stdout.write(
      `\nconcurrency ${CONCURRENCY}, ${DURATION_S}s per phase, ${MEMBERS} members, ${os.cpus().length} CPU(s)\n${out[0]}\n${widths.map((w) => "-".repeat(w)).join("-|-")}\n${out.slice(1).join("\n")}\n`,
    );
    // CPU per request by process, to show where a request's time goes on a machine whose cores
    // the API, PostgreSQL and the load generator share (Linux /proc; "-" elsewhere).
    const cpuLine = (r: { name: string; total: number; cpu?: CpuSplit | undefined }) =>
      r.cpu && r.total > 0
        ? `${r.name}: API ${f(r.cpu.api / r.total, 3)}, PostgreSQL ${f(r.cpu.pg / r.total, 3)}, load generator ${f(r.cpu.load / r.total, 3)} (${f(r.cpu.xacts / r.total, 2)} DB transactions per request)`
        : undefined;
    const cpuLines = [earn, burn, health].map(cpuLine).filter(Boolean);
    if (cpuLines.length > 0) process.stdout.write(`CPU ms per request — ${cpuLines.join("; ")}\n`);
    // What the machine paid for an earn each way: the ratio moves with the price of a context switch
    // and a system call, which pgbench pays a round trip a statement and a commit an earn.
    if (earn.total > 0 && pg.n > 0) {
      const per = (m: MachineCpu, n: number) => `${f(m.busyMs / n, 3)} ms of CPU and ${f(m.ctxt / n, 1)} context switches`;
      process.stdout.write(`machine, all processes (/proc/stat) — HTTP earn: ${per(earn.machine, earn.total)} a request; pgbench: ${per(pg.machine, pg.n)} a transaction (its runs' connecting included)\n`);
    }
    const ratio = earn.perSec / pg.tps;
    process.stdout.write(
      `ratio HTTP earn/s ÷ pgbench tps = ${f(ratio, 2)}x (target ≥ 1.00x with p99 ≤ 50 ms: ${ratio >= 1 && earn.p99 <= 50 ? "met" : "NOT met"}; p99 earn ${f(earn.p99)} ms, pgbench ${f(pg.p99)} ms)\n`,
    );
  } finally {
    await stopChildren();
    if (server) server.close();
    await queue.close();
    await db.destroy();
    if (!KEEP_DB) await admin.raw(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    else process.stderr.write(`kept database ${dbName}\n`);
    await admin.destroy();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
