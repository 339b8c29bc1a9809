import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../../test/harness.ts";
import { createPartner } from "../../test/factories/network.ts";
import type { Db } from "../../gateway/src/infra/db.ts";
import * as payments from "../../migrations/20261130110000_create_settlement_payments.ts";

let db: Db;
beforeAll(async () => {
  db = await createTestDb();
});
afterAll(async () => {
  await db.destroy();
});

const TABLES = ["partner_stripe_accounts", "payment_obligations", "payments", "reconciliation_imports", "reconciliation_items"];
const tables = async () =>
  ((await db.raw(`SELECT tablename FROM pg_tables WHERE tablename IN (${TABLES.map(() => "?").join(",")}) ORDER BY tablename`, TABLES)) as { rows: Array<{ tablename: string }> }).rows.map((r) => r.tablename);

async function statement(partnerId: string, period: string, net: bigint) {
  const runId = `run_${period}`;
  const now = new Date("2026-05-01T02:00:00Z");
  await db("settlement_runs").insert({ id: runId, period, period_start: new Date(`${period}-01T00:00:00Z`), period_end: new Date("2026-05-01T00:00:00Z"), created_at: now, updated_at: now }).onConflict("id").ignore();
  const id = `stm_${period.replace("-", "")}_${partnerId}`;
  await db("settlement_statements").insert({ id, run_id: runId, partner_id: partnerId, period, currency: "EUR", net_amount_minor: String(net), opening_position_minor: "0", closing_position_minor: String(net), due_date: "2026-05-15", content_sha256: "c", csv_sha256: "s", created_at: now });
  return id;
}
const close = (id: string) => db("settlement_statements").where({ id }).update({ status: "closed", step: "closed", closed_at: new Date("2026-05-01T02:00:00Z") });

describe("the payments migration", () => {
  it("gives every statement that closes with a non-zero net its obligation, in the closing transaction", async () => {
    const debtor = (await createPartner(db)).id;
    const creditor = (await createPartner(db)).id;
    const nil = (await createPartner(db)).id;
    const [d, c, n] = [await statement(debtor, "2026-04", -10_134n), await statement(creditor, "2026-04", 16n), await statement(nil, "2026-04", 0n)];
    await db.transaction(async (trx) => {
      await trx("settlement_statements").where({ id: d }).update({ status: "closed", step: "closed", closed_at: new Date("2026-05-01T02:00:00Z") });
      throw new Error("roll back");
    }).catch(() => undefined);
    expect(await db("payment_obligations").where({ statement_id: d }).first()).toBeUndefined();
    for (const id of [d, c, n]) await close(id);
    const rows = await db("payment_obligations").orderBy("amount_due_minor").select("id", "statement_id", "direction", "amount_due_minor", "status", "reference", "due_date");
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({ id: `pob_202604_${creditor}`, statement_id: c, direction: "payable_to_partner", amount_due_minor: 16n, status: "pending", reference: `202604${creditor.slice(4)}` });
    expect(rows[1]).toMatchObject({ statement_id: d, direction: "receivable_from_partner", amount_due_minor: 10_134n });
  });

  it("keeps payments append-only and amounts non-zero", async () => {
    const ob = await db("payment_obligations").first("id");
    const row = { id: "pay_1", obligation_id: ob.id, amount_minor: "5", currency: "EUR", rail: "bank", source: "bank_csv", reference: "r", external_key: "bank:r", value_date: "2026-05-02", recorded_at: new Date() };
    await db("payments").insert(row);
    await expect(db("payments").insert({ ...row, id: "pay_2" })).rejects.toThrow(/external_key/);
    await expect(db("payments").insert({ ...row, id: "pay_3", external_key: "bank:z", amount_minor: "0" })).rejects.toThrow(/payments_amount_nonzero/);
    await expect(db("payments").where({ id: "pay_1" }).update({ amount_minor: "6" })).rejects.toThrow(/append-only/);
    await expect(db("payments").where({ id: "pay_1" }).delete()).rejects.toThrow(/append-only/);
  });

  it("rolls back to nothing, and forward again creates obligations for statements already closed", async () => {
    expect(await tables()).toEqual(TABLES);
    await payments.down(db);
    expect(await tables()).toEqual([]);
    await payments.up(db);
    expect(await tables()).toEqual(TABLES);
    expect(Number((await db("payment_obligations").count("* as n").first())!.n)).toBe(2);
  });
});
