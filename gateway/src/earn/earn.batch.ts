import { createHash } from "node:crypto";
import { pipelinedQuery, namedQuery, type Db } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";
import type { Logger } from "../infra/logger.ts";
import { newId } from "../infra/ids.ts";
import { createBatcher, type BatcherOptions, type Settled } from "../infra/batcher.ts";
import type { HandlerResult } from "../http/router.ts";
import { requestHash, type Idempotency, type IdempotentRequest } from "../idempotency/idempotency.service.ts";
import { CONTRACT_COLUMNS, earnAnswer, toTerms, type ContractRow, type EarnInput, type EarnService } from "./earn.service.ts";
import type { EarnRules } from "./earn.rules.ts";

const DAY_MS = 86_400_000;

export interface EarnCall {
  partnerId: string;
  input: EarnInput;
  /** The request as the idempotency layer keys it (principal, key, method, path, body). */
  request: IdempotentRequest;
}

/** A contract version in force when read: frozen by the database, its terms never change under the cache. */
type CachedContract = ContractRow & { effective_from: Date };

/** A call waiting for its batch, priced (or not) when it arrived. */
interface Pending {
  call: EarnCall;
  /** The call's instant: its occurred_at, or when it arrived. */
  at: Date;
  prepared?: Prepared | null | undefined;
}

interface Prepared {
  memberId: string;
  body: Record<string, unknown>;
  expiresAt: string;
  /** The item for the write, as JSON without its opening brace. */
  json: string;
}

/** A call's answer from its batch: written by it, or the promise of its one-by-one answer. */
type Answer = HandlerResult | Promise<HandlerResult>;

interface WrittenRow {
  idx: number;
  ok: boolean;
  points: bigint | null;
  held: bigint | null;
  debt: bigint | null;
  lot_id: string | null;
  err_code: string | null;
  err_message: string | null;
}

/**
 * The batched earn (group commit). Concurrent `POST /v1/earn` calls are collected for up to
 * `maxWaitMs` (or `maxItems`) and written together, so one commit — one WAL flush — and one round
 * trip serve the whole batch instead of ~14 statements per earn:
 *
 * 1. Node prices each call by the partner's contract version in force at the call's instant, from a
 *    per-process cache of the versions already in force when read — which the database freezes
 *    (`contract_version_frozen`), so their terms cannot change under it — and builds its answer
 *    and its item for the write as JSON, when the call arrives: while the batch before it is in the
 *    database, so that the next batch leaves the moment that one returns (a partner's first calls,
 *    before its versions are cached, are priced when their batch leaves);
 * 2. one statement checks every call and writes those that pass: partner active, the version priced
 *    with still the one in force at the call's instant, member in the partner's network (sandbox or
 *    live), linked to it and active, and no rule or tier that needs the database (the rules'
 *    `contractOnly.whenSql`) — in the same snapshot as the write; then `points_earn_batch` sets
 *    aside the calls the checks refused and those whose Idempotency-Key or partner transaction id is
 *    taken (committed already, or twice in this batch), and writes all the others set-based, one
 *    INSERT per table: the purchase rows, the ledger earns (`ledger_earn_rows`), the `earn.posted`
 *    events and their outbox rows, and the Idempotency-Key rows with the answers — the same rows the
 *    one-by-one path writes.
 *
 * Anything else goes through the one-by-one path (`idempotency.run` + `earn.earn`), which gives the
 * exact answer under the usual rules: a call the checks refuse (its problem, stored under its key,
 * or its earn priced by a version that took effect since the cache read — the partner's cached
 * versions are then dropped), a call set aside (a retried Idempotency-Key, a partner transaction id
 * already used), a call no cached version prices, or a whole batch that failed (a key or
 * transaction id taken meanwhile by a concurrent batch — 40001 —, a deadlock, a row lock waited
 * for longer than the write's `lock_timeout` of 25 ms, a lost connection: nothing of it committed,
 * or it did and the retry replays it). Those calls go each on its own: the batch is done when its
 * statement returns, so neither the next batch nor its other callers wait for them — a call whose
 * member's accounts another transaction holds waits alone. One caller's failure is never another's
 * answer.
 */
export function createEarnBatch(deps: {
  db: Db;
  clock: Clock;
  log: Logger;
  rules: EarnRules;
  earn: EarnService;
  idempotency: Idempotency;
  options?: Partial<BatcherOptions>;
}) {
  const { db, clock, log, rules, earn, idempotency } = deps;
  const contractOnly = rules.contractOnly;
  let written = 0;

  // The checks, then the write, in one statement. Each lookup is a LATERAL … LIMIT 1 by primary key:
  // the planner guesses 100 rows for jsonb_to_recordset and would otherwise hash-join whole tables
  // (members, links) per batch, a cost that grows with the network. The items' jsonb is one
  // parameter, parsed once, read by the checks and passed on to the write.
  const writeSql = `WITH arg AS MATERIALIZED (SELECT ?::jsonb AS items),
          refused AS MATERIALIZED (
            SELECT i.idx
              FROM arg CROSS JOIN LATERAL jsonb_to_recordset(arg.items) AS i(idx integer, partner_id text, member_id text, occurred_at timestamptz, contract_version_id text)
              LEFT JOIN LATERAL (SELECT p.status, p.sandbox FROM partners p WHERE p.id = i.partner_id LIMIT 1) p ON true
              LEFT JOIN LATERAL (SELECT m.status, m.sandbox FROM members m WHERE m.id = i.member_id LIMIT 1) m ON true
              LEFT JOIN LATERAL (SELECT true AS linked FROM member_partner_links l
                                  WHERE l.member_id = i.member_id AND l.partner_id = i.partner_id LIMIT 1) lk ON true
              LEFT JOIN LATERAL (SELECT cv.id FROM contract_versions cv WHERE cv.partner_id = i.partner_id AND cv.effective_from <= i.occurred_at
                                  ORDER BY cv.effective_from DESC LIMIT 1) c ON true
             WHERE (p.status = 'active' AND m.status = 'active' AND m.sandbox = p.sandbox AND lk.linked
                    AND c.id = i.contract_version_id AND (${contractOnly?.whenSql("i.occurred_at") ?? "false"})) IS NOT TRUE)
        SELECT w.* FROM arg CROSS JOIN LATERAL points_earn_batch(arg.items, ARRAY(SELECT r.idx FROM refused r)) AS w`;
  // Named by its text: two batches with other rules (another whenSql) never share a name.
  const writeName = `earn_batch_write_${createHash("sha256").update(writeSql).digest("hex").slice(0, 16)}`;

  // Pipelined: the batches go out on a connection of their own, the next queued behind the one in
  // flight (infra/db.ts, pipelinedQuery); otherwise each on a connection of the pool.
  const pipelined = (deps.options?.pipeline ?? 0) > 0;
  const writer = pipelined ? pipelinedQuery(db, "loyalty-hub-earn-batch") : undefined;

  // The contract versions in force when read, by partner, newest first.
  const contracts = new Map<string, CachedContract[]>();
  async function loadContracts(partnerIds: string[]): Promise<void> {
    const missing = [...new Set(partnerIds)].filter((id) => !contracts.has(id));
    if (missing.length === 0) return;
    const rows = (await db("contract_versions")
      .whereIn("partner_id", missing)
      .whereRaw("effective_from <= now()")
      .orderBy([{ column: "partner_id" }, { column: "effective_from", order: "desc" }])
      .select("partner_id", "effective_from", ...CONTRACT_COLUMNS)) as Array<CachedContract & { partner_id: string }>;
    for (const id of missing) contracts.set(id, []);
    for (const r of rows) contracts.get(r.partner_id)!.push({ ...r, effective_from: new Date(r.effective_from) });
  }

  const oneByOne = (call: EarnCall): Promise<HandlerResult> =>
    idempotency.run(call.request, async (trx) => ({ status: 201, body: await earn.earn(trx, call.partnerId, call.input) }));

  // The calls a batch cannot write go one by one, each on its own: the batch hands each caller its
  // call's promise and is done, so that neither the next batch nor the other callers wait for the
  // slowest of them (one waiting for a member's lock, say). The promise reaches its caller a turn of
  // the event loop later (the batcher answers in the next turn), so it is marked handled now: a
  // refusal settling before then is not an unhandled rejection, and the caller still gets it.
  const settle = (calls: EarnCall[]): Array<Settled<Answer>> =>
    calls.map((c) => {
      const answer = oneByOne(c);
      answer.catch(() => undefined);
      return { ok: true as const, value: answer };
    });

  /**
   * Prices a call by its cached contract and builds its answer and its item for the write — done
   * when the call arrives, while the batch before it is in the database, so that a batch leaves as
   * soon as the one before it returns. `undefined`: no version of the partner's is cached (read
   * them, then price); `null`: the call goes one by one.
   */
  function prepare(pending: Pending): Prepared | null | undefined {
    const { call, at } = pending;
    const input = call.input;
    const versions = contracts.get(call.partnerId);
    if (!versions) return undefined;
    const row = versions.find((v) => v.effective_from.getTime() <= at.getTime());
    if (!row) {
      // None cached for that instant (no version in force when read, or the call is dated before
      // them all): one by one, and the partner's versions are read again for the next batch.
      contracts.delete(call.partnerId);
      return null;
    }
    if (!contractOnly || row.currency !== input.currency) return null;
    const contract = toTerms(row);
    const memberId = input.member_id!;
    const computed = contractOnly.compute({
      partnerId: call.partnerId,
      memberId,
      contract,
      earnableMinor: BigInt(input.amount_minor),
      currency: input.currency,
      occurredAt: at,
      lines: input.lines ?? [],
    });
    // An earn of no points writes no ledger entry: the one-by-one path answers it.
    if (computed.points <= 0n) return null;
    const txnId = newId("txn");
    const eventId = newId("evt");
    const expiresAt = new Date(at.getTime() + contract.pointsValidityDays * DAY_MS).toISOString();
    // The answer's head as earn.earn builds it; lot and balance come from the write.
    const body: Record<string, unknown> = earnAnswer({ transactionId: txnId, dryRun: false, input, memberId, occurredAt: at, contract, computed, pointsBurned: 0 });
    const item = {
      member_id: memberId,
      principal: call.request.principal,
      key: call.request.key,
      request_hash: requestHash(call.request),
      method: call.request.method.toUpperCase(),
      path: call.request.path,
      txn_id: txnId,
      partner_id: call.partnerId,
      partner_transaction_id: input.partner_transaction_id,
      amount_minor: String(input.amount_minor),
      currency: input.currency,
      occurred_at: at.toISOString(),
      contract_version_id: contract.id,
      points: computed.points.toString(),
      computation: { items: computed.items, lines: input.lines ?? [] },
      entry_id: newId("ent"),
      lot_id: newId("lot"),
      expires_at: expiresAt,
      event_id: eventId,
      event_data: { transaction_id: txnId, member_id: memberId, points: Number(computed.points), partner_transaction_id: input.partner_transaction_id },
      body,
    };
    // The item's JSON without its opening brace: the batch puts its index in front ({"idx":N,…}).
    return { memberId, body, expiresAt, json: JSON.stringify(item).slice(1) };
  }

  // Whatever goes wrong in a batch, its calls are answered one by one: nothing of a failed batch
  // committed, and if it did, the one-by-one path finds each key and replays its answer.
  async function flush(pendings: Pending[]): Promise<Array<Settled<Answer>>> {
    try {
      return await write(pendings);
    } catch (err) {
      log.warn({ err }, "earn batch failed; its calls go one by one");
      return settle(pendings.map((p) => p.call));
    }
  }

  async function write(pendings: Pending[]): Promise<Array<Settled<Answer>>> {
    const calls = pendings.map((p) => p.call);
    const results: Array<Settled<Answer> | undefined> = new Array(calls.length);

    // 1. The calls whose partner had no versions cached when they arrived: read them (a partner's
    //    first batch, or the first after its cache was dropped), then price those calls.
    if (pendings.some((p) => p.prepared === undefined)) {
      try {
        await loadContracts(pendings.filter((p) => p.prepared === undefined).map((p) => p.call.partnerId));
      } catch (err) {
        log.warn({ err }, "earn batch: the contracts could not be read; the calls go one by one");
        return settle(calls);
      }
      for (const p of pendings) if (p.prepared === undefined) p.prepared = prepare(p) ?? null;
    }

    // 2. Check and write the priced calls in one statement, members in one order so that two
    //    batches never deadlock; the others go one by one.
    const priced = pendings.map((p, idx) => ({ idx, prepared: p.prepared })).filter((x): x is { idx: number; prepared: Prepared } => Boolean(x.prepared));
    priced.sort((a, b) => (a.prepared.memberId === b.prepared.memberId ? a.idx - b.idx : a.prepared.memberId < b.prepared.memberId ? -1 : 1));
    if (priced.length > 0) {
      try {
        const items = `[${priced.map((x) => `{"idx":${x.idx},${x.prepared.json}`).join(",")}]`;
        const rows = writer ? await writer.query<WrittenRow>(writeName, writeSql, [items]) : await namedQuery<WrittenRow>(db, writeName, writeSql, [items]);
        for (const w of rows) {
          const idx = Number(w.idx);
          const answer = pendings[idx]!.prepared!;
          if (!w.ok) {
            // Refused by the checks: perhaps priced by a version no longer in force at that instant.
            if (w.err_code === "checks") contracts.delete(calls[idx]!.partnerId);
            else if (w.err_code !== "23505") log.debug({ code: w.err_code, message: w.err_message }, "earn batch: a call goes one by one");
            continue;
          }
          answer.body.lot = w.lot_id ? { id: w.lot_id, expires_at: answer.expiresAt } : null;
          answer.body.balance = { available: Number(w.points), held: Number(w.held), owed: Number(-BigInt(w.debt!)) };
          results[idx] = { ok: true, value: { status: 201, body: answer.body } };
          written++;
        }
      } catch (err) {
        log.warn({ err }, "earn batch: the write failed; its calls go one by one");
      }
    }

    // Every call without an answer yet goes the one-by-one way.
    const rest = calls.map((c, idx) => ({ c, idx })).filter(({ idx }) => !results[idx]);
    if (rest.length > 0) {
      const settled = settle(rest.map((r) => r.c));
      rest.forEach((r, i) => (results[r.idx] = settled[i]));
    }
    return results as Array<Settled<Answer>>;
  }

  const batcher = createBatcher<Pending, Answer>(
    {
      maxItems: deps.options?.maxItems ?? 32,
      maxWaitMs: deps.options?.maxWaitMs ?? 1,
      // Pipelined, two: one running, the next queued behind it on the same connection.
      maxInFlight: pipelined ? 2 : (deps.options?.maxInFlight ?? 1),
      pipeline: deps.options?.pipeline ?? 0,
    },
    flush,
  );

  return {
    /** True when the batch can take this call: a plain earn by member id, under rules that say when they need no database. */
    accepts(input: EarnInput): boolean {
      return contractOnly !== undefined && input.burn === undefined && input.card_number === undefined && typeof input.member_id === "string";
    },
    /** Answers one call: 201 with its body, or the problem the one-by-one path raised. */
    submit(call: EarnCall): Promise<HandlerResult> {
      const pending: Pending = { call, at: call.input.occurred_at ? new Date(call.input.occurred_at) : clock.now() };
      pending.prepared = prepare(pending);
      return batcher.submit(pending).then((answer) => answer);
    },
    /** Batches sent, calls they held, and calls the batch wrote itself (the rest went one by one). */
    stats: () => ({ ...batcher.stats(), written }),
    /** Closes the pipelined batches' connection. */
    close: async () => writer?.close(),
  };
}

export type EarnBatch = ReturnType<typeof createEarnBatch>;
