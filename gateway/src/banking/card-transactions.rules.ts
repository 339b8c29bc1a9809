/**
 * The state of one card purchase is a function of the set of its events (and of the time, for the
 * expiry of an auth that never cleared) — never of the order they arrived in. Ingesting an event
 * recomputes the state from all of them and moves the ledger by the difference, so duplicated and
 * out-of-order events converge to the same balances.
 */

export type CardEventType = "auth" | "clearing" | "reversal" | "refund";
export type PurchaseStatus = "authorized" | "cleared" | "reversed" | "expired" | "refunded";

export interface CardEventFact {
  type: CardEventType;
  amountMinor: bigint;
  transactionAt: Date;
}

export interface PurchaseState {
  status: PurchaseStatus;
  /** Authorised and not reversed (an estimate: not in the ledger). */
  authorizedMinor: bigint;
  /** The sum of the clearings: what the member finally paid. */
  clearedMinor: bigint;
  /** Refunds, never more than what cleared. */
  refundedMinor: bigint;
  /** The purchase's time: the earliest transaction time of its auths and clearings. */
  transactionAt: Date | null;
}

const sum = (xs: CardEventFact[]) => xs.reduce((s, e) => s + e.amountMinor, 0n);
const DAY_MS = 86_400_000;

/**
 * - a clearing makes the purchase cleared, at the sum of its clearings (a drift from the auth
 *   counts the cleared amount); reversals then no longer matter (a cleared purchase is undone by
 *   a refund);
 * - refunds count up to the cleared amount; refunding all of it makes the purchase `refunded`;
 *   a refund that arrives before its clearing waits for it;
 * - without a clearing: auths less reversals; nothing left is `reversed`; an auth older than
 *   `authExpiryDays` at `now` is `expired`.
 */
export function derivePurchase(events: CardEventFact[], now: Date, authExpiryDays: number): PurchaseState {
  const of = (t: CardEventType) => events.filter((e) => e.type === t);
  const auths = of("auth");
  const clearings = of("clearing");
  const timed = [...auths, ...clearings].map((e) => e.transactionAt.getTime());
  const transactionAt = timed.length > 0 ? new Date(Math.min(...timed)) : null;
  const cleared = sum(clearings);
  if (clearings.length > 0 && cleared > 0n) {
    const refunded = sum(of("refund")) > cleared ? cleared : sum(of("refund"));
    return { status: refunded === cleared ? "refunded" : "cleared", authorizedMinor: 0n, clearedMinor: cleared, refundedMinor: refunded, transactionAt };
  }
  const open = sum(auths) - sum(of("reversal"));
  const authorized = open > 0n ? open : 0n;
  if (authorized === 0n) return { status: "reversed", authorizedMinor: 0n, clearedMinor: 0n, refundedMinor: 0n, transactionAt };
  const firstAuth = Math.min(...auths.map((e) => e.transactionAt.getTime()));
  const expired = now.getTime() >= firstAuth + authExpiryDays * DAY_MS;
  return { status: expired ? "expired" : "authorized", authorizedMinor: expired ? 0n : authorized, clearedMinor: 0n, refundedMinor: 0n, transactionAt };
}

/**
 * What of a reward a purchase keeps after refunds, in proportion to what is left of the cleared
 * amount. Rule: floor(reward × (cleared − refunded) ÷ cleared) — the clawback rounds up, so the
 * member never keeps a fraction of a unit for money that went back.
 */
export function keptReward(reward: bigint, clearedMinor: bigint, refundedMinor: bigint): bigint {
  if (clearedMinor === 0n) return 0n;
  return (reward * (clearedMinor - refundedMinor)) / clearedMinor;
}

/** Minor units per major unit, for the currencies whose exponent is not 2 (ISO 4217). */
const EXPONENT: Record<string, number> = { JPY: 0, KRW: 0, ISK: 0, HUF: 2, BHD: 3, KWD: 3, JOD: 3, OMR: 3, TND: 3 };
export function minorPerUnit(currency: string): bigint {
  return 10n ** BigInt(EXPONENT[currency] ?? 2);
}

/**
 * Round-up of one cleared purchase: up to the next `roundToUnits` whole units of the currency,
 * times the multiplier. An amount already on the boundary rounds up by nothing.
 */
export function roundUp(amountMinor: bigint, currency: string, roundToUnits: number, multiplier: number): bigint {
  const step = minorPerUnit(currency) * BigInt(roundToUnits);
  const rest = amountMinor % step;
  return rest === 0n ? 0n : (step - rest) * BigInt(multiplier);
}

/** The Monday (UTC) of the week of `at`, as YYYY-MM-DD: the weekly cap's window. */
export function weekOf(at: Date): string {
  const d = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()));
  const dow = (d.getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  return new Date(d.getTime() - dow * DAY_MS).toISOString().slice(0, 10);
}

/** Normalises a merchant name for matching: case, accents, punctuation, store numbers and legal forms go. */
export function normaliseMerchantName(name: string): string {
  return name
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9 ]+/g, " ")
    .replace(/\b(sia|as|ltd|llc|inc|gmbh|oy|ab|sa|srl|plc|ooo|store|shop)\b/g, " ")
    .replace(/\b\d+\b/g, " ")
    .replace(/\s+/g, " ")
    .trim();
}
