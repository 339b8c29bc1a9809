import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../../test/harness.ts";
import type { Db } from "../../gateway/src/infra/db.ts";
import { csvRow } from "./csv.ts";
import { CSV_HEADER, createStatementsService } from "./statements.service.ts";

let db: Db;
beforeAll(async () => {
  db = await createTestDb();
});
afterAll(async () => {
  await db.destroy();
});

const ST = "stm_202605_csv";

interface Item {
  statement_id: string;
  partner_id: string;
  seq: number;
  line_no: number;
  line_group: string;
  entry_id: string;
  lot_id: string;
  entry_kind: string;
  ref_type: string;
  ref_id: string;
  occurred_at: string;
  member_id: string;
  points: number;
  refs_collected: boolean;
  partner_transaction_id?: string;
  partner_refund_id?: string;
  hub_transaction_id?: string;
  corrects_period?: string;
  corrects_statement_id?: string;
  price_micros?: number;
  amount_minor?: number;
}

/**
 * The database writes most CSV records (items whose fields were collected with them and need no
 * escaping); csvRecord writes the rest. Both must give csvRow's bytes: here items of every kind,
 * written straight into the table (triggers off: the references do not matter to the CSV).
 */
describe("a statement's CSV", () => {
  it("writes every record as csvRow would, whichever side builds it", async () => {
    const base = {
      statement_id: ST,
      partner_id: "ptn_csv",
      lot_id: "",
      line_group: "issuance",
      entry_kind: "earn",
      ref_type: "transaction",
      points: 10,
      line_no: 1,
    };
    const items: Item[] = [
      // Collected with its fields, nothing to escape: the database's record.
      { ...base, seq: 1, entry_id: "ent_1", ref_id: "txn_1", occurred_at: "2026-05-03T10:11:12.345678Z", member_id: "mem_1", refs_collected: true,
        partner_transaction_id: "P-1", hub_transaction_id: "txn_1", price_micros: 12000 },
      // Fields a spreadsheet would run, or that must be quoted: csvRecord's.
      { ...base, seq: 2, entry_id: "ent_2", ref_id: "txn_2", occurred_at: "2026-05-04T00:00:00Z", member_id: "-mem", refs_collected: true,
        partner_transaction_id: '=HYPERLINK("x")', partner_refund_id: "a,b", hub_transaction_id: 'q"x', price_micros: 12000 },
      { ...base, seq: 3, entry_id: "ent_3", ref_id: "txn_3", occurred_at: "2026-05-05T00:00:00Z", member_id: "mem_3", refs_collected: true,
        partner_transaction_id: "line\nbreak", corrects_statement_id: "+x", corrects_period: "2026-04", line_group: "issuance_reversal" },
      // A year toISOString writes with six digits: csvRecord's.
      { ...base, seq: 4, entry_id: "ent_4", ref_id: "txn_4", occurred_at: "12026-05-06T00:00:00Z", member_id: "mem_4", refs_collected: true,
        amount_minor: -250, line_group: "cashback_funding", points: 0 },
      // Collected before its fields were: looked up (nothing to find here), csvRecord's.
      { ...base, seq: 5, entry_id: "ent_5", ref_id: "txn_5", occurred_at: "2026-05-07T00:00:00.5Z", member_id: "mem_5", refs_collected: false, lot_id: "lot_5",
        line_group: "breakage_share" },
    ];
    await db.transaction(async (trx) => {
      await trx.raw("SET LOCAL session_replication_role = replica");
      await trx("settlement_statements").insert({ id: ST, run_id: "run_csv", partner_id: "ptn_csv", period: "2026-05", created_at: new Date("2026-06-01T00:00:00Z") });
      await trx("settlement_items").insert(items);
    });
    let csv = "";
    const n = await createStatementsService({ db }).renderCsv(ST, (c) => {
      csv += c;
    });
    expect(n).toBe(items.length);
    const iso = (t: string) => new Date(t.replace(/^12026/, "+012026")).toISOString();
    const expected = [
      csvRow([...CSV_HEADER]),
      // The time as csvRecord writes it: toISOString's, not a text field (never a formula's quote).
      ...items.map(
        (i) =>
          `${csvRow([i.statement_id, i.line_no, i.line_group]).slice(0, -2)},${iso(i.occurred_at)},` +
          csvRow([
            i.entry_kind,
            i.partner_transaction_id ?? null,
            i.partner_refund_id ?? null,
            i.hub_transaction_id ?? null,
            i.entry_id,
            i.lot_id === "" ? null : i.lot_id,
            i.member_id,
            i.points,
            i.price_micros ?? null,
            null,
            i.corrects_period ?? null,
            i.corrects_statement_id ?? null,
            i.amount_minor ?? null,
          ]),
      ),
    ].join("");
    expect(csv).toBe(expected);
    expect(csv).toContain(`,"'=HYPERLINK(""x"")","a,b","q""x",ent_2,,'-mem,`);
    expect(csv).toContain("+012026-05-06T00:00:00.000Z");
  });
});
