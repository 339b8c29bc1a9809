import type { Handlers, HandlerContext } from "../http/router.ts";
import { httpErrors } from "../http/problem.ts";
import type { components } from "../generated/openapi.ts";
import type { WebhooksService } from "./webhooks.service.ts";
import type { DeliveryStatus } from "./webhooks.dal.ts";

type Schemas = components["schemas"];

/** The calling partner; webhook operations are partner-only (the contract admits no other audience). */
function partnerOf(ctx: HandlerContext): string {
  const id = ctx.principal.partnerId;
  if (!id) throw httpErrors.make("forbidden", "Only a partner's token manages webhooks.");
  return id;
}

export function webhooksRoutes(deps: { webhooks: WebhooksService }): Handlers {
  const svc = deps.webhooks;
  return {
    async listWebhookEndpoints(ctx) {
      return { status: 200, body: { items: await svc.listEndpoints(partnerOf(ctx)) } };
    },
    async createWebhookEndpoint(ctx) {
      const body = ctx.body as Schemas["WebhookEndpointCreate"];
      return { status: 201, body: await svc.createEndpoint(partnerOf(ctx), body) };
    },
    async getWebhookEndpoint(ctx) {
      return { status: 200, body: await svc.getEndpoint(partnerOf(ctx), ctx.params.endpointId as string) };
    },
    async updateWebhookEndpoint(ctx) {
      const body = ctx.body as Schemas["WebhookEndpointUpdate"];
      return { status: 200, body: await svc.updateEndpoint(partnerOf(ctx), ctx.params.endpointId as string, body) };
    },
    async deleteWebhookEndpoint(ctx) {
      await svc.deleteEndpoint(partnerOf(ctx), ctx.params.endpointId as string);
      return { status: 204 };
    },
    async rotateWebhookSecret(ctx) {
      const body = (ctx.body ?? {}) as Schemas["WebhookSecretRotation"];
      return { status: 200, body: await svc.rotateSecret(partnerOf(ctx), ctx.params.endpointId as string, body.overlap_seconds) };
    },
    async listWebhookDeliveries(ctx) {
      const q = ctx.query as { status?: DeliveryStatus; cursor?: string; limit?: number };
      return { status: 200, body: await svc.listDeliveries(partnerOf(ctx), ctx.params.endpointId as string, q) };
    },
    async getWebhookDelivery(ctx) {
      return { status: 200, body: await svc.getDelivery(partnerOf(ctx), ctx.params.endpointId as string, ctx.params.deliveryId as string) };
    },
    async replayWebhookDelivery(ctx) {
      return { status: 202, body: await svc.replayDelivery(partnerOf(ctx), ctx.params.endpointId as string, ctx.params.deliveryId as string) };
    },
  };
}
