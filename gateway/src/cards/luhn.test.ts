import { describe, expect, it } from "vitest";
import { generateCardNumber, luhnCheckDigit, luhnValid } from "./luhn.ts";

describe("card numbers", () => {
  it("computes the Luhn check digit of known numbers", () => {
    expect(luhnCheckDigit("7992739871")).toBe(3);
    expect(luhnValid("79927398713")).toBe(true);
    expect(luhnValid("79927398710")).toBe(false);
    expect(luhnValid("4111111111111111")).toBe(true);
  });

  it("makes 16-digit numbers with the prefix, a valid check digit, and no sequence", () => {
    const numbers = Array.from({ length: 200 }, () => generateCardNumber("6390"));
    for (const n of numbers) {
      expect(n).toMatch(/^6390[0-9]{12}$/);
      expect(luhnValid(n)).toBe(true);
    }
    expect(new Set(numbers).size).toBe(200);
    // Consecutive numbers are not neighbours: random, not a counter.
    const gaps = numbers.slice(1).map((n, i) => Math.abs(Number(n.slice(4, 15)) - Number(numbers[i]!.slice(4, 15))));
    expect(gaps.filter((g) => g <= 10).length).toBeLessThan(3);
  });
});
