import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDb } from "./harness.ts";
import type { Db } from "../gateway/src/infra/db.ts";
import * as feed from "../migrations/20261201120000_create_portal_test_bank_feed.ts";

let db: Db;
beforeAll(async () => {
  db = await createTestDb();
});
afterAll(async () => db.destroy());

it("the test bank feed migration goes down and up again cleanly", async () => {
  await feed.down(db);
  for (const t of ["portal_sandbox_feeds", "portal_sandbox_payment_cards", "portal_sandbox_feed_purchases"]) expect(await db.schema.hasTable(t), t).toBe(false);
  await feed.up(db);
  expect(await db.schema.hasColumn("portal_sandbox_feed_purchases", "transaction_at")).toBe(true);
});
