import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDb } from "./harness.ts";
import type { Db } from "../gateway/src/infra/db.ts";
import * as dropUnread from "../migrations/20261202040000_drop_unread_events_indexes.ts";

let db: Db;
beforeAll(async () => {
  db = await createTestDb();
});
afterAll(async () => db.destroy());

const indexes = async () =>
  ((await db.raw("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'events' ORDER BY indexname")).rows as Array<{ indexname: string }>).map(
    (r) => r.indexname,
  );

it("events keeps the indexes its queries read, and the feed's reads (partner, tx_id, seq)", async () => {
  expect(await indexes()).toEqual(["events_partner_tx_seq_idx", "events_pkey", "events_seq_idx"]);
  // The feed's query shape (events.dal.ts), planned with the table's scan ruled out: by its index.
  const plan = await db.transaction(async (trx) => {
    await trx.raw("SET LOCAL enable_seqscan = off");
    const { rows } = await trx.raw<{ rows: Array<Record<string, string>> }>(
      "EXPLAIN SELECT id FROM events WHERE partner_id = 'ptn_x' AND (tx_id, seq) > ('1'::xid8, 0::bigint) ORDER BY tx_id, seq LIMIT 100",
    );
    return rows.map((r) => Object.values(r)[0]).join("\n");
  });
  expect(plan).toContain("events_partner_tx_seq_idx");
});

it("the migration that dropped the unread ones goes down and up again", async () => {
  await dropUnread.down(db);
  expect(await indexes()).toEqual(["events_created_at_idx", "events_partner_seq_idx", "events_partner_tx_seq_idx", "events_pkey", "events_seq_idx"]);
  await dropUnread.up(db);
  expect(await indexes()).toEqual(["events_partner_tx_seq_idx", "events_pkey", "events_seq_idx"]);
});
