import type { BasketLine } from "../earn/earn.rules.ts";

/**
 * The rule engine: given the active rules and the facts of one purchase, which rules apply, in
 * which order, and how many points each gives. Pure except for the questions it asks `RuleState`
 * (how many purchases before this one, how much a rule already gave), so the live earn path and
 * the simulation over past transactions run the very same code.
 *
 * Order and stacking, fixed and documented (docs/programme-rules.md):
 *  1. The contract's base rate (the earn service's own line) is always first.
 *  2. Rules by (priority ascending, id ascending). Each rule's points are computed on the base
 *     figures of the purchase, never on another rule's points, so order changes nothing but
 *     stacking groups and caps.
 *  3. Within one `stack_group` only the first rule that gives points counts; the rest are skipped.
 *  4. Caps cut a rule's points after its own computation (per member and for the whole rule, per
 *     period).
 *  5. Last, the member's tier multiplier, on the contract base points.
 * Every amount of points is rounded down (floor) on its own line.
 */

export const RULE_TYPES = ["base_rate", "multiplier", "nth_purchase", "first_purchase", "birthday", "referral", "custom_event", "fixed_bonus"] as const;
export type RuleType = (typeof RULE_TYPES)[number];
export type CapPeriod = "rule" | "day" | "week" | "month" | "year";

export type Target = { kind: "all" } | { kind: "tier"; tiers: string[] } | { kind: "segment"; segments: string[] };

export interface Caps {
  period?: CapPeriod;
  member_points?: number;
  member_times?: number;
  total_points?: number;
}

export interface RuleDef {
  id: string;
  ownerPartnerId: string | null;
  name: string;
  type: RuleType;
  priority: number;
  stackGroup: string | null;
  validFrom: Date;
  validUntil: Date | null;
  target: Target;
  partnerIds: string[] | null;
  params: Record<string, unknown>;
  caps: Caps;
}

export interface PurchaseFacts {
  partnerId: string;
  memberId: string;
  occurredAt: Date;
  earnableMinor: bigint;
  lines: BasketLine[];
  earnPoints: bigint;
  earnPerMinor: bigint;
  /** The contract base points of this purchase. */
  basePoints: bigint;
  tierCode: string | null;
  tierMultiplierBp: number;
  segments: ReadonlySet<string>;
  dateOfBirth: string | null;
}

export interface RuleState {
  /** Purchases (earn or purchase transactions) of the member before this one, in [from, before), at `partners` (all when null). */
  purchasesBetween(memberId: string, partners: string[] | null, from: Date | null, before: Date): Promise<number>;
  /** Points and times a rule gave in [from, to), to one member or (memberId null) to all. */
  usage(ruleId: string, memberId: string | null, from: Date, to: Date): Promise<{ points: bigint; times: number }>;
}

export interface RuleItem {
  kind: string;
  rule_id: string | null;
  rule_name?: string;
  funded_by: string;
  description: string;
  amount_minor: number;
  points: number;
  rounding: string;
  capped_from?: number;
}

const DAY_MS = 86_400_000;

/** The UTC calendar period containing `at` ("rule": the rule's whole validity). */
export function periodOf(period: CapPeriod, at: Date, rule: Pick<RuleDef, "validFrom" | "validUntil">): { from: Date; to: Date } {
  const y = at.getUTCFullYear();
  const m = at.getUTCMonth();
  const d = at.getUTCDate();
  switch (period) {
    case "day":
      return { from: new Date(Date.UTC(y, m, d)), to: new Date(Date.UTC(y, m, d + 1)) };
    case "week": {
      // ISO weeks start on Monday.
      const dow = (at.getUTCDay() + 6) % 7;
      const from = new Date(Date.UTC(y, m, d - dow));
      return { from, to: new Date(from.getTime() + 7 * DAY_MS) };
    }
    case "month":
      return { from: new Date(Date.UTC(y, m, 1)), to: new Date(Date.UTC(y, m + 1, 1)) };
    case "year":
      return { from: new Date(Date.UTC(y, 0, 1)), to: new Date(Date.UTC(y + 1, 0, 1)) };
    case "rule":
      return { from: rule.validFrom, to: rule.validUntil ?? new Date("9999-12-31T00:00:00Z") };
  }
}

const floorDiv = (a: bigint, b: bigint) => a / b;
const num = (v: unknown, dflt = 0) => (typeof v === "number" && Number.isFinite(v) ? v : dflt);
const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);

export function fundedBy(rule: Pick<RuleDef, "ownerPartnerId">): string {
  return rule.ownerPartnerId ? `partner:${rule.ownerPartnerId}` : "operator";
}

/** The partners at which a rule's purchases count: the owner's own, or the operator's list (null: all). */
export function partnerScope(rule: Pick<RuleDef, "ownerPartnerId" | "partnerIds">): string[] | null {
  if (rule.ownerPartnerId) return [rule.ownerPartnerId];
  return rule.partnerIds && rule.partnerIds.length > 0 ? rule.partnerIds : null;
}

/** Whether a rule may apply to this purchase at all: window, partner, target. */
export function ruleMatches(rule: RuleDef, f: Pick<PurchaseFacts, "partnerId" | "occurredAt" | "tierCode" | "segments">): boolean {
  if (f.occurredAt < rule.validFrom) return false;
  if (rule.validUntil && f.occurredAt >= rule.validUntil) return false;
  const scope = partnerScope(rule);
  if (scope && !scope.includes(f.partnerId)) return false;
  switch (rule.target.kind) {
    case "all":
      return true;
    case "tier":
      return f.tierCode !== null && rule.target.tiers.includes(f.tierCode);
    case "segment":
      return rule.target.segments.some((s) => f.segments.has(s));
  }
}

/** Lines whose amount a multiplier counts: those matching its categories or SKUs (all when none given). */
function matchingMinor(rule: RuleDef, f: PurchaseFacts): bigint {
  const cats = strs(rule.params.categories);
  const skus = strs(rule.params.skus);
  if (cats.length === 0 && skus.length === 0) return f.earnableMinor;
  let sum = 0n;
  let all = 0n;
  for (const l of f.lines) {
    all += BigInt(l.amount_minor);
    if ((l.category && cats.includes(l.category)) || (l.sku && skus.includes(l.sku))) sum += BigInt(l.amount_minor);
  }
  // When part was paid with points the lines sum to more than the earnable amount: scale pro rata, floor.
  if (all > f.earnableMinor && all > 0n) sum = (sum * f.earnableMinor) / all;
  return sum;
}

function isBirthday(dob: string | null, at: Date, on: string): boolean {
  if (!dob) return false;
  const [, mm, dd] = dob.split("-").map(Number);
  if (at.getUTCMonth() + 1 !== mm) return false;
  return on === "month" || at.getUTCDate() === dd;
}

/** The raw points of one rule on one purchase (before caps), with what it was computed on; null when it does not apply. */
async function rawPoints(rule: RuleDef, f: PurchaseFacts, state: RuleState): Promise<{ points: bigint; amount: bigint; description: string; rounding: string } | null> {
  const p = rule.params;
  switch (rule.type) {
    case "base_rate": {
      const pts = BigInt(num(p.points));
      const per = BigInt(num(p.per_minor, 1));
      const min = BigInt(num(p.min_amount_minor));
      if (f.earnableMinor < min) return null;
      return {
        points: floorDiv(f.earnableMinor * pts, per),
        amount: f.earnableMinor,
        description: `${pts} point(s) per ${per} minor units`,
        rounding: "floor(amount_minor × points ÷ per_minor)",
      };
    }
    case "multiplier": {
      const bp = BigInt(num(p.multiplier_bp, 10_000));
      const amount = matchingMinor(rule, f);
      if (amount <= 0n || bp <= 10_000n) return null;
      const lineBase = floorDiv(amount * f.earnPoints, f.earnPerMinor);
      return {
        points: floorDiv(lineBase * (bp - 10_000n), 10_000n),
        amount,
        description: `×${Number(bp) / 10_000} on ${strs(p.categories).concat(strs(p.skus)).join(", ") || "the basket"} (the extra over the base rate)`,
        rounding: "floor(floor(matching_minor × earn_points ÷ earn_per_minor) × (multiplier_bp − 10000) ÷ 10000)",
      };
    }
    case "nth_purchase": {
      const n = num(p.every, 0);
      if (n < 1) return null;
      const period = (p.period as CapPeriod | undefined) ?? "month";
      const { from } = periodOf(period, f.occurredAt, rule);
      const before = await state.purchasesBetween(f.memberId, partnerScope(rule), from, f.occurredAt);
      if ((before + 1) % n !== 0) return null;
      const bp = BigInt(num(p.percent_bp));
      const pointValue = BigInt(num(p.point_value_minor, 1));
      return {
        points: floorDiv(f.earnableMinor * bp, 10_000n * pointValue),
        amount: f.earnableMinor,
        description: `purchase ${before + 1} this ${period}: ${Number(bp) / 100}% back as points worth ${pointValue} minor unit(s) each`,
        rounding: "floor(amount_minor × percent_bp ÷ (10000 × point_value_minor))",
      };
    }
    case "first_purchase": {
      const before = await state.purchasesBetween(f.memberId, partnerScope(rule), null, f.occurredAt);
      if (before > 0) return null;
      if (f.earnableMinor < BigInt(num(p.min_amount_minor))) return null;
      return { points: BigInt(num(p.points)), amount: f.earnableMinor, description: "first purchase bonus", rounding: "fixed points" };
    }
    case "birthday": {
      const on = p.on === "day" ? "day" : "month";
      if (!isBirthday(f.dateOfBirth, f.occurredAt, on)) return null;
      // Once a year, whatever the caps say.
      const y = periodOf("year", f.occurredAt, rule);
      if ((await state.usage(rule.id, f.memberId, y.from, y.to)).times > 0) return null;
      return { points: BigInt(num(p.points)), amount: f.earnableMinor, description: `birthday bonus (in the birthday ${on})`, rounding: "fixed points" };
    }
    case "fixed_bonus": {
      if (f.earnableMinor < BigInt(num(p.min_amount_minor))) return null;
      return { points: BigInt(num(p.points)), amount: f.earnableMinor, description: "fixed bonus per qualifying purchase", rounding: "fixed points" };
    }
    case "referral":
    case "custom_event":
      // Given outside a purchase (a job and an API), never on the purchase itself.
      return null;
  }
}

/** Cuts `points` to what the rule's caps still allow in the period of `at`. */
export async function applyCaps(rule: RuleDef, memberId: string, at: Date, points: bigint, state: RuleState): Promise<bigint> {
  const c = rule.caps;
  if (c.member_points === undefined && c.member_times === undefined && c.total_points === undefined) return points;
  const { from, to } = periodOf(c.period ?? "rule", at, rule);
  let allowed = points;
  if (c.member_points !== undefined || c.member_times !== undefined) {
    const used = await state.usage(rule.id, memberId, from, to);
    if (c.member_times !== undefined && used.times >= c.member_times) return 0n;
    if (c.member_points !== undefined) allowed = min(allowed, BigInt(c.member_points) - used.points);
  }
  if (c.total_points !== undefined) {
    const used = await state.usage(rule.id, null, from, to);
    allowed = min(allowed, BigInt(c.total_points) - used.points);
  }
  return allowed > 0n ? allowed : 0n;
}

const min = (a: bigint, b: bigint) => (a < b ? a : b);

/** Sorts rules into the one order they are applied in. */
export function ruleOrder(a: Pick<RuleDef, "priority" | "id">, b: Pick<RuleDef, "priority" | "id">): number {
  return a.priority - b.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Applies the rules (already filtered to active ones) to one purchase; the contract base is not included. */
export async function applyRules(rules: RuleDef[], f: PurchaseFacts, state: RuleState): Promise<RuleItem[]> {
  const items: RuleItem[] = [];
  const groupsTaken = new Set<string>();
  for (const rule of [...rules].sort(ruleOrder)) {
    if (!ruleMatches(rule, f)) continue;
    if (rule.stackGroup && groupsTaken.has(rule.stackGroup)) continue;
    const raw = await rawPoints(rule, f, state);
    if (!raw || raw.points <= 0n) continue;
    const points = await applyCaps(rule, f.memberId, f.occurredAt, raw.points, state);
    if (points > 0n && rule.stackGroup) groupsTaken.add(rule.stackGroup);
    items.push({
      kind: rule.type,
      rule_id: rule.id,
      rule_name: rule.name,
      funded_by: fundedBy(rule),
      description: `${rule.name}: ${raw.description}`,
      amount_minor: Number(raw.amount),
      points: Number(points),
      rounding: raw.rounding,
      ...(points < raw.points ? { capped_from: Number(raw.points) } : {}),
    });
  }
  const tierExtra = floorDiv(f.basePoints * BigInt(Math.max(f.tierMultiplierBp - 10_000, 0)), 10_000n);
  if (f.tierCode && tierExtra > 0n) {
    items.push({
      kind: "tier_multiplier",
      rule_id: null,
      funded_by: "operator",
      description: `tier ${f.tierCode}: ×${f.tierMultiplierBp / 10_000} on the base points (the extra)`,
      amount_minor: Number(f.earnableMinor),
      points: Number(tierExtra),
      rounding: "floor(base_points × (multiplier_bp − 10000) ÷ 10000)",
    });
  }
  return items;
}
