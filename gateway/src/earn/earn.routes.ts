import type { HandlerContext, Handlers } from "../http/router.ts";
import { httpErrors } from "../http/problem.ts";
import type { Idempotency } from "../idempotency/idempotency.service.ts";
import type { BurnInput, EarnInput, EarnService, RedemptionInput, RefundInput } from "./earn.service.ts";
import type { EarnBatch } from "./earn.batch.ts";
import type { DirectBurn } from "./burn.direct.ts";

function partnerOf(ctx: HandlerContext): string {
  const id = ctx.principal?.partnerId;
  if (!id) throw httpErrors.make("forbidden", "Only a partner's token can move points.");
  return id;
}

/** Thin handlers: who is calling, run the service under the Idempotency-Key, answer. */
export function earnRoutes(deps: { earn: EarnService; idempotency: Idempotency; batch?: EarnBatch; directBurn?: DirectBurn }): Handlers {
  const { earn, idempotency, batch, directBurn } = deps;

  const idempotent = (ctx: HandlerContext, work: Parameters<Idempotency["run"]>[1]) => idempotency.forRequest(ctx, partnerOf(ctx), work);

  return {
    async earnPoints(ctx) {
      const partnerId = partnerOf(ctx);
      const input = ctx.body as EarnInput;
      if (input.burn && !ctx.principal.scopes.has("burn:write")) {
        throw httpErrors.make("insufficient-scope", "Paying with points needs the scope burn:write as well.", { required_scopes: ["earn:write", "burn:write"] });
      }
      if (ctx.query.dry_run === true) return { status: 200, body: await earn.previewEarn(partnerId, input) };
      // Plain earns are written together with their concurrent neighbours (group commit).
      if (batch?.accepts(input)) return batch.submit({ partnerId, input, request: idempotency.requestOf(ctx, partnerId) });
      return idempotent(ctx, async (trx) => ({ status: 201, body: await earn.earn(trx, partnerId, input) }));
    },

    async burnPoints(ctx) {
      const partnerId = partnerOf(ctx);
      const input = ctx.body as BurnInput;
      // A burn by member id is written in one statement when nothing unusual is in the way.
      if (directBurn?.accepts(input)) return directBurn.submit({ partnerId, input, request: idempotency.requestOf(ctx, partnerId) });
      return idempotent(ctx, async (trx) => ({ status: 201, body: await earn.burn(trx, partnerId, input) }));
    },

    async createRedemption(ctx) {
      const partnerId = partnerOf(ctx);
      return idempotent(ctx, async (trx) => ({ status: 201, body: await earn.hold(trx, partnerId, ctx.body as RedemptionInput) }));
    },

    async getRedemption(ctx) {
      return { status: 200, body: await earn.getRedemption(partnerOf(ctx), String(ctx.params.redemptionId)) };
    },

    async captureRedemption(ctx) {
      const partnerId = partnerOf(ctx);
      const body = (ctx.body ?? {}) as { points?: number };
      return idempotent(ctx, async (trx) => ({ status: 200, body: await earn.capture(trx, partnerId, String(ctx.params.redemptionId), body) }));
    },

    async voidRedemption(ctx) {
      const partnerId = partnerOf(ctx);
      return idempotent(ctx, async (trx) => ({ status: 200, body: await earn.void(trx, partnerId, String(ctx.params.redemptionId)) }));
    },

    async refundTransaction(ctx) {
      const partnerId = partnerOf(ctx);
      return idempotent(ctx, async (trx) => ({
        status: 201,
        body: await earn.refund(trx, partnerId, String(ctx.params.transactionId), ctx.body as RefundInput),
      }));
    },

    async getMemberBalance(ctx) {
      return { status: 200, body: await earn.balance(partnerOf(ctx), String(ctx.params.memberId)) };
    },

    async listMemberHistory(ctx) {
      const q = ctx.query as { cursor?: string; limit?: number };
      return {
        status: 200,
        body: await earn.history(partnerOf(ctx), String(ctx.params.memberId), { ...(q.cursor ? { cursor: q.cursor } : {}), ...(q.limit ? { limit: q.limit } : {}) }),
      };
    },
  };
}
