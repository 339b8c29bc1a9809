/**
 * What the card-events bench needs around the code it measures: a fresh database on the server of
 * DATABASE_URL (migrated, dropped afterwards), a bank network seeded through the test factories,
 * and the CPU time spent — by this process and by the PostgreSQL backends serving it — so a figure
 * taken on a busy shared machine can be read next to the load it was taken under.
 */
import fs from "node:fs";
import os from "node:os";
import { createDb, type Db } from "../../gateway/src/infra/db.ts";
import { migrateLatest } from "../../gateway/src/infra/migrate.ts";
import { newId } from "../../gateway/src/infra/ids.ts";
import { createContract, createPartner } from "../../test/factories/network.ts";

/** A database of its own on the server at `url`; `drop()` removes it (connections included). */
export async function benchDatabase(url: string, name: string, poolMax: number): Promise<{ db: Db; url: string; drop: () => Promise<void> }> {
  const dbName = `hub_bench_${name}_${Date.now().toString(36)}`;
  const admin = await createDb({ url, poolMax: 1 });
  await admin.raw(`CREATE DATABASE ${dbName}`);
  const u = new URL(url);
  u.pathname = `/${dbName}`;
  const db = await createDb({ url: u.toString(), poolMax });
  await migrateLatest(db);
  return {
    db,
    url: u.toString(),
    drop: async () => {
      await db.destroy();
      await admin.raw(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      await admin.destroy();
    },
  };
}

/**
 * The earn benches' network: one active merchant with a contract in force since 2020 (1 point per
 * 1,000 minor units of EUR) and `count` members it enrolled, `mem_bench000000` onwards.
 */
export async function seedEarnNetwork(db: Db, count: number): Promise<{ partnerId: string; members: string[] }> {
  const partnerId = newId("ptn");
  await db("partners").insert({ id: partnerId, name: "Bench Mart", kind: "merchant", sector: "bench", status: "active" });
  await createContract(db, partnerId);
  const members = Array.from({ length: count }, (_, i) => `mem_bench${String(i).padStart(6, "0")}`);
  for (let i = 0; i < members.length; i += 500) {
    const chunk = members.slice(i, i + 500);
    await db("members").insert(chunk.map((id) => ({ id, enrolled_by_partner_id: partnerId })));
    await db("member_partner_links").insert(chunk.map((id) => ({ member_id: id, partner_id: partnerId, relation: "enrolled" })));
  }
  // Fresh statistics for the seeded tables, as `pgbench -i` leaves its own.
  await db.raw("ANALYZE");
  return { partnerId, members };
}

export interface BankNetwork {
  bankId: string;
  merchants: Array<{ id: string; mid: string; cashbackBps: number | null }>;
  /** Member ids; member i holds the card token `cardToken(members[i])`. */
  members: string[];
}

export const cardToken = (memberId: string) => `tok_${memberId}`;

/**
 * A bank, `merchants` merchants (each with the factories' EUR contract — 1 point per 10.00 — one
 * location with its MID, and every other one a `cashbackBps` cashback offer), and `members`
 * members enrolled by the bank, each with one linked card. Members and cards go in by the thousand.
 */
export async function seedBankNetwork(db: Db, opts: { merchants: number; members: number; cashbackBps: number }): Promise<BankNetwork> {
  const bank = await createPartner(db, { name: "Bench Bank", kind: "bank", sector: "bank" });
  const merchants: BankNetwork["merchants"] = [];
  for (let m = 0; m < opts.merchants; m++) {
    const p = await createPartner(db, { name: `Merchant ${m}`, kind: "merchant", sector: `s${m}` });
    await db("partners").where({ id: p.id }).update({ mccs: JSON.stringify(["5411"]) });
    await createContract(db, p.id);
    const mid = `BENCHMID${m}`;
    await db("partner_locations").insert({ id: newId("loc"), partner_id: p.id, name: `Shop ${m}`, mid, mcc: "5411" });
    const cashbackBps = m % 2 === 0 ? opts.cashbackBps : null;
    if (cashbackBps) {
      await db("card_offers").insert({ id: newId("off"), partner_id: p.id, name: `${cashbackBps / 100}%`, reward_type: "cashback", cashback_bps: cashbackBps, currency: "EUR", starts_at: new Date("2020-01-01T00:00:00Z"), created_at: new Date() });
    }
    merchants.push({ id: p.id, mid, cashbackBps });
  }
  const members: string[] = [];
  for (let i = 0; i < opts.members; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, opts.members - i) }, () => newId("mem"));
    await db("members").insert(batch.map((id) => ({ id, enrolled_by_partner_id: bank.id })));
    await db("member_partner_links").insert(batch.map((id) => ({ member_id: id, partner_id: bank.id, relation: "enrolled" })));
    await db("payment_cards").insert(
      batch.map((id) => ({ id: newId("pmc"), bank_partner_id: bank.id, member_id: id, card_token: cardToken(id), bin: "411111", last_four: "1111", expiry_month: "2030-01", linked_at: new Date() })),
    );
    members.push(...batch);
  }
  // Statistics, as autovacuum keeps them on a database in service: without them the planner takes
  // the 20,000 cards just inserted for an empty table.
  await db.raw("ANALYZE");
  return { bankId: bank.id, merchants, members };
}

/** A small deterministic generator: the same file every run. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TICK = 100; // clock ticks per second in /proc/<pid>/stat (CLK_TCK on Linux)

/** CPU seconds (user + system) of the PostgreSQL backends connected to this database, when they run on this host. */
async function backendCpu(db: Db): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  const pids: Array<{ pid: number }> = (await db.raw("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")).rows;
  for (const { pid } of pids) {
    try {
      const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      out.set(pid, (Number(f[11]) + Number(f[12])) / TICK);
    } catch {
      // Another host, or the backend ended: not counted.
    }
  }
  return out;
}

/**
 * Starts counting CPU: `stop()` answers the seconds this process and the database's backends spent
 * since, and the load average — the figures to print next to a throughput on a shared machine.
 */
export async function cpuMeter(db: Db): Promise<{ stop: () => Promise<{ node: number; postgres: number; load: string }> }> {
  const node0 = process.cpuUsage();
  const pg0 = await backendCpu(db);
  return {
    async stop() {
      const n = process.cpuUsage(node0);
      const pg1 = await backendCpu(db);
      let postgres = 0;
      for (const [pid, s] of pg1) postgres += s - (pg0.get(pid) ?? 0);
      return { node: (n.user + n.system) / 1e6, postgres, load: os.loadavg().map((x) => x.toFixed(2)).join(", ") };
    },
  };
}
