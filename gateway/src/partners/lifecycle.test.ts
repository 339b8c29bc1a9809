import { describe, expect, it } from "vitest";
import { PARTNER_TRANSITIONS } from "./partners.service.ts";

describe("the partner lifecycle", () => {
  it("has exactly the documented moves", () => {
    expect(PARTNER_TRANSITIONS).toEqual({
      applied: ["approved", "terminated"],
      approved: ["active", "terminated"],
      active: ["suspended", "terminated"],
      suspended: ["active", "terminated"],
      terminated: [],
    });
  });

  it("reaches terminated from every status, and never leaves it", () => {
    for (const [from, to] of Object.entries(PARTNER_TRANSITIONS)) {
      if (from !== "terminated") expect(to).toContain("terminated");
      expect(to).not.toContain("applied");
    }
  });
});
