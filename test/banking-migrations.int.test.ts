import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDb } from "./harness.ts";
import type { Db } from "../gateway/src/infra/db.ts";
import * as banking from "../migrations/20261122140000_create_banking.ts";

let db: Db;
beforeAll(async () => {
  db = await createTestDb();
});
afterAll(async () => db.destroy());

it("the banking migration goes down and up again cleanly", async () => {
  await banking.down(db);
  for (const t of ["payment_cards", "card_offers", "card_offer_activations", "card_purchases", "card_events", "cashback_payouts", "roundup_settings", "roundup_sweeps", "roundup_items"]) {
    expect(await db.schema.hasTable(t), t).toBe(false);
  }
  await banking.up(db);
  expect(await db.schema.hasTable("roundup_items")).toBe(true);
  expect(await db.schema.hasColumn("card_purchases", "booked_cashback_minor")).toBe(true);
});
