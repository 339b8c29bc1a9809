/**
 * npm run bench:card-events — a bank's daily clearing file of EVENTS card events (100,000 by
 * default) generated, parsed and ingested, then every member's points and cashback checked against
 * what the generator computed on its own. The last line is the figure: events/s.
 *
 * Needs DATABASE_URL (a PostgreSQL server; a fresh database is created on it and dropped after).
 * The file goes through the same parser as POST /v1/bank/clearing-files and the service's
 * `ingestMany`: lanes by member, each applying CHUNK events at a time through the set-based batch
 * path in a transaction of its own. Printed with the figure: the CPU seconds this process and the
 * database's backends spent, and the load average (the machine may be shared).
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run bench:card-events
 *   env: EVENTS (100000), MEMBERS (20000), LANES (4), CHUNK (1000), DUPLICATES (0.02)
 */
import os from "node:os";
import { randomBytes } from "node:crypto";
import { loadConfig } from "../../gateway/src/config/config.ts";
import { createLogger } from "../../gateway/src/infra/logger.ts";
import { systemClock } from "../../gateway/src/infra/clock.ts";
import { createMemoryQueue } from "../../gateway/src/infra/queue/memory.queue.ts";
import { createLedger } from "../../gateway/src/ledger/ledger.service.ts";
import { createBanking } from "../../gateway/src/banking/banking.module.ts";
import { parseClearingCsv } from "../../gateway/src/banking/card-events.parse.ts";
import { moneyAccounts } from "../../gateway/src/banking/money-ledger.ts";
import { benchDatabase, cardToken, cpuMeter, rng, seedBankNetwork } from "./bench-setup.ts";

const url = process.env.DATABASE_URL;
if (!url) {
  process.stderr.write("npm run bench:card-events needs DATABASE_URL=postgres://… (a server it may create a database on)\n");
  process.exit(2);
}
const EVENTS = Number(process.env.EVENTS ?? 100_000);
const MEMBERS = Number(process.env.MEMBERS ?? 20_000);
const LANES = Number(process.env.LANES ?? 4);
const CHUNK = Number(process.env.CHUNK ?? 1000);
const DUPLICATES = Number(process.env.DUPLICATES ?? 0.02);
const MERCHANTS = 20;

async function main() {
  const bench = await benchDatabase(url!, "cards", LANES + 4);
  const { db } = bench;
  const log = createLogger("silent");
  try {
    // Production config requires the portal's session key (the bench serves no page; any key does).
    const config = loadConfig({ NODE_ENV: "production", LOG_LEVEL: "silent", DATABASE_URL: bench.url, PORT: "0", DATA_DIR: os.tmpdir(), PORTAL_SESSION_SECRET: randomBytes(32).toString("hex") });
    const deps = { config, db, queue: createMemoryQueue(log), log, clock: systemClock };
    const ledger = createLedger({ db });
    const banking = createBanking({ ...deps, ledger });

    // The network: a bank, MERCHANTS merchants with one MID each (every other one runs a 3%
    // cashback offer, the rest earn the contract's 1 point per 10.00), MEMBERS members with a card.
    const { bankId, merchants, members } = await seedBankNetwork(db, { merchants: MERCHANTS, members: MEMBERS, cashbackBps: 300 });

    // The file, and what each member should end with (computed here, independently of the hub).
    const rand = rng(42);
    const expectPoints = new Map<string, bigint>();
    const expectCashback = new Map<string, bigint>();
    const lines = ["event_id,type,purchase_id,card_token,amount_minor,currency,mid,mcc,merchant_name,transaction_at"];
    const unique = Math.round(EVENTS * (1 - DUPLICATES));
    const at = new Date(Date.now() - 3_600_000).toISOString();
    for (let i = 0; i < unique; i++) {
      const member = members[Math.floor(rand() * members.length)]!;
      const m = merchants[Math.floor(rand() * merchants.length)]!;
      const amount = 100 + Math.floor(rand() * 20_000);
      lines.push(`ev${i},clearing,pu${i},${cardToken(member)},${amount},EUR,${m.mid},5411,Merchant,${at}`);
      if (m.cashbackBps) expectCashback.set(member, (expectCashback.get(member) ?? 0n) + (BigInt(amount) * BigInt(m.cashbackBps)) / 10000n);
      else expectPoints.set(member, (expectPoints.get(member) ?? 0n) + BigInt(amount) / 1000n);
    }
    // A bank resends some lines: duplicates by event id, which must change nothing.
    for (let i = unique; i < EVENTS; i++) lines.push(lines[1 + Math.floor(rand() * unique)]!);
    const csv = `${lines.join("\n")}\n`;
    process.stdout.write(`file: ${EVENTS} events (${EVENTS - unique} duplicates), ${(csv.length / 1e6).toFixed(1)} MB, ${MEMBERS} members, ${MERCHANTS} merchants; lanes ${LANES}, chunk ${CHUNK}\n`);

    const meter = await cpuMeter(db);
    const t0 = performance.now();
    const parsed = parseClearingCsv(csv);
    if ("error" in parsed) throw new Error(parsed.error);
    const t1 = performance.now();
    const result = await banking.transactions.ingestMany(bankId, parsed.events, { concurrency: LANES, chunkSize: CHUNK });
    const seconds = (performance.now() - t0) / 1000;
    const cpu = await meter.stop();
    process.stdout.write(`ingested: ${result.accepted} accepted, ${result.duplicates} duplicates, ${result.rejected.length} rejected in ${seconds.toFixed(1)} s (parse ${((t1 - t0) / 1000).toFixed(1)} s)\n`);
    process.stdout.write(
      `cpu: node ${cpu.node.toFixed(1)} s + postgres backends ${cpu.postgres.toFixed(1)} s = ${Math.round(EVENTS / (cpu.node + cpu.postgres))} events per cpu-second; load average ${cpu.load} on ${os.cpus().length} cores\n`,
    );

    // Final balances: every member's points and cashback as the generator says; the ledger's invariants hold.
    const wrong: string[] = [];
    const points = new Map<string, bigint>(
      ((await db("ledger_accounts").where({ kind: "member_points" }).select("member_id", "balance")) as Array<{ member_id: string; balance: bigint }>).map((r) => [r.member_id, BigInt(r.balance)]),
    );
    const cash = new Map<string, bigint>(
      ((await db("ledger_accounts").where({ kind: "member_cashback", asset: "EUR" }).select("id", "balance")) as Array<{ id: string; balance: bigint }>).map((r) => [r.id, BigInt(r.balance)]),
    );
    for (const member of members) {
      const p = points.get(member) ?? 0n;
      const c = cash.get(moneyAccounts.cashback(member, "EUR")) ?? 0n;
      if (p !== (expectPoints.get(member) ?? 0n)) wrong.push(`${member}: ${p} points, expected ${expectPoints.get(member) ?? 0n}`);
      if (c !== (expectCashback.get(member) ?? 0n)) wrong.push(`${member}: ${c} cashback, expected ${expectCashback.get(member) ?? 0n}`);
    }
    const problems = await ledger.checkInvariants(db);
    const totalPoints = [...expectPoints.values()].reduce((a, b) => a + b, 0n);
    const totalCash = [...expectCashback.values()].reduce((a, b) => a + b, 0n);
    process.stdout.write(`balances: ${members.length - new Set(wrong.map((w) => w.split(":")[0])).size}/${members.length} members exact; ${totalPoints} points and ${totalCash} cents of cashback in all; ledger invariants: ${problems.length === 0 ? "hold" : problems.slice(0, 3).join("; ")}\n`);
    if (wrong.length > 0 || problems.length > 0 || result.accepted !== unique || result.duplicates !== EVENTS - unique) {
      process.stdout.write(`${wrong.slice(0, 5).join("\n")}\nFAILED: the final balances do not match\n`);
      process.exitCode = 1;
    }
    process.stdout.write(`${Math.round(EVENTS / seconds)} events/s\n`);
  } finally {
    await bench.drop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
