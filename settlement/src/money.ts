/**
 * Exact money for clearing. Contract prices are micro-units of the currency per point; statements
 * are in minor units. Every amount is a bigint; the one rounding is half-even (banker's rounding),
 * applied once per statement line on the line's exact total, never per transaction.
 */

/** ISO 4217 minor-unit exponents that are not 2; every other currency has 2. */
const EXPONENTS: Record<string, number> = {
  BIF: 0, CLP: 0, DJF: 0, GNF: 0, ISK: 0, JPY: 0, KMF: 0, KRW: 0, PYG: 0, RWF: 0, UGX: 0, VND: 0, VUV: 0, XAF: 0, XOF: 0, XPF: 0,
  BHD: 3, IQD: 3, JOD: 3, KWD: 3, LYD: 3, OMR: 3, TND: 3,
};

export function minorExponent(currency: string): number {
  return EXPONENTS[currency] ?? 2;
}

/** Micro-units per minor unit: 10,000 for a 2-decimal currency (1 cent = 10,000 micros). */
export function microsPerMinor(currency: string): bigint {
  return 10n ** BigInt(6 - minorExponent(currency));
}

/** n ÷ d rounded half to even; d > 0. */
export function divHalfEven(n: bigint, d: bigint): bigint {
  if (d <= 0n) throw new Error("divisor must be positive");
  if (n < 0n) return -divHalfEven(-n, d);
  const q = n / d;
  const r = n % d;
  if (2n * r > d || (2n * r === d && q % 2n === 1n)) return q + 1n;
  return q;
}

/** A non-negative scaled integer as a decimal string: (123456789n, 6) → "123.456789". */
export function decimal(n: bigint, scale: number): string {
  const neg = n < 0n;
  const s = (neg ? -n : n).toString().padStart(scale + 1, "0");
  const body = scale === 0 ? s : `${s.slice(0, -scale)}.${s.slice(-scale)}`;
  return neg ? `-${body}` : body;
}

export interface PricedAmount {
  /** The exact value in the line's exact unit (micros, or micros × bps for shares). */
  exact: bigint;
  /** Scale of `exact` in decimal digits relative to the currency's major unit. */
  exactScale: number;
  /** Rounded to minor units, half-even, not yet signed. */
  minor: bigint;
}

/** points × price micros → minor units, rounded half-even once. */
export function pricePoints(points: bigint, priceMicros: bigint, currency: string): PricedAmount {
  const exact = points * priceMicros;
  return { exact, exactScale: 6, minor: divHalfEven(exact, microsPerMinor(currency)) };
}

/** points × price micros × share bps ÷ 10,000 → minor units, rounded half-even once. */
export function priceShare(points: bigint, priceMicros: bigint, shareBps: bigint, currency: string): PricedAmount {
  const exact = points * priceMicros * shareBps;
  return { exact, exactScale: 10, minor: divHalfEven(exact, microsPerMinor(currency) * 10_000n) };
}
