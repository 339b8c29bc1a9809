import { z } from "zod";
import type { CardEventInput } from "./card-transactions.service.ts";

/**
 * The line formats banks send in bulk: NDJSON (one event object per line) and the daily clearing
 * file in CSV. A bad line is reported with its number and ingested never; the good lines go on.
 * The same rules as the JSON schema of the contract's CardEvent.
 */
const eventSchema = z.object({
  event_id: z.string().min(1).max(128),
  type: z.enum(["auth", "clearing", "reversal", "refund"]),
  purchase_id: z.string().min(1).max(128),
  card_token: z.string().min(8).max(128),
  amount_minor: z.number({ error: "must be a whole number of minor units, 0 or more" }).int().min(0).max(100_000_000_000),
  currency: z.string().regex(/^[A-Z]{3}$/),
  mid: z.string().min(1).max(64).nullish(),
  mcc: z.string().regex(/^[0-9]{4}$/).nullish(),
  merchant_name: z.string().min(1).max(128).nullish(),
  transaction_at: z.iso.datetime({ offset: true }),
}).strict();

export interface ParsedLines {
  events: CardEventInput[];
  /** Line numbers (1-based, the CSV header is line 1) of the events, for the report. */
  lines: number[];
  rejected: Array<{ line: number; reason: string }>;
}

function check(value: unknown, line: number, out: ParsedLines): void {
  // PostgreSQL stores no NUL character in text: the line is rejected, naming the field.
  const nul = value && typeof value === "object" ? Object.entries(value).find(([, v]) => typeof v === "string" && v.includes("\u0000")) : undefined;
  if (nul) {
    out.rejected.push({ line, reason: `${nul[0]}: must not contain the NUL character (U+0000)` });
    return;
  }
  const r = eventSchema.safeParse(value);
  if (r.success) {
    out.events.push(r.data as CardEventInput);
    out.lines.push(line);
  } else {
    // The reason names fields, never values: a bad line may carry anything.
    out.rejected.push({ line, reason: r.error.issues.map((i) => `${i.path.join(".") || "line"}: ${i.message}`).join("; ") });
  }
}

export function parseNdjson(text: string): ParsedLines {
  const out: ParsedLines = { events: [], lines: [], rejected: [] };
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!.trim();
    if (!l) continue;
    let v: unknown;
    try {
      v = JSON.parse(l);
    } catch {
      out.rejected.push({ line: i + 1, reason: "not a JSON object" });
      continue;
    }
    check(v, i + 1, out);
  }
  return out;
}

/** Splits one CSV record (RFC 4180: quoted fields, "" for a quote inside). */
function csvFields(line: string): string[] | null {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    let field = "";
    if (line[i] === '"') {
      i++;
      for (;;) {
        if (i >= line.length) return null;
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += line[i++];
      }
    } else {
      const next = line.indexOf(",", i);
      field = next === -1 ? line.slice(i) : line.slice(i, next);
      i = next === -1 ? line.length : next;
    }
    out.push(field);
    if (i >= line.length) return out;
    if (line[i] !== ",") return null;
    i++;
  }
}

export const CSV_COLUMNS = ["event_id", "type", "purchase_id", "card_token", "amount_minor", "currency", "mid", "mcc", "merchant_name", "transaction_at"] as const;
const REQUIRED = ["event_id", "purchase_id", "card_token", "amount_minor", "currency", "transaction_at"];

/**
 * The daily clearing file: a header line naming the columns (any order; `type` may be left out, and
 * then every line is a clearing), then one event per line. Quoted fields may not span lines.
 */
export function parseClearingCsv(text: string): ParsedLines | { error: string } {
  const lines = text.split(/\r?\n/);
  const header = csvFields(lines[0]?.replace(/^\uFEFF/, "").trim() ?? "");
  if (!header) return { error: "line 1: the header is not valid CSV" };
  const cols = header.map((h) => h.trim().toLowerCase());
  const unknown = cols.filter((c) => !(CSV_COLUMNS as readonly string[]).includes(c));
  if (unknown.length > 0) return { error: `line 1: unknown columns ${unknown.join(", ")}; the columns are ${CSV_COLUMNS.join(", ")}` };
  const missing = REQUIRED.filter((c) => !cols.includes(c));
  if (missing.length > 0) return { error: `line 1: missing columns ${missing.join(", ")}` };
  const out: ParsedLines = { events: [], lines: [], rejected: [] };
  for (let i = 1; i < lines.length; i++) {
    const raw = lines[i]!;
    if (!raw.trim()) continue;
    const f = csvFields(raw);
    if (!f || f.length !== cols.length) {
      out.rejected.push({ line: i + 1, reason: `expected ${cols.length} fields` });
      continue;
    }
    const rec: Record<string, unknown> = { type: "clearing" };
    cols.forEach((c, k) => {
      const v = f[k]!;
      if (v === "") return;
      rec[c] = c === "amount_minor" ? (/^[0-9]+$/.test(v) ? Number(v) : v) : v;
    });
    check(rec, i + 1, out);
  }
  return out;
}
