import { StatementFileError } from "./camt053.ts";
import { isCalendarDate, parseAmountMinor, type StatementEntry } from "./reconciliation.match.ts";

/**
 * The hub's bank statement CSV, for banks that do not export camt.053 (see docs/settlement.md):
 * RFC 4180, UTF-8, a header row naming at least
 * `booking_date,amount,currency,reference,remittance,counterparty,entry_ref` (any order, more
 * columns allowed); `amount` is a signed decimal in the currency's units — positive money in,
 * negative money out.
 */
export const BANK_CSV_COLUMNS = ["booking_date", "amount", "currency", "reference", "remittance", "counterparty", "entry_ref"] as const;

/** RFC 4180 records: quoted fields may hold commas, quotes (doubled) and line breaks. */
export function csvRecords(input: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  let i = 0;
  const s = input.charCodeAt(0) === 0xfeff ? input.slice(1) : input;
  while (i < s.length) {
    const c = s[i]!;
    if (quoted) {
      if (c === '"') {
        if (s[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      field += c;
      i++;
      continue;
    }
    if (c === '"' && field === "") {
      quoted = true;
      i++;
    } else if (c === ",") {
      row.push(field);
      field = "";
      i++;
    } else if (c === "\r" || c === "\n") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
      i += c === "\r" && s[i + 1] === "\n" ? 2 : 1;
    } else {
      field += c;
      i++;
    }
  }
  if (quoted) throw new StatementFileError("a quoted field is not closed");
  if (field !== "" || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows.filter((r) => !(r.length === 1 && r[0] === ""));
}

export function parseBankCsv(input: string): { entries: StatementEntry[] } {
  const rows = csvRecords(input);
  const header = rows.shift()?.map((h) => h.trim().toLowerCase());
  if (!header) throw new StatementFileError("the file is empty");
  const missing = BANK_CSV_COLUMNS.filter((c) => !header.includes(c));
  if (missing.length > 0) throw new StatementFileError(`the header lacks ${missing.join(", ")}`);
  const col = (r: string[], name: (typeof BANK_CSV_COLUMNS)[number]) => {
    const v = r[header.indexOf(name)]?.trim() ?? "";
    return v === "" ? null : v;
  };
  const entries: StatementEntry[] = rows.map((r, i) => {
    const where = `line ${i + 2}`;
    const currency = col(r, "currency")?.toUpperCase() ?? "";
    if (!/^[A-Z]{3}$/.test(currency)) throw new StatementFileError(`${where}: currency must be an ISO 4217 code`);
    const amount = parseAmountMinor(col(r, "amount") ?? "", currency);
    if (amount === null || amount === 0n) throw new StatementFileError(`${where}: amount must be a non-zero decimal in ${currency} units`);
    const bookingDate = col(r, "booking_date") ?? "";
    if (!isCalendarDate(bookingDate)) throw new StatementFileError(`${where}: booking_date must be YYYY-MM-DD`);
    return {
      seq: i + 1,
      direction: amount > 0n ? "credit" : "debit",
      amountMinor: amount > 0n ? amount : -amount,
      currency,
      bookingDate,
      reference: col(r, "reference"),
      remittance: col(r, "remittance"),
      counterparty: col(r, "counterparty"),
      entryRef: col(r, "entry_ref"),
    };
  });
  return { entries };
}
