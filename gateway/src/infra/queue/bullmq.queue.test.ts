import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { bullmqJobId, fromBullmqJobId } from "./bullmq.queue.ts";

describe("BullMQ job ids", () => {
  it("never contain ':' (BullMQ refuses them), stay distinct and map back", () => {
    expect(bullmqJobId("evt:evt_01")).toBe("evt%3Aevt_01");
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(":", "%", "3", "A", "2", "5", "x") }), fc.string({ unit: fc.constantFrom(":", "%", "3", "A", "2", "5", "x") }), (a, b) => {
        expect(bullmqJobId(a)).not.toContain(":");
        expect(fromBullmqJobId(bullmqJobId(a))).toBe(a);
        if (a !== b) expect(bullmqJobId(a)).not.toBe(bullmqJobId(b));
      }),
    );
  });
});
