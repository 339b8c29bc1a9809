import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { json } from "../../../test/http.ts";
import { ledgerScenario } from "../../../test/factories/ledger.ts";
import { createLedger } from "../ledger/ledger.service.ts";

let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub();
});
afterAll(async () => {
  await hub.close();
});

// Only meaningful on the real PostgreSQL (PGlite has one connection), but it must hold on both.
describe("100 concurrent burns on one member", () => {
  it("ends on the exact balance, never below the floor, every refusal a clear insufficient-points", async () => {
    const s = await ledgerScenario(hub);
    const earned = await json(await s.post("/v1/earn", { member_id: s.member.id, partner_transaction_id: "fund", amount_minor: 1_000_000, currency: "EUR" }));
    expect(earned.points_earned).toBe(1_000);
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        s.post("/v1/burn", { member_id: s.member.id, partner_transaction_id: `c-${i}`, points: 15, amount_minor: 150, currency: "EUR" }),
      ),
    );
    const bodies = await Promise.all(answers.map((a) => json(a)));
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((st) => st !== 201 && st !== 422)).toEqual([]);
    const ok = statuses.filter((st) => st === 201).length;
    expect(ok).toBe(66);
    for (const b of bodies.filter((_, i) => statuses[i] === 422)) {
      expect(b).toMatchObject({ type: "/problems/insufficient-points", code: "insufficient-points", status: 422, requested_points: 15 });
      expect(b.available_points).toBeLessThan(15);
    }
    // Every successful burn saw a balance that was its predecessor's minus 15: no lost update.
    const after = bodies.filter((_, i) => statuses[i] === 201).map((b) => b.balance.available as number).sort((a, b) => b - a);
    expect(after).toEqual(Array.from({ length: 66 }, (_, i) => 1_000 - 15 * (i + 1)));
    const bal = await json(await s.get(`/v1/members/${s.member.id}/balance`));
    expect(bal.available).toBe(10);
    expect(await createLedger({ db: hub.db }).checkInvariants()).toEqual([]);
  });
});
