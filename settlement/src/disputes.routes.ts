import type { HandlerContext, Handlers } from "../../gateway/src/http/router.ts";
import { httpErrors } from "../../gateway/src/http/problem.ts";
import type { Idempotency } from "../../gateway/src/idempotency/idempotency.service.ts";
import type { DisputeInput, DisputesService, ResolutionInput } from "./disputes.service.ts";

function partnerOf(ctx: HandlerContext): string {
  const id = ctx.principal?.partnerId;
  if (!id) throw httpErrors.make("forbidden", "Only a partner's token disputes statements.");
  return id;
}

const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
const int = (v: unknown) => (typeof v === "number" ? v : undefined);

function paging(q: Record<string, unknown>) {
  const out: { status?: string; cursor?: string; limit?: number } = {};
  if (str(q.status)) out.status = str(q.status)!;
  if (str(q.cursor)) out.cursor = str(q.cursor)!;
  if (int(q.limit)) out.limit = int(q.limit)!;
  return out;
}

/**
 * Thin handlers: partners open, read and comment on their own disputes; the operator reads every
 * dispute, comments and resolves. Opening and resolving run under the Idempotency-Key (resolving
 * books money); the operator's keys are one key space for all its staff clients.
 */
export function disputesRoutes(deps: { disputes: DisputesService; idempotency: Idempotency }): Handlers {
  const { disputes, idempotency } = deps;
  return {
    async createSettlementDispute(ctx) {
      const partnerId = partnerOf(ctx);
      return idempotency.forRequest(ctx, partnerId, async (trx) => ({
        status: 201,
        body: await disputes.open(trx, partnerId, ctx.principal.clientId, String(ctx.params.statementId), ctx.body as DisputeInput),
      }));
    },

    async listSettlementDisputes(ctx) {
      const q = ctx.query;
      return { status: 200, body: await disputes.listForPartner(partnerOf(ctx), { ...paging(q), ...(str(q.statement_id) ? { statementId: str(q.statement_id)! } : {}) }) };
    },

    async getSettlementDispute(ctx) {
      return { status: 200, body: await disputes.getForPartner(partnerOf(ctx), String(ctx.params.disputeId)) };
    },

    async commentSettlementDispute(ctx) {
      const partnerId = partnerOf(ctx);
      const { note } = ctx.body as { note: string };
      return { status: 201, body: await disputes.comment(String(ctx.params.disputeId), { actor: "partner", clientId: ctx.principal.clientId, partnerId }, note) };
    },

    async listSettlementDisputesAdmin(ctx) {
      const q = ctx.query;
      return { status: 200, body: await disputes.listForOperator({ ...paging(q), ...(str(q.partner_id) ? { partnerId: str(q.partner_id)! } : {}) }) };
    },

    async getSettlementDisputeAdmin(ctx) {
      return { status: 200, body: await disputes.getForOperator(String(ctx.params.disputeId)) };
    },

    async commentSettlementDisputeAdmin(ctx) {
      const { note } = ctx.body as { note: string };
      return { status: 201, body: await disputes.comment(String(ctx.params.disputeId), { actor: "operator", clientId: ctx.principal.clientId }, note) };
    },

    async resolveSettlementDispute(ctx) {
      return idempotency.run(
        {
          principal: "operator",
          key: ctx.headers["idempotency-key"]!,
          method: ctx.req.method,
          path: ctx.req.originalUrl,
          body: ctx.body ?? null,
          requestId: ctx.requestId,
        },
        async (trx) => ({ status: 200, body: await disputes.resolve(trx, String(ctx.params.disputeId), ctx.principal.clientId, ctx.body as ResolutionInput) }),
      );
    },
  };
}
