import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { basePoints } from "./earn.rules.ts";

describe("the base earn rate", () => {
  it("rounds down on the total", () => {
    expect(basePoints(100_000n, 1n, 1_000n)).toBe(100n);
    expect(basePoints(99_999n, 1n, 1_000n)).toBe(99n);
    expect(basePoints(999n, 1n, 1_000n)).toBe(0n);
    expect(basePoints(0n, 5n, 100n)).toBe(0n);
  });

  it("never gives more than the exact rate, and less by under one point", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 12n }), fc.bigInt({ min: 0n, max: 1000n }), fc.bigInt({ min: 1n, max: 100_000n }), (amt, p, per) => {
        const pts = basePoints(amt, p, per);
        expect(pts * per <= amt * p).toBe(true);
        expect((pts + 1n) * per > amt * p).toBe(true);
      }),
    );
  });
});
