import type { Request } from "express";
import type { Actor } from "../../../gateway/src/partners/audit.service.ts";
import { AppError } from "../../../gateway/src/http/problem.ts";
import { decimal, minorExponent } from "../../../settlement/src/money.ts";
import { html, type Html } from "../html.ts";
import type { PortalUsers } from "../users/users.service.ts";

/**
 * Who did it, for the services' audit log: the signed-in operator, by their portal user id (stable
 * when a name or an email changes), with the request id that ties the change to the access log.
 */
export function operatorActor(req: Request): Actor {
  const requestId = (req.res?.locals as { requestId?: string } | undefined)?.requestId;
  return { type: "admin", id: `portal:${req.user!.id}`, ...(requestId ? { requestId } : {}) };
}

/**
 * A service's refusal the operator can act on (a 4xx AppError): shown on the page it came from,
 * with its status. Anything else (a 5xx, a bug) goes on to the portal's error page.
 */
export function refusal(err: unknown): AppError | null {
  return err instanceof AppError && err.status < 500 ? err : null;
}

/** Minor units as a decimal amount of the currency: (123456, "EUR") → "1,234.56 EUR". Exact, no float. */
export function money(minor: bigint | number | string | null | undefined, currency: string | null | undefined): string {
  if (minor === null || minor === undefined) return "—";
  const cur = currency ?? "";
  const n = BigInt(minor);
  const s = decimal(n < 0n ? -n : n, minorExponent(cur || "EUR"));
  const [int, frac] = s.split(".");
  const grouped = int!.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${n < 0n ? "−" : ""}${grouped}${frac ? `.${frac}` : ""}${cur ? ` ${cur}` : ""}`;
}

/** A price in micros of the currency per point: 10500 → "0.010500". */
export function micros(v: bigint | number | null | undefined): string {
  return v === null || v === undefined ? "—" : decimal(BigInt(v), 6);
}

/** Integer with thousands separators (points, counts). */
export function count(v: bigint | number | null | undefined): string {
  if (v === null || v === undefined) return "—";
  const n = BigInt(v);
  const s = (n < 0n ? -n : n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return n < 0n ? `−${s}` : s;
}

/** Basis points as a percentage with two decimals: 1234 → "12.34 %". */
export function bps(v: number | null | undefined): string {
  return v === null || v === undefined ? "—" : `${decimal(BigInt(v), 2)} %`;
}

/** An instant as "2026-05-01 10:00 UTC" (the console works in UTC, as settlement does). */
export function when(v: Date | string | null | undefined): string {
  if (v === null || v === undefined) return "—";
  const d = v instanceof Date ? v : new Date(v);
  return Number.isNaN(d.getTime()) ? String(v) : `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

export function badge(status: string): Html {
  return html`<span class="badge badge-${status}">${status}</span>`;
}

/** An alert at the top of a page that re-renders after a refused action. */
export function errorBanner(text: string | undefined | null): Html {
  return text ? html`<div class="flash flash-error" role="alert">${text}</div>` : html``;
}

/** A table with a caption, header cells with scope, and a wrapper that scrolls on a phone. */
export function table(caption: string, head: Array<string | [string, "num"]>, rows: Html[], empty = "Nothing yet."): Html {
  return html`<div class="table-wrap"><table>
<caption>${caption}</caption>
<thead><tr>${head.map((h) => (Array.isArray(h) ? html`<th scope="col" class="num">${h[0]}</th>` : html`<th scope="col">${h}</th>`))}</tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="${head.length}" class="muted">${empty}</td></tr>`}</tbody>
</table></div>`;
}

/**
 * A decimal typed into a form as an exact scaled integer: ("0.0105", 6) → 10500n. No float is ever
 * involved; more decimals than `scale` is an error (never rounded silently). null when malformed.
 */
export function parseDecimal(input: string, scale: number): bigint | null {
  const m = /^(-)?(\d{1,15})(?:[.,](\d+))?$/.exec(input.trim());
  if (!m) return null;
  const frac = m[3] ?? "";
  if (frac.length > scale) return null;
  const v = BigInt(m[2]! + frac.padEnd(scale, "0"));
  return m[1] ? -v : v;
}

/** A whole number typed into a form, within bounds; null when malformed or out of range. */
export function parseWhole(input: string, min: number, max: number): number | null {
  if (!/^-?\d{1,15}$/.test(input.trim())) return null;
  const n = Number(input.trim());
  return Number.isSafeInteger(n) && n >= min && n <= max ? n : null;
}

/** Audit actors "portal:<user id>" in words: the operator's name (the id stays in the audit log). */
export async function actorNames(users: PortalUsers, ids: string[]): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  for (const id of new Set(ids)) {
    const user = id.startsWith("portal:") ? await users.get(id.slice("portal:".length)) : undefined;
    if (user) names.set(id, user.name);
  }
  return names;
}
