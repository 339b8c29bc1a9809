import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { fundingOf, refundFunding } from "./earn.service.ts";
import { splitByFunding, type Funding } from "../ledger/ledger.service.ts";

const A = "partner:ptn_a" as const;

describe("who funds a purchase's points", () => {
  it("sums the items by funder, the issuing partner first", () => {
    expect(fundingOf("ptn_a", [{ points: 10, funded_by: A }, { points: 50, funded_by: "operator" }, { points: 20, funded_by: A }, { points: 5 }])).toEqual([
      { fundedBy: A, points: 35n },
      { fundedBy: "operator", points: 50n },
    ]);
  });

  it("splits a refund cumulatively: partial refunds add up to the full one, none negative", () => {
    // 100 points, 50 the operator's: refunds of 33, 33, 34 points. The operator's cumulative share is
    // floor(50 × 33 ÷ 100) = 16, floor(50 × 66 ÷ 100) = 33, then 50.
    const f: Funding[] = [
      { fundedBy: A, points: 50n },
      { fundedBy: "operator", points: 50n },
    ];
    expect(refundFunding(f, 100n, 0n, 33n)).toEqual([
      { fundedBy: A, points: 17n },
      { fundedBy: "operator", points: 16n },
    ]);
    expect(refundFunding(f, 100n, 33n, 33n)).toEqual([
      { fundedBy: A, points: 16n },
      { fundedBy: "operator", points: 17n },
    ]);
    expect(refundFunding(f, 100n, 66n, 34n)).toEqual([
      { fundedBy: A, points: 17n },
      { fundedBy: "operator", points: 17n },
    ]);
  });

  it("any sequence of partial refunds gives each funder back exactly its points", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 500 }), fc.integer({ min: 0, max: 500 }), fc.array(fc.integer({ min: 1, max: 200 }), { maxLength: 12 }), (own, op, cuts) => {
        const earned = BigInt(own + op);
        const f: Funding[] = [
          { fundedBy: A, points: BigInt(own) },
          { fundedBy: "operator", points: BigInt(op) },
        ];
        let clawed = 0n;
        const back = [0n, 0n];
        const steps = [...cuts.map(BigInt), earned];
        for (const want of steps) {
          const claw = want < earned - clawed ? want : earned - clawed;
          const split = refundFunding(f, earned, clawed, claw);
          expect(split.reduce((s, x) => s + x.points, 0n)).toBe(claw);
          split.forEach((x, i) => {
            expect(x.points >= 0n).toBe(true);
            back[i]! += x.points;
          });
          clawed += claw;
        }
        expect(back).toEqual([BigInt(own), BigInt(op)]);
      }),
    );
  });

  it("shares the points a refund cannot take back by largest remainder, never beyond a funder's points", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 1, maxLength: 4 }), fc.nat(), (pts, t) => {
        const f = pts.map((p, i) => ({ fundedBy: (i === 0 ? "operator" : `partner:p${i}`) as Funding["fundedBy"], points: BigInt(p) }));
        const sum = f.reduce((s, x) => s + x.points, 0n);
        const total = sum === 0n ? 0n : BigInt(t) % (sum + 1n);
        const shares = splitByFunding(total, f);
        expect(shares.reduce((s, x) => s + x, 0n)).toBe(total);
        shares.forEach((s, i) => expect(s <= f[i]!.points && s >= 0n).toBe(true));
      }),
    );
  });
});
