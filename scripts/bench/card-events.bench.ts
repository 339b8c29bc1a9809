/**
 * npm run bench:card-events — a bank's daily clearing file of EVENTS card events (100,000 by
 * default) generated, parsed and ingested, then every member's points and cashback checked against
 * what the generator computed on its own. The last line is the figure: events/s.
 *
 * Needs DATABASE_URL (a PostgreSQL server; a fresh database is created on it and dropped after).
 * The file goes through the same parser as POST /v1/bank/clearing-files and the service's
 * `ingestMany` (lanes by member, a transaction per chunk); the HTTP route itself applies a file in
 * one transaction.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run bench:card-events
 *   env: EVENTS (100000), MEMBERS (20000), LANES (8), CHUNK (500), DUPLICATES (0.02)
 */
import os from "node:os";
import { createDb } from "../../gateway/src/infra/db.ts";
import { migrateLatest } from "../../gateway/src/infra/migrate.ts";
import { loadConfig } from "../../gateway/src/config/config.ts";
import { createLogger } from "../../gateway/src/infra/logger.ts";
import { systemClock } from "../../gateway/src/infra/clock.ts";
import { createMemoryQueue } from "../../gateway/src/infra/queue/memory.queue.ts";
import { newId } from "../../gateway/src/infra/ids.ts";
import { createLedger } from "../../gateway/src/ledger/ledger.service.ts";
import { createBanking } from "../../gateway/src/banking/banking.module.ts";
import { parseClearingCsv } from "../../gateway/src/banking/card-events.parse.ts";
import { moneyAccounts } from "../../gateway/src/banking/money-ledger.ts";

const url = process.env.DATABASE_URL;
if (!url) {
  process.stderr.write("npm run bench:card-events needs DATABASE_URL=postgres://… (a server it may create a database on)\n");
  process.exit(2);
}
const EVENTS = Number(process.env.EVENTS ?? 100_000);
const MEMBERS = Number(process.env.MEMBERS ?? 20_000);
const LANES = Number(process.env.LANES ?? 8);
const CHUNK = Number(process.env.CHUNK ?? 500);
const DUPLICATES = Number(process.env.DUPLICATES ?? 0.02);
const MERCHANTS = 20;

/** A small deterministic generator: the same file every run. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function main() {
  const dbName = `hub_bench_cards_${Date.now().toString(36)}`;
  const admin = await createDb({ url, poolMax: 1 });
  await admin.raw(`CREATE DATABASE ${dbName}`);
  const u = new URL(url!);
  u.pathname = `/${dbName}`;
  const db = await createDb({ url: u.toString(), poolMax: LANES + 4 });
  const log = createLogger("silent");
  try {
    await migrateLatest(db);
    const config = loadConfig({ NODE_ENV: "production", LOG_LEVEL: "silent", DATABASE_URL: u.toString(), PORT: "0", DATA_DIR: os.tmpdir() });
    const deps = { config, db, queue: createMemoryQueue(log), log, clock: systemClock };
    const ledger = createLedger({ db });
    const banking = createBanking({ ...deps, ledger });

    // The network: a bank, MERCHANTS merchants with one MID each (every other one runs a 3%
    // cashback offer, the rest earn the contract's 1 point per 10.00), MEMBERS members with a card.
    const bankId = newId("ptn");
    await db("partners").insert({ id: bankId, name: "Bench Bank", kind: "bank", sector: "bank", status: "active" });
    const merchants: Array<{ id: string; mid: string; cashbackBps: number | null }> = [];
    for (let m = 0; m < MERCHANTS; m++) {
      const id = newId("ptn");
      await db("partners").insert({ id, name: `Merchant ${m}`, kind: "merchant", sector: `s${m}`, status: "active", mccs: JSON.stringify(["5411"]) });
      await db("contract_versions").insert({
        id: newId("ctr"),
        partner_id: id,
        version: 1,
        effective_from: new Date("2020-01-01T00:00:00Z"),
        currency: "EUR",
        issuance_price_micros: "10000",
        redemption_price_micros: "8000",
        earn_points: "1",
        earn_per_minor: "1000",
        cashback_funding_bps: 10000,
      });
      const mid = `BENCHMID${m}`;
      await db("partner_locations").insert({ id: newId("loc"), partner_id: id, name: `Shop ${m}`, mid, mcc: "5411" });
      const cashbackBps = m % 2 === 0 ? 300 : null;
      if (cashbackBps) {
        await db("card_offers").insert({ id: newId("off"), partner_id: id, name: "3%", reward_type: "cashback", cashback_bps: cashbackBps, currency: "EUR", starts_at: new Date("2020-01-01T00:00:00Z"), created_at: new Date() });
      }
      merchants.push({ id, mid, cashbackBps });
    }
    const members: string[] = [];
    for (let i = 0; i < MEMBERS; i += 1000) {
      const batch = Array.from({ length: Math.min(1000, MEMBERS - i) }, () => newId("mem"));
      await db("members").insert(batch.map((id) => ({ id, enrolled_by_partner_id: bankId })));
      await db("member_partner_links").insert(batch.map((id) => ({ member_id: id, partner_id: bankId, relation: "enrolled" })));
      await db("payment_cards").insert(batch.map((id) => ({ id: newId("pmc"), bank_partner_id: bankId, member_id: id, card_token: `tok_${id}`, bin: "411111", last_four: "1111", expiry_month: "2030-01", linked_at: new Date() })));
      members.push(...batch);
    }

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
      lines.push(`ev${i},clearing,pu${i},tok_${member},${amount},EUR,${m.mid},5411,Merchant,${at}`);
      if (m.cashbackBps) expectCashback.set(member, (expectCashback.get(member) ?? 0n) + (BigInt(amount) * BigInt(m.cashbackBps)) / 10000n);
      else expectPoints.set(member, (expectPoints.get(member) ?? 0n) + BigInt(amount) / 1000n);
    }
    // A bank resends some lines: duplicates by event id, which must change nothing.
    for (let i = unique; i < EVENTS; i++) lines.push(lines[1 + Math.floor(rand() * unique)]!);
    const csv = `${lines.join("\n")}\n`;
    process.stdout.write(`file: ${EVENTS} events (${EVENTS - unique} duplicates), ${(csv.length / 1e6).toFixed(1)} MB, ${MEMBERS} members, ${MERCHANTS} merchants; lanes ${LANES}, chunk ${CHUNK}\n`);

    const t0 = performance.now();
    const parsed = parseClearingCsv(csv);
    if ("error" in parsed) throw new Error(parsed.error);
    const result = await banking.transactions.ingestMany(bankId, parsed.events, { concurrency: LANES, chunkSize: CHUNK });
    const seconds = (performance.now() - t0) / 1000;
    process.stdout.write(`ingested: ${result.accepted} accepted, ${result.duplicates} duplicates, ${result.rejected.length} rejected in ${seconds.toFixed(1)} s\n`);

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
    await db.destroy();
    await admin.raw(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.destroy();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
