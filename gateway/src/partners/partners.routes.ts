import type { OpBody } from "../http/contract-types.ts";
import type { HandlerContext, Handlers } from "../http/router.ts";
import type { Actor } from "./audit.service.ts";
import type { PartnersService } from "./partners.service.ts";
import type { PartnerStatus } from "./partners.dal.ts";

const MAX_AUDIT_ID = 9_223_372_036_854_775_807n;

export function actorOf(ctx: HandlerContext): Actor {
  return { type: ctx.principal.audience, id: ctx.principal.clientId, requestId: ctx.requestId };
}

const str = (v: unknown): string => String(v);

/** The operator's admin API for sectors, partners, locations, contracts and the audit log. */
export function partnersRoutes(svc: PartnersService): Handlers {
  return {
    async listSectors() {
      return { status: 200, body: { items: await svc.listSectors() } };
    },
    async createSector(ctx) {
      return { status: 201, body: await svc.createSector(actorOf(ctx), ctx.body as OpBody<"createSector">) };
    },
    async updateSector(ctx) {
      return { status: 200, body: await svc.updateSector(actorOf(ctx), str(ctx.params.sectorCode), ctx.body as OpBody<"updateSector">) };
    },
    async listPartners(ctx) {
      const q = ctx.query as { status?: string; sector?: string; kind?: string };
      return { status: 200, body: { items: await svc.listPartners(q) } };
    },
    async createPartner(ctx) {
      return { status: 201, body: await svc.createPartner(actorOf(ctx), ctx.body as OpBody<"createPartner">) };
    },
    async getPartner(ctx) {
      return { status: 200, body: await svc.getPartner(str(ctx.params.partnerId)) };
    },
    async updatePartner(ctx) {
      return { status: 200, body: await svc.updatePartner(actorOf(ctx), str(ctx.params.partnerId), ctx.body as OpBody<"updatePartner">) };
    },
    async changePartnerStatus(ctx) {
      const b = ctx.body as OpBody<"changePartnerStatus">;
      return { status: 200, body: await svc.changeStatus(actorOf(ctx), str(ctx.params.partnerId), { ...b, status: b.status as PartnerStatus }) };
    },
    async addPartnerLocation(ctx) {
      return { status: 201, body: await svc.addLocation(actorOf(ctx), str(ctx.params.partnerId), ctx.body as OpBody<"addPartnerLocation">) };
    },
    async removePartnerLocation(ctx) {
      await svc.removeLocation(actorOf(ctx), str(ctx.params.partnerId), str(ctx.params.locationId));
      return { status: 204 };
    },
    async listContractVersions(ctx) {
      return { status: 200, body: { items: await svc.listContractVersions(str(ctx.params.partnerId)) } };
    },
    async createContractVersion(ctx) {
      return { status: 201, body: await svc.createContractVersion(actorOf(ctx), str(ctx.params.partnerId), ctx.body as OpBody<"createContractVersion">) };
    },
    async getContractInForce(ctx) {
      const at = ctx.query.at === undefined ? undefined : new Date(str(ctx.query.at));
      return { status: 200, body: await svc.contractAt(str(ctx.params.partnerId), at) };
    },
    async listAuditLog(ctx) {
      const q = ctx.query as { object_type?: string; object_id?: string; before?: string; limit?: number | string };
      const page = await svc.listAudit({
        ...(q.object_type ? { objectType: q.object_type } : {}),
        ...(q.object_id ? { objectId: q.object_id } : {}),
        // Ids are bigint: a cursor past the largest one reads from the newest (the database refused it as out of range, a 500).
        ...(q.before ? { before: BigInt(q.before) > MAX_AUDIT_ID ? MAX_AUDIT_ID : BigInt(q.before) } : {}),
        limit: q.limit === undefined ? 50 : Number(q.limit),
      });
      return { status: 200, body: page };
    },
  };
}
