const DAY_MS = 86_400_000;

/** Calendar months in UTC: "2026-05" is [2026-05-01T00:00Z, 2026-06-01T00:00Z). */
export interface Period {
  period: string;
  start: Date;
  end: Date;
}

export function parsePeriod(period: string): Period {
  const m = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(period);
  if (!m) throw new Error(`not a period: ${period}`);
  const y = Number(m[1]);
  const mo = Number(m[2]);
  return { period, start: new Date(Date.UTC(y, mo - 1, 1)), end: new Date(Date.UTC(y, mo, 1)) };
}

export function periodOf(at: Date): string {
  return `${at.getUTCFullYear()}-${String(at.getUTCMonth() + 1).padStart(2, "0")}`;
}

/** Statements fall due on the 15th of the month after the period (14 days after it ends). */
export function dueDate(p: Period): string {
  return new Date(p.end.getTime() + 14 * DAY_MS).toISOString().slice(0, 10);
}
