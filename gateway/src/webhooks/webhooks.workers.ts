import type { HubDeps } from "../hub.ts";
import type { WebhooksService } from "./webhooks.service.ts";

/**
 * The webhook side of the worker role: fan committed events out to deliveries, make delivery
 * attempts, and sweep for deliveries whose job was lost.
 */
export function registerWebhookWorkers(deps: Pick<HubDeps, "queue" | "log" | "config">, service: WebhooksService): { stop(): void } {
  const { queue, log, config } = deps;
  queue.process(
    "events.dispatch",
    async (job) => {
      await service.dispatch(job.data.eventId);
    },
    { concurrency: config.WORKER_CONCURRENCY },
  );
  queue.process(
    "webhooks.deliver",
    async (job) => {
      await service.deliver(job.data.deliveryId, job.data.attempt);
    },
    { concurrency: config.WORKER_CONCURRENCY },
  );
  const timer = setInterval(() => {
    service.sweep(queue).catch((err: unknown) => log.warn({ err: (err as Error).message }, "webhook sweep failed"));
  }, config.WEBHOOK_SWEEP_INTERVAL_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
