import type { Db } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";

/** Network analytics for the operator (set-based SQL over the ledger and earn tables, read-only). */
export function createAnalyticsService(deps: { db: Db; clock: Clock }) {
  void deps;
  return {};
}

export type AnalyticsService = ReturnType<typeof createAnalyticsService>;
