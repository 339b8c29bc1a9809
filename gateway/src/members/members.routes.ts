import type { OpBody } from "../http/contract-types.ts";
import type { HandlerContext, Handlers } from "../http/router.ts";
import { actorOf } from "../partners/partners.routes.ts";
import type { MembersService, Viewer } from "./members.service.ts";
import type { createProgrammeService } from "./programme.service.ts";

function partnerOf(ctx: HandlerContext): Viewer & { kind: "partner" } {
  return { kind: "partner", partnerId: ctx.principal.partnerId! };
}

/** Partner API for members, and the operator's programme settings, export and erasure. */
export function membersRoutes(svc: MembersService, programme: ReturnType<typeof createProgrammeService>): Handlers {
  return {
    async enrolMember(ctx) {
      const r = await svc.enrol(ctx.principal.partnerId!, ctx.body as OpBody<"enrolMember">);
      return { status: r.created ? 201 : 200, body: { outcome: r.created ? "created" : "linked_existing", matched_by: r.matched_by, member: r.member } };
    },
    async getMember(ctx) {
      return { status: 200, body: await svc.get(partnerOf(ctx), String(ctx.params.memberId)) };
    },
    async updateMember(ctx) {
      return { status: 200, body: await svc.updateProfile(ctx.principal.partnerId!, String(ctx.params.memberId), ctx.body as OpBody<"updateMember">) };
    },
    async recordConsent(ctx) {
      return { status: 201, body: { items: await svc.recordConsent(ctx.principal.partnerId!, String(ctx.params.memberId), ctx.body as OpBody<"recordConsent">) } };
    },
    async exportMember(ctx) {
      return { status: 200, body: await svc.export(partnerOf(ctx), String(ctx.params.memberId)), headers: { "Cache-Control": "no-store" } };
    },
    async eraseMember(ctx) {
      const b = (ctx.body ?? {}) as OpBody<"eraseMember">;
      return { status: 200, body: await svc.erase(actorOf(ctx), partnerOf(ctx), String(ctx.params.memberId), b.reason ?? null) };
    },
    async exportMemberAdmin(ctx) {
      return { status: 200, body: await svc.export({ kind: "admin" }, String(ctx.params.memberId)), headers: { "Cache-Control": "no-store" } };
    },
    async eraseMemberAdmin(ctx) {
      const b = (ctx.body ?? {}) as OpBody<"eraseMember">;
      return { status: 200, body: await svc.erase(actorOf(ctx), { kind: "admin" }, String(ctx.params.memberId), b.reason ?? null) };
    },
    async getProgramme() {
      return { status: 200, body: await programme.get() };
    },
    async updateProgramme(ctx) {
      return { status: 200, body: await programme.update(actorOf(ctx), ctx.body as OpBody<"updateProgramme">) };
    },
  };
}
