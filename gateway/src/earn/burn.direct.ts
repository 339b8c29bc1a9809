import { namedQuery, type Db } from "../infra/db.ts";
import { createBatcher, type Settled } from "../infra/batcher.ts";
import type { Clock } from "../infra/clock.ts";
import type { Logger } from "../infra/logger.ts";
import { newId } from "../infra/ids.ts";
import type { HandlerResult } from "../http/router.ts";
import { requestHash, type Idempotency, type IdempotentRequest } from "../idempotency/idempotency.service.ts";
import { burnAnswer, type BurnInput, type EarnService } from "./earn.service.ts";

export interface BurnCall {
  partnerId: string;
  input: BurnInput;
  /** The request as the idempotency layer keys it (principal, key, method, path, body). */
  request: IdempotentRequest;
}

interface BurnRow {
  ok: boolean;
  reason: string | null;
  points: bigint | string | null;
  held: bigint | string | null;
  debt: bigint | string | null;
}

/**
 * The burn in one statement (`points_burn`, migration 20261201210000) for the common case: a member
 * named by id, linked to an active partner, with enough points and no lot past its date. It writes
 * the rows the one-by-one path writes (`idempotency.run` + `earn.burn`) and answers the same body;
 * anything else — a retried key, a used transaction id, a refusal of any kind, an account not yet
 * created, a lot to expire first, a statement that failed — goes the one-by-one way, which gives the
 * exact answer under the usual rules. One round trip instead of ~11.
 *
 * Burns that arrive together are written together (`batchMaxItems` > 1, `points_burn_batch`,
 * migration 20261202050000): the first leaves at once, those that arrive while it is in the database
 * leave together when it returns — one round trip and one commit for the lot, each call still
 * answered on its own. If the batch's statement fails, nothing of it is written and each of its
 * calls goes one by one.
 */
export function createDirectBurn(deps: { db: Db; clock: Clock; log: Logger; earn: EarnService; idempotency: Idempotency; batchMaxItems?: number }) {
  const { db, clock, log, earn, idempotency } = deps;
  let direct = 0;
  let oneByOne = 0;

  const one = async (item: string): Promise<BurnRow | undefined> => (await namedQuery<BurnRow>(db, "points_burn", "SELECT * FROM points_burn(?::jsonb)", [item]))[0];
  const batcher =
    (deps.batchMaxItems ?? 1) > 1
      ? createBatcher<string, BurnRow | undefined>({ maxItems: deps.batchMaxItems!, maxWaitMs: 0, maxInFlight: 1 }, async (items): Promise<Array<Settled<BurnRow | undefined>>> => {
          if (items.length === 1) return [{ ok: true, value: await one(items[0]!) }];
          // The items are JSON texts already: joined, they are the batch's array.
          const rows = await namedQuery<BurnRow & { idx: number }>(db, "points_burn_batch", "SELECT * FROM points_burn_batch(?::jsonb)", [`[${items.join(",")}]`]);
          const byIdx = new Map(rows.map((r) => [r.idx, r]));
          return items.map((_, i) => ({ ok: true, value: byIdx.get(i) }));
        })
      : undefined;

  const slow = (call: BurnCall): Promise<HandlerResult> => {
    oneByOne++;
    return idempotency.run(call.request, async (trx) => ({ status: 201, body: await earn.burn(trx, call.partnerId, call.input) }));
  };

  return {
    /** True for a burn by member id (a card number goes the one-by-one way: it may link the member). */
    accepts(input: BurnInput): boolean {
      return input.card_number === undefined && typeof input.member_id === "string";
    },

    /** Answers one burn: 201 with its body, or the problem the one-by-one path raised. */
    async submit(call: BurnCall): Promise<HandlerResult> {
      const { input, partnerId, request } = call;
      const now = clock.now();
      const occurredAt = input.occurred_at ? new Date(input.occurred_at) : now;
      const transactionId = newId("txn");
      const memberId = input.member_id!;
      // The answer's head as earn.burn builds it; the balance comes from the write.
      const body: Record<string, unknown> = burnAnswer({ transactionId, input, memberId, occurredAt });
      let row: BurnRow | undefined;
      try {
        const item = JSON.stringify({
          principal: request.principal,
          key: request.key,
          request_hash: requestHash(request),
          method: request.method.toUpperCase(),
          path: request.path,
          partner_id: partnerId,
          member_id: memberId,
          partner_transaction_id: input.partner_transaction_id,
          points: String(input.points),
          amount_minor: String(input.amount_minor),
          currency: input.currency,
          occurred_at: occurredAt.toISOString(),
          now: now.toISOString(),
          txn_id: transactionId,
          entry_id: newId("ent"),
          event_id: newId("evt"),
          event_data: { transaction_id: transactionId, member_id: memberId, points: input.points, partner_transaction_id: input.partner_transaction_id },
          body,
        });
        row = batcher ? await batcher.submit(item) : await one(item);
      } catch (err) {
        // 40001 (a key or transaction id taken meanwhile: a client's retry racing its first try, an
        // expected event), 55P03 (a batch's member held by another transaction past the batch's
        // lock_timeout), a lost connection: nothing committed, or it did and the one-by-one path
        // finds the key and replays its answer.
        const code = (err as { code?: string }).code;
        const raced = code === "40001" || code === "55P03";
        log[raced ? "debug" : "warn"]({ err }, "direct burn failed; the call goes one by one");
        return slow(call);
      }
      if (!row?.ok) {
        if (row?.reason !== "key-taken") log.debug({ reason: row?.reason }, "direct burn: the call goes one by one");
        return slow(call);
      }
      direct++;
      body.balance = { available: Number(row.points), held: Number(row.held), owed: Number(-BigInt(row.debt!)) };
      return { status: 201, body };
    },

    /** Burns written in one statement, those that went one by one, and the batches that carried the former (with the calls they held). */
    stats: () => {
      const b = batcher?.stats();
      return { direct, oneByOne, ...(b ? { batches: b.batches, batchedCalls: b.items } : {}) };
    },
  };
}

export type DirectBurn = ReturnType<typeof createDirectBurn>;
