import type { HubDeps } from "../hub.ts";
import type { RulesService } from "./rules.service.ts";
import type { TiersService } from "./tiers.service.ts";
import type { MembershipService } from "./membership.service.ts";

const DAY_MS = 86_400_000;
const day = (d: Date) => d.toISOString().slice(0, 10);

/**
 * The daily rules run: referral bonuses whose first purchase has cleared, one-off memberships past
 * their paid period, and the tier review (grace periods, downgrades). The job id carries the day, so several workers schedule each day
 * once; each run schedules the next.
 */
export function registerRulesJobs(deps: Pick<HubDeps, "queue" | "log" | "clock">, rules: RulesService, tiers: TiersService, memberships: MembershipService): void {
  const { queue, log, clock } = deps;
  const nextDay = (d: Date) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()) + DAY_MS + 3 * 3_600_000);

  queue.process("rules.daily", async () => {
    const referrals = await rules.runReferrals();
    const expired = await memberships.expireLapsed();
    const review = await tiers.reviewTiers();
    log.info({ referralAwards: referrals.awarded, expiredMemberships: expired, ...review }, "rules daily run");
    const next = nextDay(clock.now());
    await queue.add("rules.daily", { day: day(next) }, { jobId: `rules-daily:${day(next)}`, delayMs: Math.max(0, next.getTime() - clock.now().getTime()) });
  });

  const today = day(clock.now());
  queue.add("rules.daily", { day: today }, { jobId: `rules-daily:${today}` }).catch((err: unknown) => log.warn({ err }, "could not schedule the daily rules run; the next worker start will"));
}
