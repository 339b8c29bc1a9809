import { describe, expect, it } from "vitest";
import { admissionRefusal, type ProgrammeSettings } from "./programme.service.ts";

const base: ProgrammeSettings = { type: "open", admission: {}, matching_rule: "verified_email", card_prefix: "6390", updated_at: "2026-11-22T00:00:00Z" };

describe("admission to the programme", () => {
  it("admits anyone to an open programme", () => {
    expect(admissionRefusal(base, undefined)).toBeNull();
  });

  it("admits to a closed programme by any one configured route", () => {
    const closed = { ...base, type: "closed" as const, admission: { min_purchases: 3, questionnaire: true, entry_fee: true } };
    expect(admissionRefusal(closed, { purchases: 3 })).toBeNull();
    expect(admissionRefusal(closed, { questionnaire_completed: true })).toBeNull();
    expect(admissionRefusal(closed, { entry_fee_paid: true })).toBeNull();
    expect(admissionRefusal(closed, { purchases: 2, questionnaire_completed: false })).toBe(
      "The programme is closed: a new member needs at least 3 purchases or a completed questionnaire or a paid entry fee.",
    );
    expect(admissionRefusal(closed, undefined)).not.toBeNull();
  });

  it("ignores evidence for routes the operator did not configure", () => {
    const feeOnly = { ...base, type: "closed" as const, admission: { entry_fee: true } };
    expect(admissionRefusal(feeOnly, { purchases: 100, questionnaire_completed: true })).not.toBeNull();
    expect(admissionRefusal({ ...base, type: "closed" }, { entry_fee_paid: true })).toBe("The programme is closed to new members.");
  });
});
