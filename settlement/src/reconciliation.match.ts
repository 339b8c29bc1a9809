import { minorExponent } from "./money.ts";

/**
 * Matching money that moved to the statements it settles — pure rules, no database.
 *
 * An entry matches an obligation by reference: the end-to-end id (the pain.001 EndToEndId, which is
 * the obligation's reference), or a reference or statement id quoted in the remittance text (a
 * partner paying by transfer types it there). Then by direction (money in settles what a partner
 * owes, money out what it is owed) and currency, and then by amount against what is still due.
 */
export interface StatementEntry {
  /** Position in the file (1-based), or in the fetched list. */
  seq: number;
  /** credit: the operator received money; debit: the operator paid money out. */
  direction: "credit" | "debit";
  amountMinor: bigint;
  currency: string;
  bookingDate: string;
  /** The end-to-end reference carried by the payment, when the rail has one. */
  reference: string | null;
  remittance: string | null;
  counterparty: string | null;
  /** The bank's (AcctSvcrRef) or Stripe's (balance transaction) own id of the entry. */
  entryRef: string | null;
  /** When the rail names the movement itself (a Stripe transfer or invoice): the payment's key. */
  externalKey?: string | null;
  /** Why the entry is not a settlement payment at all (a Stripe payout, a fee). */
  ignored?: string;
}

export type Outcome = "matched" | "short" | "over" | "unexpected";

const REFERENCE = /\b\d{6}[0-9a-z]{26}\b/gi;
const STATEMENT = /\bstm_\d{6}_ptn_[0-9a-z]{26}\b/gi;

/** The references an entry may be quoting, in the order they are trusted. */
export function referenceCandidates(e: Pick<StatementEntry, "reference" | "remittance">): { references: string[]; statementIds: string[] } {
  const references = new Set<string>();
  const statementIds = new Set<string>();
  const ref = e.reference?.trim();
  if (ref && ref !== "NOTPROVIDED") references.add(ref.toLowerCase());
  const text = e.remittance ?? "";
  for (const m of text.matchAll(STATEMENT)) statementIds.add(m[0].toLowerCase());
  for (const m of text.replace(STATEMENT, " ").matchAll(REFERENCE)) references.add(m[0].toLowerCase());
  return { references: [...references], statementIds: [...statementIds] };
}

export interface Expected {
  direction: "payable_to_partner" | "receivable_from_partner";
  currency: string;
  amountDueMinor: bigint;
  /** What other money movements already paid towards it. */
  paidByOthersMinor: bigint;
}

/**
 * What an entry that quotes an obligation's reference is: matched (exactly what is still due),
 * short or over (by `difference`, signed: negative short, positive over), or unexpected when it
 * flows the wrong way or in another currency.
 */
export function classify(e: Pick<StatementEntry, "direction" | "currency" | "amountMinor">, x: Expected): { outcome: Outcome; differenceMinor: bigint | null; why?: string } {
  const wanted = x.direction === "receivable_from_partner" ? "credit" : "debit";
  if (e.direction !== wanted) return { outcome: "unexpected", differenceMinor: null, why: `a ${e.direction} quoting a statement that expects a ${wanted}` };
  if (e.currency !== x.currency) return { outcome: "unexpected", differenceMinor: null, why: `in ${e.currency}, the statement is in ${x.currency}` };
  const expected = x.amountDueMinor - x.paidByOthersMinor;
  const diff = e.amountMinor - expected;
  if (diff === 0n) return { outcome: "matched", differenceMinor: 0n };
  return { outcome: diff < 0n ? "short" : "over", differenceMinor: diff };
}

/** An exact decimal amount ("1234.5", "-0.07") in minor units of `currency`; null if not one. */
export function parseAmountMinor(text: string, currency: string): bigint | null {
  const m = /^([+-]?)(\d{1,18})(?:\.(\d{1,6}))?$/.exec(text.trim());
  if (!m) return null;
  const exp = minorExponent(currency);
  const frac = m[3] ?? "";
  // More decimals than the currency has are refused rather than rounded: a bank never sends them.
  if (frac.replace(/0+$/, "").length > exp) return null;
  const minor = BigInt(m[2]!) * 10n ** BigInt(exp) + BigInt((frac + "0".repeat(exp)).slice(0, exp) || "0");
  return m[1] === "-" ? -minor : minor;
}

/** True for a real calendar day `YYYY-MM-DD` (2026-02-30 is not one: the database would refuse it). */
export function isCalendarDate(d: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(d)) return false;
  const t = Date.parse(`${d}T00:00:00Z`);
  return !Number.isNaN(t) && new Date(t).toISOString().slice(0, 10) === d;
}
