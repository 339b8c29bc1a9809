import type { HandlerContext, Handlers } from "../http/router.ts";
import { httpErrors } from "../http/problem.ts";
import type { OpBody } from "../http/contract-types.ts";
import type { Idempotency } from "../idempotency/idempotency.service.ts";
import type { Db } from "../infra/db.ts";
import { memberAccessErrors, type MemberAccess } from "../members/member-access.ts";
import type { RuleInput, RulesService } from "./rules.service.ts";
import type { LadderInput, TiersService } from "./tiers.service.ts";
import type { DrawInput, DrawsService } from "./draws.service.ts";

function partnerOf(ctx: HandlerContext): string {
  const id = ctx.principal?.partnerId;
  if (!id) throw httpErrors.make("forbidden", "Only a partner's token can manage its promotions.");
  return id;
}

const param = (ctx: HandlerContext, name: string) => String(ctx.params[name]);

/** Thin handlers for rules, tiers and draws: who is calling, call the service, answer. */
export function rulesRoutes(deps: { db: Db; rules: RulesService; tiers: TiersService; draws: DrawsService; idempotency: Idempotency; members: MemberAccess }): Handlers {
  const { db, rules, tiers, draws, idempotency, members } = deps;
  return {
    // The operator's rules (network-wide, operator-funded) and every partner's, read and moved by staff.
    async createRule(ctx) {
      return { status: 201, body: await rules.createRule(null, ctx.body as RuleInput) };
    },
    async listRules(ctx) {
      return { status: 200, body: await rules.listRules(undefined, ctx.query.status as string | undefined) };
    },
    async getRule(ctx) {
      return { status: 200, body: await rules.getRule(param(ctx, "ruleId")) };
    },
    async setRuleStatus(ctx) {
      return { status: 200, body: await rules.setStatus(param(ctx, "ruleId"), (ctx.body as OpBody<"setRuleStatus">).status) };
    },
    async simulateRule(ctx) {
      return { status: 200, body: await rules.simulate(param(ctx, "ruleId"), (ctx.body as OpBody<"simulateRule">).days) };
    },
    async setSegment(ctx) {
      return { status: 200, body: await rules.setSegment(param(ctx, "segment"), (ctx.body as OpBody<"setSegment">).member_ids) };
    },

    // A partner's own promotions: it sees and moves only its own.
    async createPartnerRule(ctx) {
      return { status: 201, body: await rules.createRule(partnerOf(ctx), ctx.body as RuleInput) };
    },
    async listPartnerRules(ctx) {
      return { status: 200, body: await rules.listRules(partnerOf(ctx), ctx.query.status as string | undefined) };
    },
    async getPartnerRule(ctx) {
      return { status: 200, body: await rules.getRule(param(ctx, "ruleId"), partnerOf(ctx)) };
    },
    async setPartnerRuleStatus(ctx) {
      return { status: 200, body: await rules.setStatus(param(ctx, "ruleId"), (ctx.body as OpBody<"setPartnerRuleStatus">).status, partnerOf(ctx)) };
    },
    async simulatePartnerRule(ctx) {
      const partnerId = partnerOf(ctx);
      await rules.getRule(param(ctx, "ruleId"), partnerId);
      return { status: 200, body: await rules.simulate(param(ctx, "ruleId"), (ctx.body as OpBody<"simulatePartnerRule">).days) };
    },
    async recordRuleEvent(ctx) {
      const partnerId = partnerOf(ctx);
      return idempotency.forRequest(ctx, partnerId, async (trx) => ({ status: 201, body: await rules.customEvent(trx, partnerId, ctx.body as OpBody<"recordRuleEvent">) }));
    },

    async setTierLadder(ctx) {
      return { status: 200, body: await tiers.setLadder(ctx.body as LadderInput) };
    },
    async getTierLadder() {
      return { status: 200, body: await tiers.getLadder() };
    },
    async getMemberTier(ctx) {
      return { status: 200, body: await tiers.memberTier(param(ctx, "memberId")) };
    },
    async getPartnerMemberTier(ctx) {
      const memberId = param(ctx, "memberId");
      if (!(await members.canSee(db, partnerOf(ctx), memberId))) throw memberAccessErrors.make("member-not-found", `No member ${memberId}.`);
      return { status: 200, body: await tiers.memberTier(memberId) };
    },

    async createDraw(ctx) {
      return { status: 201, body: await draws.create(ctx.body as DrawInput) };
    },
    async closeDraw(ctx) {
      return { status: 200, body: await draws.close(param(ctx, "drawId")) };
    },
    async revealDraw(ctx) {
      return { status: 200, body: await draws.reveal(param(ctx, "drawId")) };
    },
    async getDrawWinners(ctx) {
      return { status: 200, body: await draws.winners(param(ctx, "drawId")) };
    },
    async getPublishedDraw(ctx) {
      return { status: 200, body: await draws.view(param(ctx, "drawId")) };
    },
  };
}
