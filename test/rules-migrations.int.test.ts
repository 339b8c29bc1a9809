import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDb } from "./harness.ts";
import type { Db } from "../gateway/src/infra/db.ts";
import * as rules from "../migrations/20261122150000_create_rules.ts";
import * as memberships from "../migrations/20261122150100_create_memberships.ts";

let db: Db;
beforeAll(async () => {
  db = await createTestDb();
});
afterAll(async () => db.destroy());

it("the rules migrations go down and up again cleanly", async () => {
  await memberships.down(db);
  await rules.down(db);
  for (const t of ["earn_rules", "member_segments", "rule_awards", "tier_ladder", "tiers", "member_tiers", "draws", "draw_entries", "membership_plans", "memberships", "stripe_events"]) {
    expect(await db.schema.hasTable(t), t).toBe(false);
  }
  await rules.up(db);
  await memberships.up(db);
  expect(await db.schema.hasTable("draw_entries")).toBe(true);
  expect(await db.schema.hasTable("stripe_events")).toBe(true);
});
