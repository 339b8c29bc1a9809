/** Card-linked offers: which applies to a purchase, and what it gives. Pure; the service reads the rows. */

export interface OfferRow {
  id: string;
  partner_id: string;
  name: string;
  reward_type: "cashback" | "points";
  cashback_bps: number | null;
  points: bigint | string | null;
  currency: string;
  min_spend_minor: bigint | string;
  max_reward_per_purchase: bigint | string | null;
  max_reward_per_member: bigint | string | null;
  days_of_week: number[];
  starts_at: Date | string;
  ends_at: Date | string | null;
  requires_activation: boolean;
  return_period_days: number;
  status: "active" | "ended";
  created_at: Date | string;
}

const big = (v: bigint | string | number | null | undefined): bigint | null => (v === null || v === undefined ? null : BigInt(v));

/** True when the offer runs at `at` (its window and weekdays, UTC) for this currency. */
export function offerRunsAt(o: OfferRow, at: Date, currency: string): boolean {
  if (o.status !== "active" || o.currency !== currency) return false;
  if (at < new Date(o.starts_at)) return false;
  if (o.ends_at && at >= new Date(o.ends_at)) return false;
  const iso = ((at.getUTCDay() + 6) % 7) + 1;
  return o.days_of_week.length === 0 || o.days_of_week.includes(iso);
}

/**
 * The offer's reward on `amountMinor` (0 below the minimum spend). Cashback rule:
 * floor(amount × bps ÷ 10000), then the per-purchase cap. Points: the offer's fixed points, capped.
 */
export function offerReward(o: OfferRow, amountMinor: bigint): bigint {
  if (amountMinor < BigInt(o.min_spend_minor) || amountMinor === 0n) return 0n;
  const raw = o.reward_type === "cashback" ? (amountMinor * BigInt(o.cashback_bps ?? 0)) / 10000n : BigInt(o.points ?? 0);
  const cap = big(o.max_reward_per_purchase);
  return cap !== null && raw > cap ? cap : raw;
}

/**
 * The best of the offers that run and apply (activated when they need it): a cashback offer before
 * a points offer (money and points do not compare), then the largest reward, then the oldest offer
 * — a stable choice, so reprocessing a purchase picks the same offer.
 */
export function bestOffer(offers: OfferRow[], at: Date, currency: string, amountMinor: bigint, activated: ReadonlySet<string>): { offer: OfferRow; reward: bigint } | null {
  let best: { offer: OfferRow; reward: bigint } | null = null;
  for (const o of offers) {
    if (!offerRunsAt(o, at, currency)) continue;
    if (o.requires_activation && !activated.has(o.id)) continue;
    const reward = offerReward(o, amountMinor);
    if (reward === 0n && amountMinor >= BigInt(o.min_spend_minor)) continue;
    const rank = (x: OfferRow) => (x.reward_type === "cashback" ? 1 : 0);
    if (!best || rank(o) > rank(best.offer) || (rank(o) === rank(best.offer) && (reward > best.reward || (reward === best.reward && o.id < best.offer.id)))) {
      best = { offer: o, reward };
    }
  }
  return best && best.reward > 0n ? best : null;
}

export function offerView(o: OfferRow) {
  return {
    id: o.id,
    partner_id: o.partner_id,
    name: o.name,
    reward_type: o.reward_type,
    cashback_bps: o.cashback_bps,
    points: o.points === null ? null : Number(o.points),
    currency: o.currency,
    min_spend_minor: Number(o.min_spend_minor),
    max_reward_per_purchase: o.max_reward_per_purchase === null ? null : Number(o.max_reward_per_purchase),
    max_reward_per_member: o.max_reward_per_member === null ? null : Number(o.max_reward_per_member),
    days_of_week: o.days_of_week,
    starts_at: new Date(o.starts_at).toISOString(),
    ends_at: o.ends_at ? new Date(o.ends_at).toISOString() : null,
    requires_activation: o.requires_activation,
    return_period_days: o.return_period_days,
    status: o.status,
    created_at: new Date(o.created_at).toISOString(),
  };
}
