import { createHash } from "node:crypto";
import type { Db, Trx } from "../infra/db.ts";
import { AppError } from "../http/problem.ts";
import type { HandlerContext, HandlerResult } from "../http/router.ts";
import { idempotencyErrors } from "./idempotency.errors.ts";

export interface IdempotentRequest {
  /** Whose key space: keys of two partners never collide. */
  principal: string;
  key: string;
  method: string;
  /** The path with its query string: `?dry_run=true` is another request. */
  path: string;
  body: unknown;
  requestId?: string;
}

/** JSON with object keys sorted, so two spellings of one body hash alike. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    return `{${Object.keys(obj)
      .sort()
      .filter((k) => obj[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

export function requestHash(req: Pick<IdempotentRequest, "method" | "path" | "body">): string {
  return createHash("sha256").update(`${req.method.toUpperCase()} ${req.path}\n${canonicalJson(req.body ?? null)}`).digest("hex");
}

export const REPLAY_HEADER = "Idempotent-Replayed";

/**
 * Stripe-style idempotency in one transaction: the key row is inserted first, so a concurrent
 * request with the same key waits on the primary key until the first commits, then finds the row
 * and replays its answer; the work runs in a savepoint; its answer — a success, or a business
 * refusal such as insufficient points — is stored on the key row and committed with the work. A
 * failure on our side (5xx, a lost race) stores nothing, so the client's retry runs afresh; nor does
 * a request whose parameters fail validation (`validation-error`, whether the contract's schema or
 * the handler found it), as Stripe saves no result for those: nothing ran, and the client may send
 * the corrected request under the same key.
 */
/** Client errors that store nothing under the key: a lost race (retry it), parameters that failed validation (fix them). */
const NOT_STORED = new Set(["concurrency-conflict", "validation-error"]);

/** How long an Idempotency-Key and its answer are kept (Stripe keeps them 24 hours; we keep 48). */
export const KEY_RETENTION_HOURS = 48;

export function createIdempotency(deps: { db: Db }) {
  const { db } = deps;
  return {
    /** The same as run(), for a partner's API request: key from the Idempotency-Key header, scoped to the partner. */
    forRequest(ctx: HandlerContext, partnerId: string, work: (trx: Trx) => Promise<HandlerResult>): Promise<HandlerResult> {
      return this.run(this.requestOf(ctx, partnerId), work);
    },

    /** A partner's API request as the idempotency layer keys it (the batched earn writes the same row). */
    requestOf(ctx: HandlerContext, partnerId: string): IdempotentRequest {
      return {
        principal: `partner:${partnerId}`,
        key: ctx.headers["idempotency-key"]!,
        method: ctx.req.method,
        path: ctx.req.originalUrl,
        body: ctx.body ?? null,
        requestId: ctx.requestId,
      };
    },

    async run(req: IdempotentRequest, work: (trx: Trx) => Promise<HandlerResult>): Promise<HandlerResult> {
      const hash = requestHash(req);
      const outcome = await db.transaction(async (trx): Promise<{ result: HandlerResult } | { error: AppError }> => {
        const inserted = (
          await trx.raw(
            `INSERT INTO idempotency_keys (principal, key, request_hash, method, path, response_status)
             VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (principal, key) DO NOTHING RETURNING key`,
            [req.principal, req.key, hash, req.method.toUpperCase(), req.path],
          )
        ).rows as unknown[];
        if (inserted.length === 0) {
          const row: { request_hash: string; response_status: number; response_body: unknown } = await trx("idempotency_keys")
            .where({ principal: req.principal, key: req.key })
            .first("request_hash", "response_status", "response_body");
          if (row.request_hash !== hash) {
            throw idempotencyErrors.make("idempotency-key-reused", "This Idempotency-Key was first sent with another method, path or body. Use a new key for a new request.");
          }
          const headers: Record<string, string> = { [REPLAY_HEADER]: "true" };
          if (row.response_status >= 400) headers["Content-Type"] = "application/problem+json";
          return { result: { status: row.response_status, body: row.response_body ?? undefined, headers } };
        }
        const store = (status: number, body: unknown) =>
          trx("idempotency_keys")
            .where({ principal: req.principal, key: req.key })
            .update({ response_status: status, response_body: body === undefined ? null : JSON.stringify(body) });
        try {
          const result = await trx.transaction((sp) => work(sp));
          await store(result.status, result.body);
          return { result };
        } catch (err) {
          // A refusal is an answer too: the retry must get the same one. A lost race is not, nor a
          // request that failed validation (the key row goes with the rolled-back transaction).
          if (err instanceof AppError && err.status >= 400 && err.status < 500 && !NOT_STORED.has(err.code)) {
            await store(err.status, err.toProblem(req.requestId));
            return { error: err };
          }
          throw err;
        }
      });
      if ("error" in outcome) throw outcome.error;
      return outcome.result;
    },

    /**
     * Deletes keys older than the retention (at least 24 hours; 48 by default) and answers how many.
     * The count comes from the statement itself: knex's `delete()` answers a number on pg but the
     * driver's raw result on PGlite.
     */
    async sweep(olderThanHours = KEY_RETENTION_HOURS): Promise<number> {
      if (!(olderThanHours >= 24)) throw new Error(`idempotency keys are kept at least 24 hours, not ${olderThanHours}`);
      const { rows } = await db.raw<{ rows: Array<{ n: number }> }>(
        `WITH gone AS (DELETE FROM idempotency_keys WHERE created_at < now() - (? * interval '1 hour') RETURNING 1) SELECT count(*)::integer AS n FROM gone`,
        [olderThanHours],
      );
      return rows[0]!.n;
    },
  };
}

export type Idempotency = ReturnType<typeof createIdempotency>;
