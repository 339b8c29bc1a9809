import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { json } from "../../../test/http.ts";
import { createContract, createMember } from "../../../test/factories/network.ts";
import { ledgerScenario } from "../../../test/factories/ledger.ts";
import { createLogger } from "../infra/logger.ts";
import { createLedger } from "../ledger/ledger.service.ts";
import { createIdempotency, type Idempotency } from "../idempotency/idempotency.service.ts";
import type { BatcherOptions } from "../infra/batcher.ts";
import { createMemberAccess } from "../members/member-access.ts";
import { createEarnService } from "./earn.service.ts";
import { createEarnBatch } from "./earn.batch.ts";
import { baseRateComputation, baseRateRules, type EarnRules } from "./earn.rules.ts";

// A wide batching window, so that calls sent together are written together on any machine.
let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub({ config: { EARN_BATCH_MAX_WAIT_MS: "40" } });
});
afterAll(async () => {
  expect(await createLedger({ db: hub.db }).checkInvariants()).toEqual([]);
  await hub.close();
});

const earnBody = (memberId: string, amount: number, txn: string, currency = "EUR") => ({ member_id: memberId, partner_transaction_id: txn, amount_minor: amount, currency });

/** A batch of its own on the hub's database: the base rate's rules and the real idempotency layer unless told otherwise. */
function batchOf(options: Partial<BatcherOptions>, over: { rules?: EarnRules; idempotency?: Idempotency } = {}) {
  const db = hub.db;
  const log = createLogger("silent");
  const earn = createEarnService({ db, clock: hub.clock, log, ledger: createLedger({ db }), members: createMemberAccess() });
  return createEarnBatch({ db, clock: hub.clock, log, rules: over.rules ?? baseRateRules, earn, idempotency: over.idempotency ?? createIdempotency({ db }), options });
}

/** A partner's earn call as the route hands it to the batch, under Idempotency-Key `key`. */
const earnCall = (partnerId: string, key: string, input: ReturnType<typeof earnBody> & { occurred_at?: string }) => ({
  partnerId,
  input,
  request: { principal: `partner:${partnerId}`, key, method: "POST", path: "/v1/earn", body: input },
});

/** Rules whose condition fails in the database: the batch's whole write fails. */
const brokenRules: EarnRules = { ...baseRateRules, contractOnly: { whenSql: () => "(1 / 0 = 1)", compute: baseRateComputation } };

/** How many transactions committed the earn.posted events of these transactions. */
async function commitsOf(transactionIds: string[]): Promise<number> {
  const rows = (await hub.db.raw("SELECT count(DISTINCT tx_id)::int AS n FROM events WHERE type = 'earn.posted' AND data->>'transaction_id' = ANY(?)", [transactionIds]))
    .rows as Array<{ n: number }>;
  return rows[0]!.n;
}

describe("the batched earn (group commit)", () => {
  it("writes concurrent earns together, answers each caller with its own result, and replays each", async () => {
    const s = await ledgerScenario(hub);
    const members = [s.member.id, ...(await Promise.all(Array.from({ length: 5 }, () => createMember(hub.db, s.partner.id)))).map((m) => m.id)];
    const calls = members.flatMap((m, i) => [
      { body: earnBody(m, 10_000 + i * 1_000, `a-${i}`), key: `ka-${i}` },
      { body: earnBody(m, 3_000, `b-${i}`), key: `kb-${i}` },
    ]);
    const answers = await Promise.all(calls.map((c) => s.post("/v1/earn", c.body, c.key)));
    const bodies = await Promise.all(answers.map((a) => json(a)));
    expect(answers.map((a) => a.status)).toEqual(calls.map(() => 201));
    bodies.forEach((b, i) => {
      const c = calls[i]!;
      expect(b).toMatchObject({ member_id: c.body.member_id, partner_transaction_id: c.body.partner_transaction_id, points_earned: Math.floor(c.body.amount_minor / 1_000) });
      expect(b.lot.id).toMatch(/^lot_/);
    });
    // Each member's two answers show the balance after one earn, then after both.
    members.forEach((m, i) => {
      const total = 10 + i + 3;
      const seen = bodies.filter((b) => b.member_id === m).map((b) => b.balance.available as number).sort((a, b) => a - b);
      expect(seen[1]).toBe(total);
      expect([10 + i, 3]).toContain(seen[0]);
    });
    for (const [i, m] of members.entries()) expect((await json(await s.get(`/v1/members/${m}/balance`))).available).toBe(10 + i + 3);

    const txns = bodies.map((b) => b.transaction_id as string);
    // Each earn has its purchase row, its ledger entry, one event and its outbox row.
    const counts = (
      await hub.db.raw(
        `SELECT (SELECT count(*)::int FROM point_transactions WHERE id = ANY(:t)) AS txns,
                (SELECT count(*)::int FROM ledger_entries WHERE kind = 'earn' AND ref_type = 'transaction' AND ref_id = ANY(:t)) AS entries,
                (SELECT count(*)::int FROM events e JOIN outbox o ON o.job_id = 'evt:' || e.id WHERE e.data->>'transaction_id' = ANY(:t)) AS events`,
        { t: txns },
      )
    ).rows[0];
    expect(counts).toEqual({ txns: 12, entries: 12, events: 12 });

    // A retry replays the first answer exactly, and writes nothing.
    const again = await Promise.all(calls.slice(0, 4).map((c) => s.post("/v1/earn", c.body, c.key)));
    for (const [i, a] of again.entries()) {
      expect(a.status).toBe(201);
      expect(a.headers.get("idempotent-replayed")).toBe("true");
      expect(await json(a)).toEqual(bodies[i]);
    }
    expect((await json(await s.get(`/v1/members/${members[0]}/balance`))).available).toBe(13);
  });

  it("gives concurrent calls with one key one effect, and refuses the key with another body", async () => {
    const s = await ledgerScenario(hub);
    const body = earnBody(s.member.id, 25_000, "same-1");
    const answers = await Promise.all(Array.from({ length: 8 }, () => s.post("/v1/earn", body, "one-key")));
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(201));
    const bodies = await Promise.all(answers.map((a) => json(a)));
    expect(new Set(bodies.map((b) => b.transaction_id)).size).toBe(1);
    expect(answers.filter((a) => a.headers.get("idempotent-replayed") === "true")).toHaveLength(7);
    expect((await json(await s.get(`/v1/members/${s.member.id}/balance`))).available).toBe(25);

    const mixed = await Promise.all([10_000, 20_000, 30_000, 40_000].map((amount) => s.post("/v1/earn", earnBody(s.member.id, amount, "same-2"), "other-key")));
    const statuses = mixed.map((a) => a.status).sort();
    expect(statuses).toEqual([201, 422, 422, 422]);
    for (const a of mixed.filter((x) => x.status === 422)) expect((await json(a)).code).toBe("idempotency-key-reused");
    const won = await json(mixed.find((a) => a.status === 201)!);
    expect((await json(await s.get(`/v1/members/${s.member.id}/balance`))).available).toBe(25 + won.points_earned);
  });

  it("answers each call of a batch on its own when some of them are refused", async () => {
    const s = await ledgerScenario(hub);
    const other = await ledgerScenario(hub);
    const second = await createMember(hub.db, s.partner.id);
    // A sandbox member linked to this live partner: no API call makes such a link, but if one
    // existed the batch must refuse it as members.resolve does — another network's member is unknown.
    const sandboxMember = await createMember(hub.db, s.partner.id, { sandbox: true });
    expect((await s.post("/v1/earn", earnBody(s.member.id, 1_000, "used"), "first-use")).status).toBe(201);

    const calls = [
      { name: "good", body: earnBody(s.member.id, 40_000, "g-1"), key: "b-good" },
      { name: "good2", body: earnBody(second.id, 70_000, "g-2"), key: "b-good2" },
      { name: "duplicate", body: earnBody(s.member.id, 5_000, "used"), key: "b-dup" },
      { name: "not-linked", body: earnBody(other.member.id, 5_000, "g-3"), key: "b-404" },
      { name: "other-network", body: earnBody(sandboxMember.id, 5_000, "g-6"), key: "b-sandbox" },
      { name: "currency", body: earnBody(second.id, 5_000, "g-4", "USD"), key: "b-usd" },
      { name: "twin-a", body: earnBody(second.id, 2_000, "twin"), key: "b-twin-a" },
      { name: "twin-b", body: earnBody(second.id, 2_000, "twin"), key: "b-twin-b" },
      { name: "no-points", body: earnBody(s.member.id, 500, "g-5"), key: "b-zero" },
    ];
    const answers = await Promise.all(calls.map((c) => s.post("/v1/earn", c.body, c.key)));
    const by = Object.fromEntries(await Promise.all(answers.map(async (a, i) => [calls[i]!.name, { status: a.status, body: await json(a) }] as const)));
    expect(by.good).toMatchObject({ status: 201, body: { points_earned: 40, balance: { available: 41 } } });
    expect(by["no-points"]).toMatchObject({ status: 201, body: { points_earned: 0, lot: null } });
    expect(by.duplicate).toMatchObject({ status: 409, body: { code: "duplicate-transaction" } });
    expect(by["not-linked"]).toMatchObject({ status: 404, body: { code: "member-not-found" } });
    expect(by["other-network"]).toMatchObject({ status: 404, body: { code: "member-not-found" } });
    expect((await hub.db("point_transactions").where({ member_id: sandboxMember.id }).first("id"))).toBeUndefined();
    expect(by.currency).toMatchObject({ status: 422, body: { code: "currency-mismatch", expected_currency: "EUR" } });
    expect([by["twin-a"]!.status, by["twin-b"]!.status].sort()).toEqual([201, 409]);
    expect(by.good2!.status).toBe(201);
    expect((await json(await s.get(`/v1/members/${second.id}/balance`))).available).toBe(72);
    expect((await json(await s.get(`/v1/members/${s.member.id}/balance`))).available).toBe(41);

    // The refusals were stored under their keys like any other answer: a retry gets the same one.
    for (const name of ["duplicate", "not-linked", "currency"]) {
      const c = calls.find((x) => x.name === name)!;
      const retry = await s.post("/v1/earn", c.body, c.key);
      expect(retry.status).toBe(by[name]!.status);
      expect(retry.headers.get("idempotent-replayed")).toBe("true");
      expect((await json(retry)).code).toBe(by[name]!.body.code);
    }
  });

  it("writes calls that arrive together in one transaction, with one commit", async () => {
    const s = await ledgerScenario(hub);
    // The batch leaves when its 12th call arrives (the wait is long), whatever the machine's load; one slot, so that
    // the twelve are not shared out over two batches.
    const batch = batchOf({ maxItems: 12, maxWaitMs: 10_000, maxInFlight: 1 });
    const members = [s.member.id, ...(await Promise.all(Array.from({ length: 3 }, () => createMember(hub.db, s.partner.id)))).map((m) => m.id)];
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => {
        return batch.submit(earnCall(s.partner.id, `one-${i}`, earnBody(members[i % 4]!, 10_000 + i * 1_000, `one-${i}`)));
      }),
    );
    expect(results.map((r) => r.status)).toEqual(Array(12).fill(201));
    expect(batch.stats()).toEqual({ batches: 1, items: 12, written: 12 });
    const txns = results.map((r) => (r.body as { transaction_id: string }).transaction_id);
    expect(await commitsOf(txns)).toBe(1);
    // Each answer is its own: member, points and the balance after the earns of that member so far.
    results.forEach((r, i) => expect(r.body).toMatchObject({ member_id: members[i % 4], partner_transaction_id: `one-${i}`, points_earned: 10 + i }));
    for (const [k, m] of members.entries()) {
      const expected = [k, k + 4, k + 8].reduce((sum, i) => sum + 10 + i, 0);
      expect((await json(await s.get(`/v1/members/${m}/balance`))).available).toBe(expected);
    }
  });

  it("pays a member's points debt first, earn after earn, when one batch holds several earns of that member", async () => {
    // A debt of 30 points: 100 earned, 90 spent, the purchase refunded (a floor of -30, the rest recovered).
    const s = await ledgerScenario(hub, { negative_floor: -30n });
    const t = await json(await s.post("/v1/earn", earnBody(s.member.id, 100_000, "debt-earn")));
    await s.post("/v1/burn", { member_id: s.member.id, partner_transaction_id: "debt-spend", points: 90, amount_minor: 900, currency: "EUR" });
    expect((await json(await s.post(`/v1/transactions/${t.transaction_id}/refund`, { refund_id: "debt-r" }))).balance).toMatchObject({ available: 0, owed: 30 });

    const db = hub.db;
    const idempotency = createIdempotency({ db });
    const batch = batchOf({ maxItems: 4, maxWaitMs: 10_000, maxInFlight: 1 }, { idempotency });
    const other = (await createMember(hub.db, s.partner.id)).id;
    // 12 points (all to the debt), 25 (18 to the debt, 7 credited), 5 (credited), and another member's 9.
    const calls = [
      { member: s.member.id, amount: 12_000 },
      { member: other, amount: 9_000 },
      { member: s.member.id, amount: 25_000 },
      { member: s.member.id, amount: 5_000 },
    ];
    const results = await Promise.all(
      calls.map((c, i) => {
        return batch.submit(earnCall(s.partner.id, `debt-${i}`, earnBody(c.member, c.amount, `debt-${i}`)));
      }),
    );
    expect(batch.stats()).toEqual({ batches: 1, items: 4, written: 4 });
    const bodies = results.map((r) => r.body as { balance: unknown; lot: { id: string } | null; transaction_id: string });
    expect(bodies.map((b) => b.balance)).toEqual([
      { available: 0, held: 0, owed: 18 },
      { available: 9, held: 0, owed: 0 },
      { available: 7, held: 0, owed: 0 },
      { available: 12, held: 0, owed: 0 },
    ]);
    // No lot for the earn that went wholly to the debt; lots of exactly what was credited.
    expect(bodies[0]!.lot).toBeNull();
    const lots = (await db("ledger_lots").whereIn("id", bodies.slice(1).map((b) => b.lot!.id)).orderBy("amount")).map((l) => [l.member_id, Number(l.amount)]);
    expect(lots).toEqual([
      [s.member.id, 5],
      [s.member.id, 7],
      [other, 9],
    ]);
    // The stored answers are the ones given, and the balance reads the same.
    const again = await Promise.all(
      calls.map((c, i) =>
        idempotency.run(earnCall(s.partner.id, `debt-${i}`, earnBody(c.member, c.amount, `debt-${i}`)).request, () => {
          throw new Error("a replay runs nothing");
        }),
      ),
    );
    expect(again.map((a) => a.body)).toEqual(bodies);
    expect(await json(await s.get(`/v1/members/${s.member.id}/balance`))).toMatchObject({ available: 12, owed: 0 });
  });

  it("gives one effect when two batches (two API processes) carry one key at once, and keeps their other calls", async () => {
    const s = await ledgerScenario(hub);
    const db = hub.db;
    const [a, b] = [batchOf({ maxItems: 2, maxWaitMs: 10_000 }), batchOf({ maxItems: 2, maxWaitMs: 10_000 })];
    const others = (await Promise.all(Array.from({ length: 2 }, () => createMember(hub.db, s.partner.id)))).map((m) => m.id);
    const call = (key: string, input: ReturnType<typeof earnBody>) => earnCall(s.partner.id, key, input);
    const twin = earnBody(s.member.id, 21_000, "race-twin");
    const results = await Promise.all([
      a.submit(call("race-twin", twin)),
      a.submit(call("race-a", earnBody(others[0]!, 5_000, "race-a"))),
      b.submit(call("race-twin", twin)),
      b.submit(call("race-b", earnBody(others[1]!, 6_000, "race-b"))),
    ]);
    expect(results.map((r) => r.status)).toEqual([201, 201, 201, 201]);
    // The twins got one answer: one purchase, one entry, 21 points.
    expect(results[2]!.body).toEqual(results[0]!.body);
    const rows = await db("point_transactions").where({ partner_id: s.partner.id }).whereIn("partner_transaction_id", ["race-twin", "race-a", "race-b"]).select("partner_transaction_id");
    expect(rows.map((r) => r.partner_transaction_id).sort()).toEqual(["race-a", "race-b", "race-twin"]);
    expect((await json(await s.get(`/v1/members/${s.member.id}/balance`))).available).toBe(21);
    for (const [i, m] of others.entries()) expect((await json(await s.get(`/v1/members/${m}/balance`))).available).toBe(5 + i);
  });

  it("prices by the contract version in force: one that took effect after the batch read its versions is caught by the write's checks", async () => {
    const s = await ledgerScenario(hub);
    const db = hub.db;
    const batch = batchOf({ maxItems: 1, maxWaitMs: 0, maxInFlight: 1 });
    let n = 0;
    const submit = () => {
      n++;
      return batch.submit(earnCall(s.partner.id, `cv-${n}`, { ...earnBody(s.member.id, 10_000, `cv-${n}`), occurred_at: new Date().toISOString() }));
    };
    const body = (r: { body?: unknown }) => r.body as { points_earned: number; computation: { contract_version: number } };

    // Version 1 (1 point per 1,000) is read and cached by the first batch, which writes the earn.
    const first = await submit();
    expect(body(first)).toMatchObject({ points_earned: 10, computation: { contract_version: 1 } });
    expect(batch.stats().written).toBe(1);

    // Version 2 (3 points per 1,000) takes effect: the next call, priced by the cached version 1,
    // is refused by the write's checks and answered one by one with version 2's points.
    await createContract(db, s.partner.id, { version: 2, effective_from: new Date(Date.now() - 1_000), earn_points: 3n });
    const second = await submit();
    expect(body(second)).toMatchObject({ points_earned: 30, computation: { contract_version: 2 } });
    expect(batch.stats()).toMatchObject({ batches: 2, written: 1 });

    // The partner's versions were read again: the batch now prices and writes by version 2 itself.
    const third = await submit();
    expect(body(third)).toMatchObject({ points_earned: 30, computation: { contract_version: 2 } });
    expect(batch.stats()).toMatchObject({ batches: 3, written: 2 });
    const stored = await db("point_transactions").whereIn("partner_transaction_id", ["cv-1", "cv-2", "cv-3"]).where({ partner_id: s.partner.id }).orderBy("partner_transaction_id").select("points_earned");
    expect(stored.map((r: { points_earned: string }) => Number(r.points_earned))).toEqual([10, 30, 30]);
  });

  it("answers every call one by one when the batch's checks cannot run", async () => {
    const s = await ledgerScenario(hub);
    const batch = batchOf({ maxWaitMs: 20, maxInFlight: 1 }, { rules: brokenRules });
    const results = await Promise.all(
      [11_000, 12_000, 13_000].map((amount, i) => {
        return batch.submit(earnCall(s.partner.id, `x-${i}`, earnBody(s.member.id, amount, `x-${i}`)));
      }),
    );
    expect(results.map((r) => r.status)).toEqual([201, 201, 201]);
    expect(batch.stats()).toMatchObject({ batches: 1, items: 3, written: 0 });
    expect((await json(await s.get(`/v1/members/${s.member.id}/balance`))).available).toBe(36);
  });
});

describe("the batched earn's calls that go one by one", () => {
  it("hands each caller its own refusal, however soon it comes, with no rejection left unhandled", async () => {
    const s = await ledgerScenario(hub);
    // A write that fails, and a one-by-one path that refuses at once, before the batcher answers its
    // callers in the next turn of the event loop.
    const refusing = { run: () => Promise.reject(new Error("refused at once")) } as unknown as Idempotency;
    const batch = batchOf({ maxItems: 2, maxWaitMs: 10_000, maxInFlight: 1 }, { rules: brokenRules, idempotency: refusing });
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      const answers = await Promise.allSettled(
        ["u-0", "u-1"].map((key) => batch.submit(earnCall(s.partner.id, key, earnBody(s.member.id, 5_000, key)))),
      );
      await new Promise((r) => setTimeout(r, 50));
      expect(answers.map((a) => (a.status === "rejected" ? (a.reason as Error).message : a.status))).toEqual(["refused at once", "refused at once"]);
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });
});

describe.runIf(process.env.DATABASE_URL)("the batched earn beside a long lock", () => {
  it("does not hold other members' earns behind a member whose accounts are locked: the batch gives up after 25 ms and goes one by one", async () => {
    const s = await ledgerScenario(hub);
    const db = hub.db;
    const batch = batchOf({ maxItems: 2, maxWaitMs: 10_000, maxInFlight: 1 });
    const other = (await createMember(db, s.partner.id)).id;
    const call = (memberId: string, txn: string, amount: number) => batch.submit(earnCall(s.partner.id, txn, earnBody(memberId, amount, txn)));
    // Both members' accounts exist (their first earns, together).
    expect((await Promise.all([call(s.member.id, "lk-0", 1_000), call(other, "lk-1", 1_000)])).map((r) => r.status)).toEqual([201, 201]);

    // Another transaction holds the first member's accounts, as a long write would.
    const holder = await db.transaction();
    try {
      await holder.raw("SELECT 1 FROM ledger_accounts WHERE member_id = ? FOR UPDATE", [s.member.id]);
      let lockedDone = false;
      const locked = call(s.member.id, "lk-2", 5_000).finally(() => (lockedDone = true));
      const free = call(other, "lk-3", 7_000);
      const answer = await Promise.race([free, new Promise<"stuck">((r) => setTimeout(() => r("stuck"), 5_000))]);
      expect(answer, "the other member's earn is answered while the lock is held").not.toBe("stuck");
      expect(answer).toMatchObject({ status: 201, body: { member_id: other, points_earned: 7, balance: { available: 8 } } });
      expect(lockedDone, "the locked member's earn waits for its lock").toBe(false);
      await holder.commit();
      expect(await locked).toMatchObject({ status: 201, body: { member_id: s.member.id, points_earned: 5, balance: { available: 6 } } });
    } finally {
      if (!holder.isCompleted()) await holder.rollback();
    }
    // The batch of those two failed as a whole (nothing of it written); both went one by one.
    expect(batch.stats()).toEqual({ batches: 2, items: 4, written: 2 });
  });
});


describe.runIf(process.env.DATABASE_URL)("the pipelined batched earn (PostgreSQL)", () => {
  const balanceOf = async (memberId: string) =>
    Number(((await hub.db("ledger_accounts").where({ member_id: memberId, kind: "member_points" }).first("balance")) as { balance: bigint }).balance);
  const backends = async () =>
    ((await hub.db.raw("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'loyalty-hub-earn-batch'")).rows as Array<{ pid: number }>).map((r) => r.pid);

  it("writes its batches on a connection of its own, queued behind one another, and survives losing it", async () => {
    const s = await ledgerScenario(hub);
    const members = [s.member.id, ...(await Promise.all(Array.from({ length: 7 }, () => createMember(hub.db, s.partner.id)))).map((m) => m.id)];
    // The hub's own batch has a connection of that name too (the earlier tests' earns over HTTP): count only this batch's.
    const theHubs = new Set(await backends());
    const mine = async () => (await backends()).filter((p) => !theHubs.has(p));
    const batch = batchOf({ maxItems: 32, maxWaitMs: 0, maxInFlight: 2, pipeline: 0.45 });
    const wave = async (w: number) => {
      const answers = await Promise.all(members.flatMap((m, i) => [0, 1].map((k) => batch.submit(earnCall(s.partner.id, `pipe-${w}-${i}-${k}`, earnBody(m, 10_000, `pipe-${w}-${i}-${k}`))))));
      expect(answers.map((a) => a.status)).toEqual(answers.map(() => 201));
    };
    // The first call connects it (and goes through the pool meanwhile).
    await wave(0);
    for (let i = 0; i < 50 && (await mine()).length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    const [pid] = await mine();
    expect(pid).toBeDefined();
    await wave(1);
    await wave(2);
    // Every call of the three waves written by the batch itself.
    expect(batch.stats().written).toBe(48);

    // The connection is cut: the calls in flight on it go one by one; the next ones reconnect.
    await hub.db.raw("SELECT pg_terminate_backend(?)", [pid!]);
    await wave(3);
    await wave(4);
    for (let i = 0; i < 50 && (await mine()).filter((p) => p !== pid).length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect((await mine()).filter((p) => p !== pid)).toHaveLength(1);
    await wave(5);
    // Six waves of two earns of 10 points a member, each written once.
    for (const m of members) expect(await balanceOf(m)).toBe(120);
    await batch.close();
    for (let i = 0; i < 50 && (await mine()).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await mine()).toEqual([]);
  });
});
