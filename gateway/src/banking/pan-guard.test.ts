import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { generateCardNumber } from "../cards/luhn.ts";
import { containsPan, findPan } from "./pan-guard.ts";
import { derivePurchase, keptReward, normaliseMerchantName, roundUp, weekOf } from "./card-transactions.rules.ts";

describe("PAN guard", () => {
  it("finds Luhn-valid 13–19 digit numbers, plain, spaced, dashed, inside text", () => {
    for (const pan of ["4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005", "6011111111111117", "4222222222222", "x 5555555555554444 y"]) {
      expect(containsPan(pan), pan).toBe(true);
    }
    expect(containsPan("4111 1111 1111 1111 2027")).toBe(true);
  });

  it("leaves alone what is not a PAN: Luhn failures, short or long runs, dates, amounts", () => {
    for (const s of ["4111111111111112", "411111111111", "2026-11-22T10:00:00Z", "12345.67", "tok_abc123", "41111111111111111111111"]) {
      expect(containsPan(s), s).toBe(false);
    }
  });

  it("finds any generated card number of 13 to 19 digits wherever it hides, and names the field, never the value", () => {
    fc.assert(
      fc.property(fc.integer({ min: 13, max: 19 }), fc.constantFrom("", " ", "-"), fc.array(fc.string(), { maxLength: 3 }), (len, sep, path) => {
        const pan = generateCardNumber("4", len);
        const written = sep ? pan.replace(/(\d{4})(?=\d)/g, `$1${sep}`) : pan;
        let body: unknown = { note: `paid with ${written} today` };
        for (const k of path) body = { [`k${k.replace(/\d/g, "")}`]: [body] };
        const hit = findPan(body);
        expect(hit).not.toBeNull();
        expect(hit).not.toContain(pan.slice(0, 6));
      }),
    );
    expect(findPan({ a: [1, { b: 4111111111111111 }] })).toBe("body/a/1/b");
  });
});

describe("purchase rules", () => {
  const at = new Date("2026-11-02T10:00:00Z");
  const e = (type: "auth" | "clearing" | "reversal" | "refund", amount: number) => ({ type, amountMinor: BigInt(amount), transactionAt: at });

  it("derives the state from the set of events", () => {
    const now = new Date("2026-11-03T00:00:00Z");
    expect(derivePurchase([e("auth", 100)], now, 7).status).toBe("authorized");
    expect(derivePurchase([e("auth", 100), e("reversal", 100)], now, 7).status).toBe("reversed");
    expect(derivePurchase([e("reversal", 100), e("auth", 100), e("clearing", 90)], now, 7)).toMatchObject({ status: "cleared", clearedMinor: 90n });
    expect(derivePurchase([e("refund", 200), e("clearing", 90)], now, 7)).toMatchObject({ status: "refunded", refundedMinor: 90n });
    expect(derivePurchase([e("auth", 100)], new Date("2026-11-09T10:00:00Z"), 7).status).toBe("expired");
  });

  it("names its roundings", () => {
    expect(keptReward(492n, 9845n, 4000n)).toBe(292n);
    expect(roundUp(1230n, "EUR", 1, 2)).toBe(140n);
    expect(roundUp(1000n, "EUR", 1, 1)).toBe(0n);
    expect(roundUp(1230n, "EUR", 10, 1)).toBe(770n);
    expect(roundUp(1230n, "JPY", 1, 1)).toBe(0n);
    expect(weekOf(new Date("2026-11-08T23:59:00Z"))).toBe("2026-11-02");
    expect(normaliseMerchantName("ZELTA DEGVIELA SIA #042")).toBe("zelta degviela");
  });
});
