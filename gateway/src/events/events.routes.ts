import type { Handlers } from "../http/router.ts";
import { httpErrors } from "../http/problem.ts";
import type { EventFeed } from "./events.feed.ts";

export function eventsRoutes(deps: { feed: EventFeed }): Handlers {
  return {
    async listEvents(ctx) {
      const partnerId = ctx.principal.partnerId;
      if (!partnerId) throw httpErrors.make("forbidden", "Only a partner's token reads the event feed.");
      const q = ctx.query as { type?: string[]; since?: string; until?: string; cursor?: string; limit?: number };
      const page = await deps.feed.list(partnerId, {
        ...(q.type ? { types: q.type } : {}),
        ...(q.since ? { since: new Date(q.since) } : {}),
        ...(q.until ? { until: new Date(q.until) } : {}),
        ...(q.cursor ? { cursor: q.cursor } : {}),
        ...(q.limit ? { limit: q.limit } : {}),
      });
      return { status: 200, body: page };
    },
  };
}
