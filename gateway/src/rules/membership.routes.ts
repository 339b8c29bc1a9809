import type { HandlerContext, Handlers } from "../http/router.ts";
import { httpErrors } from "../http/problem.ts";
import type { OpBody } from "../http/contract-types.ts";
import type { MembershipService, PlanInput } from "./membership.service.ts";

function partnerOf(ctx: HandlerContext): string {
  const id = ctx.principal?.partnerId;
  if (!id) throw httpErrors.make("forbidden", "Only a partner's token can start a membership.");
  return id;
}

/** Paid membership: plans (operator), checkouts (partners), and Stripe's signed webhook. */
export function membershipRoutes(memberships: MembershipService): Handlers {
  return {
    async createMembershipPlan(ctx) {
      return { status: 201, body: await memberships.createPlan(ctx.body as PlanInput) };
    },
    async listMembershipPlans() {
      return { status: 200, body: await memberships.listPlans() };
    },
    async startMembership(ctx) {
      return { status: 201, body: await memberships.start(partnerOf(ctx), ctx.body as OpBody<"startMembership">) };
    },
    async getMembership(ctx) {
      return { status: 200, body: await memberships.getMembership(partnerOf(ctx), String(ctx.params.membershipId)) };
    },
    async receiveStripeWebhook(ctx) {
      // The signature covers the exact bytes Stripe sent, kept by the router's JSON parser.
      const raw = (ctx.req as unknown as { rawBody?: Buffer }).rawBody;
      return { status: 200, body: await memberships.handleWebhook(raw, ctx.headers["stripe-signature"]) };
    },
  };
}
