import type { HubDeps } from "../hub.ts";
import type { EarnService } from "./earn.service.ts";

const DAY_MS = 86_400_000;
const day = (d: Date) => d.toISOString().slice(0, 10);

/**
 * The ledger's jobs: a hold's own expiry (enqueued through the outbox when the hold is made), and a
 * daily run — lots to breakage, expiring-soon notices, any hold a lost job left behind — plus the
 * daily idempotency-key sweep (triggered by the daily run). Daily jobs carry the day in their id, so registering twice, or on
 * several workers, schedules each day once; each run schedules the next.
 */
export function registerEarnJobs(deps: Pick<HubDeps, "queue" | "log" | "clock">, earn: EarnService): void {
  const { queue, log, clock } = deps;
  const nextDay = (d: Date) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()) + DAY_MS + 2 * 3_600_000);

  queue.process("ledger.redemption-expire", async (job) => {
    await earn.expireHold(job.data.redemptionId);
  });

  queue.process("ledger.points-expiry", async () => {
    for (const id of await earn.dueHolds()) await earn.expireHold(id);
    const res = await earn.runExpiry();
    log.info({ expiredPoints: res.expiredPoints.toString(), members: res.members, announcedLots: res.announcedLots }, "points expiry ran");
    // The daily run also triggers the idempotency-key sweep (system jobs; keys are kept 48 h).
    await queue.add("system.idempotency-sweep", {}, { jobId: `idempotency-sweep:${day(clock.now())}` });
    const next = nextDay(clock.now());
    await queue.add("ledger.points-expiry", { day: day(next) }, { jobId: `points-expiry:${day(next)}`, delayMs: Math.max(0, next.getTime() - clock.now().getTime()) });
  });

  const today = day(clock.now());
  void Promise.all([
    queue.add("ledger.points-expiry", { day: today }, { jobId: `points-expiry:${today}` }),
    queue.add("system.idempotency-sweep", {}, { jobId: `idempotency-sweep:${today}` }),
  ]).catch((err: unknown) => log.warn({ err }, "could not schedule the daily ledger jobs; the next worker start will"));
}
