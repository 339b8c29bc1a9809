/**
 * How many points a purchase earns. The base rate of the contract in force is the whole rule here;
 * tiers, campaigns and bonuses plug in behind the same interface (the rules feature).
 */

import type { DbOrTrx } from "../infra/db.ts";

export interface ContractTerms {
  id: string;
  version: number;
  currency: string;
  earnPoints: bigint;
  earnPerMinor: bigint;
  pointsValidityDays: number;
  refundPolicy: "negative_balance" | "recovery_entry";
  negativeFloor: bigint;
}

export interface BasketLine {
  sku?: string;
  category?: string;
  amount_minor: number;
}

export interface EarnContext {
  partnerId: string;
  memberId: string;
  contract: ContractTerms;
  /** The amount points are earned on (the cash part when part was paid with points). */
  earnableMinor: bigint;
  currency: string;
  occurredAt: Date;
  lines: BasketLine[];
  /** The connection the earn runs on: its transaction for a real earn, the pool for a dry run. */
  conn?: DbOrTrx;
}

export interface EarnItem {
  kind: string;
  description: string;
  amount_minor: number;
  points: number;
}

export interface EarnComputation {
  points: bigint;
  items: EarnItem[];
}

export interface EarnRules {
  compute(ctx: EarnContext): Promise<EarnComputation>;
  /**
   * For the batched earn: where `whenSql(at)` is true, compute() needs nothing but the contract,
   * and `compute` gives the same answer without the database. `whenSql` builds a boolean SQL
   * expression over `at` (an SQL expression for the purchase's instant, a timestamptz) that the
   * batch evaluates with its other checks. Without it, every earn takes the one-by-one path.
   */
  contractOnly?: { whenSql(at: string): string; compute(ctx: EarnContext): EarnComputation };
}

/** Rounding rule: floor(amount_minor × earn_points ÷ earn_per_minor), on the basket total, once. */
export function basePoints(amountMinor: bigint, earnPoints: bigint, earnPerMinor: bigint): bigint {
  if (amountMinor <= 0n) return 0n;
  return (amountMinor * earnPoints) / earnPerMinor;
}

/** The contract's base rate alone, computed without the database. */
export function baseRateComputation(ctx: EarnContext): EarnComputation {
  const c = ctx.contract;
  const points = basePoints(ctx.earnableMinor, c.earnPoints, c.earnPerMinor);
  return {
    points,
    items: [
      {
        kind: "base_rate",
        description: `${c.earnPoints} point(s) per ${c.earnPerMinor} minor units of ${c.currency} (contract v${c.version}), rounded down on the total`,
        amount_minor: Number(ctx.earnableMinor),
        points: Number(points),
      },
    ],
  };
}

export const baseRateRules: EarnRules = {
  async compute(ctx) {
    return baseRateComputation(ctx);
  },
  contractOnly: { whenSql: () => "true", compute: baseRateComputation },
};
