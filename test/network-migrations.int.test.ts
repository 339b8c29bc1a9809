import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDb } from "./harness.ts";
import type { Db } from "../gateway/src/infra/db.ts";
import * as partners from "../migrations/20261122100000_extend_partners.ts";
import * as personal from "../migrations/20261122100100_create_member_personal_data.ts";

let db: Db;
beforeAll(async () => {
  db = await createTestDb();
});
afterAll(async () => db.destroy());

it("the network migrations go down and up again cleanly", async () => {
  await personal.down(db);
  await partners.down(db);
  expect(await db.schema.hasTable("sectors")).toBe(false);
  expect(await db.schema.hasTable("loyalty_cards")).toBe(false);
  expect(await db.schema.hasColumn("partners", "mccs")).toBe(false);
  await partners.up(db);
  await personal.up(db);
  expect(await db.schema.hasTable("member_profiles")).toBe(true);
  expect((await db("programme_settings").first()).type).toBe("open");
});
