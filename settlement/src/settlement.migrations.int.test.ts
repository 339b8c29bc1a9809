import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../../test/harness.ts";
import type { Db } from "../../gateway/src/infra/db.ts";
import * as settlement from "../../migrations/20261122130000_create_settlement.ts";
import * as payees from "../../migrations/20261122130100_create_settlement_payee_accounts.ts";
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
    expect(await tables()).toEqual(["settlement_items", "settlement_lines", "settlement_payee_accounts", "settlement_runs", "settlement_statements"]);
    await payments.down(db);
    await payees.down(db);
    await settlement.down(db);
    expect(await tables()).toEqual([]);
    const fn = (await db.raw("SELECT count(*)::int AS n FROM pg_proc WHERE proname = 'settlement_forbid_closed_change'")) as { rows: Array<{ n: number }> };
    expect(fn.rows[0]!.n).toBe(0);
    await settlement.up(db);
    await payees.up(db);
    await payments.up(db);
    expect(await tables()).toHaveLength(5);
  });
});
