/**
 * CSV as RFC 4180 says: comma-separated, CRLF line ends, a field quoted when it holds a comma, a
 * quote, CR or LF, quotes inside doubled. Text that a spreadsheet would run as a formula (starting
 * with =, +, -, @, tab or CR) is prefixed with a single quote: partner-supplied ids are text, and a
 * finance team opens these files in a spreadsheet. Numbers are written as they are.
 */
export type CsvValue = string | bigint | number | null;

const FORMULA = /^[=+\-@\t\r]/;

export function csvText(v: string | null): string {
  if (v === null) return "";
  const safe = FORMULA.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function csvNumber(v: bigint | number | null): string {
  return v === null ? "" : String(v);
}

/** One record: text fields escaped, numeric fields as they are. */
export function csvRow(fields: CsvValue[]): string {
  return `${fields.map((f) => (typeof f === "bigint" || typeof f === "number" ? csvNumber(f) : csvText(f))).join(",")}\r\n`;
}
