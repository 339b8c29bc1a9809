import type { HubDeps } from "../hub.ts";
import type { CardTransactionsService } from "./card-transactions.service.ts";
import type { CashbackService } from "./cashback.service.ts";
import type { RoundupService } from "./roundup.service.ts";

const DAY_MS = 86_400_000;
const day = (d: Date) => d.toISOString().slice(0, 10);

/**
 * The banks' daily run, one job per business day (its id carries the day, so several workers or a
 * restart schedule it once): auths past their expiry lapse, cashback past its return period becomes
 * available and payouts are instructed, round-ups are gathered into sweep instructions. Each step
 * is idempotent per day (unique rows per member, bank, currency and day), so a retried job adds
 * nothing. Each run schedules the next, at 03:00 UTC.
 */
export function registerBankingJobs(
  deps: Pick<HubDeps, "queue" | "log" | "clock">,
  services: { transactions: CardTransactionsService; cashback: CashbackService; roundup: RoundupService },
): void {
  const { queue, log, clock } = deps;
  const nextRun = (d: Date) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()) + DAY_MS + 3 * 3_600_000);

  queue.process("banking.daily", async (job) => {
    const now = clock.now();
    const expired = await services.transactions.expireAuths(now);
    const cash = await services.cashback.releaseAndPay(job.data.day, now);
    const sweeps = await services.roundup.instructSweeps(job.data.day, now);
    log.info({ day: job.data.day, expiredAuths: expired, ...cash, sweeps }, "banking daily run");
    const next = nextRun(now);
    await queue.add("banking.daily", { day: day(next) }, { jobId: `banking-daily:${day(next)}`, delayMs: Math.max(0, next.getTime() - now.getTime()) });
  });

  const today = day(clock.now());
  void queue
    .add("banking.daily", { day: today }, { jobId: `banking-daily:${today}` })
    .catch((err: unknown) => log.warn({ err }, "could not schedule the banks' daily run; the next worker start will"));
}
