import { describe, expect, it } from "vitest";
import { applyRules, periodOf, ruleMatches, ruleOrder, type PurchaseFacts, type RuleDef, type RuleState } from "./rules.engine.ts";

const rule = (o: Partial<RuleDef>): RuleDef => ({
  id: "rul_a",
  ownerPartnerId: null,
  name: "r",
  type: "fixed_bonus",
  priority: 100,
  stackGroup: null,
  validFrom: new Date("2026-01-01T00:00:00Z"),
  validUntil: null,
  target: { kind: "all" },
  partnerIds: null,
  params: { points: 10 },
  caps: {},
  ...o,
});
const facts = (o: Partial<PurchaseFacts> = {}): PurchaseFacts => ({
  partnerId: "ptn_1",
  memberId: "mem_1",
  occurredAt: new Date("2026-06-15T12:00:00Z"),
  earnableMinor: 10_000n,
  lines: [],
  earnPoints: 1n,
  earnPerMinor: 1_000n,
  basePoints: 10n,
  tierCode: null,
  tierMultiplierBp: 10_000,
  segments: new Set(),
  dateOfBirth: null,
  ...o,
});
const empty: RuleState = { purchasesBetween: async () => 0, usage: async () => ({ points: 0n, times: 0 }) };

describe("rule engine", () => {
  it("orders by priority, then id, whatever order rules come in", () => {
    const rs = [rule({ id: "b", priority: 2 }), rule({ id: "c", priority: 1 }), rule({ id: "a", priority: 2 })];
    expect([...rs].sort(ruleOrder).map((r) => r.id)).toEqual(["c", "a", "b"]);
  });

  it("gives the same items for the same rules in any input order", async () => {
    const rs = [rule({ id: "x", priority: 5, stackGroup: "g" }), rule({ id: "y", priority: 5, stackGroup: "g", params: { points: 99 } }), rule({ id: "z", priority: 1 })];
    const one = await applyRules(rs, facts(), empty);
    const two = await applyRules([...rs].reverse(), facts(), empty);
    expect(one).toEqual(two);
    expect(one.map((i) => i.rule_id)).toEqual(["z", "x"]);
  });

  it("computes UTC calendar periods, ISO weeks starting Monday", () => {
    const r = rule({});
    const at = new Date("2026-06-17T23:59:59Z"); // a Wednesday
    expect(periodOf("week", at, r)).toEqual({ from: new Date("2026-06-15T00:00:00Z"), to: new Date("2026-06-22T00:00:00Z") });
    expect(periodOf("month", new Date("2026-12-31T10:00:00Z"), r)).toEqual({ from: new Date("2026-12-01T00:00:00Z"), to: new Date("2027-01-01T00:00:00Z") });
    expect(periodOf("day", at, r).to).toEqual(new Date("2026-06-18T00:00:00Z"));
  });

  it("matches window (end exclusive), partner scope and target", () => {
    const windowed = rule({ validUntil: new Date("2026-06-15T12:00:00Z") });
    expect(ruleMatches(windowed, facts())).toBe(false);
    expect(ruleMatches(rule({ ownerPartnerId: "ptn_2" }), facts())).toBe(false);
    expect(ruleMatches(rule({ partnerIds: ["ptn_1"] }), facts())).toBe(true);
    expect(ruleMatches(rule({ target: { kind: "tier", tiers: ["gold"] } }), facts({ tierCode: "gold" }))).toBe(true);
    expect(ruleMatches(rule({ target: { kind: "segment", segments: ["s"] } }), facts())).toBe(false);
  });

  it("adds the tier's extra on the base points, floored", async () => {
    const items = await applyRules([], facts({ basePoints: 7n, tierCode: "gold", tierMultiplierBp: 15_000 }), empty);
    expect(items).toMatchObject([{ kind: "tier_multiplier", points: 3 }]);
  });
});
