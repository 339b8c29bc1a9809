import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../../test/harness.ts";
import type { Db } from "../../gateway/src/infra/db.ts";
import * as settlement from "../../migrations/20261122130000_create_settlement.ts";
import * as payees from "../../migrations/20261122130100_create_settlement_payee_accounts.ts";
import * as disputes from "../../migrations/20261130120000_create_settlement_disputes.ts";
import * as payments from "../../migrations/20261130110000_create_settlement_payments.ts";

let db: Db;
beforeAll(async () => {
  db = await createTestDb();
});
afterAll(async () => {
  await db.destroy();
});

const tables = async () =>
  ((await db.raw("SELECT tablename FROM pg_tables WHERE tablename LIKE 'settlement_%' ORDER BY tablename")) as { rows: Array<{ tablename: string }> }).rows.map((r) => r.tablename);

describe("the settlement migrations", () => {
  it("roll back to nothing and forward again", async () => {
    expect(await tables()).toEqual(expect.arrayContaining(["settlement_items", "settlement_lines", "settlement_payee_accounts", "settlement_runs", "settlement_statements"]));
    expect(await tables()).toEqual(expect.arrayContaining(["settlement_adjustments", "settlement_dispute_trail", "settlement_disputes", "settlement_statement_pdfs"]));
    await disputes.down(db);
    await payments.down(db);
    expect(await tables()).not.toContain("settlement_disputes");
    const cols = (await db.raw("SELECT column_name FROM information_schema.columns WHERE table_name = 'settlement_lines' AND column_name = 'adjustment_id'")) as { rows: unknown[] };
    expect(cols.rows).toEqual([]);
    await payees.down(db);
    await settlement.down(db);
    expect(await tables()).toEqual([]);
    const fn = (await db.raw("SELECT count(*)::int AS n FROM pg_proc WHERE proname = 'settlement_forbid_closed_change'")) as { rows: Array<{ n: number }> };
    expect(fn.rows[0]!.n).toBe(0);
    await settlement.up(db);
    await payees.up(db);
    await payments.up(db);
    expect(await tables()).toHaveLength(5);
    await disputes.up(db);
    expect(await tables()).toHaveLength(9);
  });
});
