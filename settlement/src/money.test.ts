import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { decimal, divHalfEven, microsPerMinor, pricePoints, priceShare } from "./money.ts";
import { csvRow, csvText } from "./csv.ts";

describe("half-even division", () => {
  it("rounds ties to the even neighbour and everything else to the nearest", () => {
    expect(divHalfEven(5n, 10n)).toBe(0n);
    expect(divHalfEven(15n, 10n)).toBe(2n);
    expect(divHalfEven(25n, 10n)).toBe(2n);
    expect(divHalfEven(26n, 10n)).toBe(3n);
    expect(divHalfEven(24n, 10n)).toBe(2n);
    expect(divHalfEven(-25n, 10n)).toBe(-2n);
    expect(divHalfEven(-35n, 10n)).toBe(-4n);
  });

  it("is never more than half a unit away and symmetric around zero", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 18n), max: 10n ** 18n }), fc.bigInt({ min: 1n, max: 10n ** 9n }), (n, d) => {
        const q = divHalfEven(n, d);
        const err = n - q * d;
        expect(2n * (err < 0n ? -err : err) <= d).toBe(true);
        expect(divHalfEven(-n, d)).toBe(-q);
      }),
    );
  });
});

describe("pricing", () => {
  it("prices points at micro-unit prices into minor units", () => {
    expect(microsPerMinor("EUR")).toBe(10_000n);
    expect(microsPerMinor("JPY")).toBe(1_000_000n);
    expect(microsPerMinor("KWD")).toBe(1_000n);
    // 100 points at 0.010 = 1.00
    expect(pricePoints(100n, 10_000n, "EUR").minor).toBe(100n);
    // 125 points at 0.0084 = 1.05 exactly; 123 points = 1.0332 → 1.03
    expect(pricePoints(125n, 8_400n, "EUR").minor).toBe(105n);
    expect(pricePoints(123n, 8_400n, "EUR").minor).toBe(103n);
    // 5 points at 0.001 = 0.005 → tie → 0.00 (even); 15 points → 0.015 → 0.02
    expect(pricePoints(5n, 1_000n, "EUR").minor).toBe(0n);
    expect(pricePoints(15n, 1_000n, "EUR").minor).toBe(2n);
  });

  it("prices a breakage share once on the line's exact value", () => {
    // 70 points funded at 0.010 = 0.70, 30% share = 0.21
    expect(priceShare(70n, 10_000n, 3_000n, "EUR").minor).toBe(21n);
    // 33 points at 0.010 = 0.33 × 25% = 0.0825 → 0.08
    expect(priceShare(33n, 10_000n, 2_500n, "EUR").minor).toBe(8n);
  });

  it("writes exact values as decimals", () => {
    expect(decimal(1_033_200n, 6)).toBe("1.033200");
    expect(decimal(5n, 6)).toBe("0.000005");
    expect(decimal(-1_500_000n, 6)).toBe("-1.500000");
  });
});

describe("csv", () => {
  it("quotes what must be quoted and defuses formulas", () => {
    expect(csvText('a,"b"')).toBe('"a,""b"""');
    expect(csvText("=SUM(A1)")).toBe("'=SUM(A1)");
    expect(csvText("line\nbreak")).toBe('"line\nbreak"');
    expect(csvText(null)).toBe("");
    expect(csvRow(["x", -5n, 3, null])).toBe("x,-5,3,\r\n");
  });
});
