import { defineErrors } from "../http/problem.ts";
import { luhnValid } from "../cards/luhn.ts";

export const panErrors = defineErrors({
  "pan-refused": { status: 422, title: "The request carries what looks like a full card number" },
});

const RUN = /\d+(?:[ -]\d+)*/g;

/**
 * True when `text` contains a Luhn-valid sequence of 13 to 19 digits, written plain or in groups
 * separated by single spaces or dashes ("4111 1111 1111 1111", "4111-1111-1111-1111"). Inside one
 * run of groups every contiguous span of whole groups is tried, so a PAN followed by a year
 * ("4111 1111 1111 1111 2027") is caught; a plain run of digits is tried as a whole only — every
 * 13-digit window of a long numeric id would pass Luhn one time in ten.
 */
export function containsPan(text: string): boolean {
  for (const m of text.matchAll(RUN)) {
    const groups = m[0].split(/[ -]/);
    for (let i = 0; i < groups.length; i++) {
      let digits = "";
      for (let j = i; j < groups.length; j++) {
        digits += groups[j];
        if (digits.length > 19) break;
        if (digits.length >= 13 && luhnValid(digits)) return true;
      }
    }
  }
  return false;
}

function numberText(n: number): string {
  // 19-digit numbers print in exponent form; their integer digits are what a PAN scan must see.
  return Number.isInteger(n) && Math.abs(n) >= 1e12 ? BigInt(n).toString() : String(n);
}

/** The pointer of the first field (any depth, keys included) that carries a PAN, or null. */
export function findPan(value: unknown, where = "body", depth = 0): string | null {
  if (depth > 64) return null;
  if (typeof value === "string") return containsPan(value) ? where : null;
  if (typeof value === "number" || typeof value === "bigint") return containsPan(typeof value === "number" ? numberText(value) : value.toString()) ? where : null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const hit = findPan(value[i], `${where}/${i}`, depth + 1);
      if (hit) return hit;
    }
    return null;
  }
  if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      // A key is named by its position, never echoed: the key itself may be the number.
      if (containsPan(k)) return `${where}/(a key)`;
      const hit = findPan(v, `${where}/${k}`, depth + 1);
      if (hit) return hit;
    }
  }
  return null;
}

/**
 * Refuses a request that carries a full card number anywhere — path, query or body, including the
 * raw text of CSV and NDJSON files — before it is validated, stored or logged. The problem names
 * the field, never the value (a validation error would echo neither, but this runs first anyway).
 */
export function assertNoPan(parts: { params?: unknown; query?: unknown; body?: unknown }): void {
  const hit = findPan(parts.params, "path") ?? findPan(parts.query, "query") ?? findPan(parts.body, "body");
  if (hit) {
    throw panErrors.make(
      "pan-refused",
      `${hit} contains a Luhn-valid 13–19 digit number. The hub never accepts a full card number (PAN): send the bank's card token or keyed fingerprint, the BIN and the last four digits. Nothing of this request was stored.`,
      { errors: [{ field: hit, reason: "looks like a full card number (PAN)" }] },
    );
  }
}
