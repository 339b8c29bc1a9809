/** The last `days` UTC days, oldest first, as YYYY-MM-DD (the x axis of the portal's day charts). */
export function lastDays(now: Date, days: number): string[] {
  const out: string[] = [];
  for (let i = days - 1; i >= 0; i--) out.push(new Date(now.getTime() - i * 86_400_000).toISOString().slice(0, 10));
  return out;
}
