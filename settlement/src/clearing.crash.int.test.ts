import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestDb, fixedClock, testConfig } from "../../test/harness.ts";
import { seedMay, seedNetwork } from "../../test/factories/settlement.ts";
import { createDb, pgliteOf, type Db } from "../../gateway/src/infra/db.ts";
import { createLogger } from "../../gateway/src/infra/logger.ts";
import { createClearingService, type StepPoint } from "./clearing.service.ts";
import { createStatementsService } from "./statements.service.ts";
import { createDisputesService } from "./disputes.service.ts";
import { registerSettlementJobs } from "./settlement.jobs.ts";
import { createMemoryQueue } from "../../gateway/src/infra/queue/memory.queue.ts";
import { until } from "../../test/webhook-receiver.ts";

/**
 * A crash at every step boundary of a run — inside each step's transaction just before COMMIT, and
 * just after it — then a restarted process runs the month again. Each run starts from the same
 * database (a copy of one seeded snapshot), so the statements must come out byte for byte as a run
 * that never crashed.
 */

const clock = fixedClock("2026-04-01T00:00:00Z");
const log = createLogger("silent");
let clone: () => Promise<Db>;
const opened: Db[] = [];
let cleanup: () => Promise<void> = async () => {};

async function snapshotOf(db: Db): Promise<{ clone: () => Promise<Db>; cleanup: () => Promise<void> }> {
  const lite = pgliteOf(db);
  if (lite) {
    const dump = await lite.dumpDataDir("gzip");
    await db.destroy();
    return { clone: () => createDb({ loadDataDir: dump }), cleanup: async () => {} };
  }
  const tpl = inject("dbTemplate");
  if (tpl.kind !== "postgres") throw new Error("unreachable");
  const url = new URL((db.client.config as { connection: { connectionString: string } }).connection.connectionString);
  const base = url.pathname.slice(1);
  await db.destroy();
  const admin = await createDb({ url: tpl.url, poolMax: 1 });
  let n = 0;
  const made: string[] = [];
  return {
    clone: async () => {
      const name = `${base}_c${++n}`;
      await admin.raw(`CREATE DATABASE ${name} TEMPLATE ${base}`);
      made.push(name);
      const u = new URL(url);
      u.pathname = `/${name}`;
      return createDb({ url: u.toString(), poolMax: 5 });
    },
    cleanup: async () => {
      for (const name of [...made, base]) await admin.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.destroy();
    },
  };
}

interface Outcome {
  status: string;
  statements: Array<{ id: string; status: string; net: string; content: string | null; csvSha: string | null; csv: string; pdfSha: string | null; pdf: string | null; lines: unknown[] }>;
  report: unknown;
}

async function outcome(db: Db): Promise<Outcome> {
  const clearing = createClearingService({ db, clock, log });
  const { run, statements } = await clearing.getRun("run_2026-05");
  const reader = createStatementsService({ db });
  const out: Outcome = { status: run.status, statements: [], report: typeof run.report === "string" ? JSON.parse(run.report) : run.report };
  for (const s of statements) {
    let csv = "";
    await reader.renderCsv(s.id, (c) => {
      csv += c;
    });
    const lines = await db("settlement_lines").where({ statement_id: s.id }).orderBy("line_no").select("*");
    const pdf: { bytes: Buffer } | undefined = await db("settlement_statement_pdfs").where({ statement_id: s.id }).first("bytes");
    out.statements.push({
      id: s.id,
      status: s.status,
      net: String(s.net_amount_minor),
      content: s.content_sha256,
      csvSha: s.csv_sha256,
      csv,
      pdfSha: s.pdf_sha256 ?? null,
      pdf: pdf ? Buffer.from(pdf.bytes).toString("base64") : null,
      lines: lines.map((l: Record<string, unknown>) => JSON.stringify(l, (_k, v) => (typeof v === "bigint" ? v.toString() : v))),
    });
  }
  return out;
}

async function freshRun(db: Db, onStep?: (at: StepPoint) => void | Promise<void>, concurrency = 1) {
  clock.set("2026-06-01T01:00:00Z");
  const clearing = createClearingService({ db, clock, log, ...(onStep ? { hooks: { onStep } } : {}) });
  const { run } = await clearing.startRun("2026-05");
  return clearing.runToEnd(run.id, { concurrency });
}

let baseline: Outcome;

beforeAll(async () => {
  const db = await createTestDb();
  const t = await seedNetwork(db, clock);
  clock.set("2026-05-01T01:00:00Z");
  const april = createClearingService({ db, clock, log });
  await april.runToEnd((await april.startRun("2026-04")).run.id);
  // An accepted dispute of April, booked into May: the claim of the adjustment is crashed too.
  clock.set("2026-05-04T09:00:00Z");
  const disputes = createDisputesService({ db, clock });
  const aprilA = `stm_202604_${t.partners.A}`;
  const dispute = await db.transaction((trx) => disputes.open(trx, t.partners.A, "cli_test", aprilA, { line_no: 1, reason: "cancelled basket", amount_claimed_minor: 129 }));
  await db.transaction((trx) => disputes.resolve(trx, dispute.id, "cli_ops", { outcome: "accepted", note: "checked" }));
  await seedMay(db, clock, t);
  const snap = await snapshotOf(db);
  clone = snap.clone;
  cleanup = snap.cleanup;
  const first = await clone();
  opened.push(first);
  expect((await freshRun(first)).status).toBe("closed");
  baseline = await outcome(first);
});

afterAll(async () => {
  for (const db of opened) await db.destroy();
  await cleanup();
});

const STATEMENT_STEPS = ["collect", "price", "verify", "render"];
const RUN_STEPS = ["statements", "clearing", "network", "close"];
const points: Array<Pick<StepPoint, "scope" | "step" | "phase">> = [
  ...STATEMENT_STEPS.flatMap((step) => (["before-commit", "after-commit"] as const).map((phase) => ({ scope: "statement" as const, step, phase }))),
  ...RUN_STEPS.flatMap((step) => (["before-commit", "after-commit"] as const).map((phase) => ({ scope: "run" as const, step, phase }))),
];

describe("a run crashed at any step, then run again", () => {
  it("the baseline is a closed, balanced month with three statements", () => {
    expect(baseline.status).toBe("closed");
    expect(baseline.statements).toHaveLength(3);
    expect(baseline.statements.every((s) => s.csv.length > 0 && s.content !== null && s.pdf !== null && s.pdfSha !== null)).toBe(true);
    expect(baseline.statements.flatMap((s) => s.lines).filter((l) => String(l).includes('"line_group":"adjustment"'))).toHaveLength(1);
  });

  for (const p of points) {
    it(`gives byte-identical statements after a crash ${p.phase} of ${p.scope} step ${p.step}`, async () => {
      const db = await clone();
      opened.push(db);
      let crashed = false;
      await expect(
        freshRun(db, (at) => {
          // The second statement of the run (by partner id), so one statement is done before the crash.
          if (!crashed && at.scope === p.scope && at.step === p.step && at.phase === p.phase && (p.scope === "run" || at.id === baseline.statements[1]!.id)) {
            crashed = true;
            throw new Error(`crash ${p.phase} ${p.step}`);
          }
        }),
      ).rejects.toThrow(/crash/);
      expect(crashed).toBe(true);
      // A new process: same service, no fault; the same month started again.
      const run = await freshRun(db);
      expect(run.status).toBe("closed");
      expect(await outcome(db)).toEqual(baseline);
    });
  }

  // Two lanes: the statements are collected in two groups at once (the first and third statement,
  // the second alone); a crash in one group's collect leaves the other's committed or not.
  for (const phase of ["before-commit", "after-commit"] as const) {
    it(`gives byte-identical statements after a crash ${phase} of a collect in one of two lanes`, async () => {
      const db = await clone();
      opened.push(db);
      let crashed = false;
      await expect(
        freshRun(
          db,
          (at) => {
            if (!crashed && at.scope === "statement" && at.step === "collect" && at.phase === phase && at.id === baseline.statements[2]!.id) {
              crashed = true;
              throw new Error(`crash ${phase} collect`);
            }
          },
          2,
        ),
      ).rejects.toThrow(/crash/);
      expect(crashed).toBe(true);
      const run = await freshRun(db, undefined, 2);
      expect(run.status).toBe("closed");
      expect(await outcome(db)).toEqual(baseline);
    });
  }

  it("starting a running month again re-enqueues what is left (jobs lost with a worker)", async () => {
    const db = await clone();
    opened.push(db);
    clock.set("2026-06-01T01:00:00Z");
    const clearing = createClearingService({ db, clock, log });
    const { run } = await clearing.startRun("2026-05");
    await clearing.advanceRun(run.id);
    // The clear jobs were relayed to a queue that died: the statements wait at collect.
    await db("outbox").whereNull("relayed_at").update({ relayed_at: db.fn.now() });
    await clearing.clearStatement(baseline.statements[0]!.id);
    clock.set("2026-06-01T02:00:00Z");
    const again = await clearing.startRun("2026-05");
    expect(again).toMatchObject({ created: false, run: { status: "running" } });
    const jobs: Array<{ job_id: string }> = await db("outbox").whereNull("relayed_at").andWhere("job_id", "like", "%-resume:%").orderBy("job_id").select("job_id");
    const stamp = new Date("2026-06-01T02:00:00Z").getTime();
    expect(jobs.map((j) => j.job_id)).toEqual([
      ...baseline.statements.slice(1).map((s) => `clear-resume:${s.id.slice("stm_202605_".length)}:2026-05.${stamp}`),
      `settle-resume:2026-05.0:${stamp}`,
    ]);
    for (const s of baseline.statements) await clearing.clearStatement(s.id);
    expect((await clearing.advanceRun(run.id)).status).toBe("closed");
    expect(await outcome(db)).toEqual(baseline);
  });

  it("two workers running the same month at once do it once", async () => {
    const db = await clone();
    opened.push(db);
    clock.set("2026-06-01T01:00:00Z");
    const a = createClearingService({ db, clock, log });
    const b = createClearingService({ db, clock, log });
    const { run } = await a.startRun("2026-05");
    await b.startRun("2026-05");
    await Promise.all([a.runToEnd(run.id), b.runToEnd(run.id)]);
    expect(await outcome(db)).toEqual(baseline);
    expect(Number((await db("events").where({ type: "statement.ready" }).count("* as n").first())?.n)).toBe(6);
  });

  it("the hub's workers clear the month in SETTLEMENT_CLEAR_LANES lanes, with the same bytes", async () => {
    const db = await clone();
    opened.push(db);
    clock.set("2026-06-01T01:00:00Z");
    const clearing = createClearingService({ db, clock, log });
    const queue = createMemoryQueue(log);
    registerSettlementJobs({ queue, log, config: testConfig({ SETTLEMENT_CLEAR_LANES: "2" }) }, clearing);
    // The month is collected in two groups (the first and third statement, the second), one
    // transaction each, as two lanes of one worker take the run's clear jobs.
    const collects = new Set<unknown>();
    const watched = createClearingService({
      db,
      clock,
      log,
      hooks: {
        onStep: (at) => {
          if (at.scope === "statement" && at.step === "collect" && at.phase === "before-commit") collects.add(at.trx);
        },
      },
    });
    const lanesQueue = createMemoryQueue(log);
    registerSettlementJobs({ queue: lanesQueue, log, config: testConfig({ SETTLEMENT_CLEAR_LANES: "2" }) }, watched);
    const { run } = await clearing.startRun("2026-05");
    await clearing.advanceRun(run.id);
    for (const s of baseline.statements) await lanesQueue.add("settlement.clear", { statementId: s.id }, { jobId: `clear:${s.id}` });
    // The in-process queue starts each job on a later turn: wait for the outcome, not the queue.
    await until(async () => (await clearing.getRun(run.id)).statements.every((st) => st.step === "ready") || undefined, { what: "every statement cleared" });
    expect(collects.size).toBe(2);
    await queue.add("settlement.run", { runId: run.id }, { jobId: "settle:test" });
    await until(async () => (await clearing.getRun(run.id)).run.status === "closed" || undefined, { what: "the run closed" });
    expect(await outcome(db)).toEqual(baseline);
    await queue.close();
    await lanesQueue.close();
  });

  it("clearing the partners' statements in parallel lanes gives the same bytes", async () => {
    const db = await clone();
    opened.push(db);
    clock.set("2026-06-01T01:00:00Z");
    const clearing = createClearingService({ db, clock, log });
    const { run } = await clearing.startRun("2026-05");
    expect((await clearing.runToEnd(run.id, { concurrency: 3 })).status).toBe("closed");
    expect(await outcome(db)).toEqual(baseline);
  });
});
