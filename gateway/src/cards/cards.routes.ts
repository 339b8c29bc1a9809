import type { OpBody } from "../http/contract-types.ts";
import type { Handlers } from "../http/router.ts";
import type { CardsService } from "./cards.service.ts";

/** Partner API for co-branded loyalty cards. */
export function cardsRoutes(svc: CardsService): Handlers {
  return {
    async listMemberCards(ctx) {
      return { status: 200, body: { items: await svc.listForMember(ctx.principal.partnerId!, String(ctx.params.memberId)) } };
    },
    async issueCard(ctx) {
      const card = await svc.issue(ctx.principal.partnerId!, String(ctx.params.memberId), ctx.body as OpBody<"issueCard">);
      return { status: 201, body: card, headers: { "Cache-Control": "no-store" } };
    },
    async lookupCard(ctx) {
      const b = ctx.body as OpBody<"lookupCard">;
      return { status: 200, body: await svc.lookup(ctx.principal.partnerId!, b.card_number) };
    },
    async setCardStatus(ctx) {
      return { status: 200, body: await svc.setStatus(ctx.principal.partnerId!, String(ctx.params.cardId), ctx.body as OpBody<"setCardStatus">) };
    },
    async replaceCard(ctx) {
      const b = (ctx.body ?? {}) as OpBody<"replaceCard">;
      return { status: 201, body: await svc.replace(ctx.principal.partnerId!, String(ctx.params.cardId), b), headers: { "Cache-Control": "no-store" } };
    },
  };
}
