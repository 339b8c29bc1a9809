import type { Db } from "../../gateway/src/infra/db.ts";

export interface RunSummary {
  id: string;
  period: string;
  status: "running" | "failed" | "closed";
  step: string;
  attempts: number;
  failure: string | null;
  created_at: string;
  closed_at: string | null;
  statements: number;
  statements_failed: number;
}

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

/**
 * The operator's list of settlement runs, newest month first, with how many statements each has
 * (the console's settlement page). Read-only; the clearing service owns every write.
 */
export function createRunsReader(deps: { db: Db }) {
  const { db } = deps;
  return {
    async list(limit = 24): Promise<RunSummary[]> {
      const rows: Array<Record<string, unknown>> = await db("settlement_runs as r")
        .leftJoin("settlement_statements as s", "s.run_id", "r.id")
        .groupBy("r.id")
        .orderBy("r.period", "desc")
        .limit(Math.min(Math.max(limit, 1), 120))
        .select("r.id", "r.period", "r.status", "r.step", "r.attempts", "r.failure", "r.created_at", "r.closed_at")
        .select(db.raw("count(s.id)::int AS statements"), db.raw("count(s.id) FILTER (WHERE s.status = 'failed')::int AS statements_failed"));
      return rows.map((r) => ({
        id: r.id as string,
        period: r.period as string,
        status: r.status as RunSummary["status"],
        step: r.step as string,
        attempts: Number(r.attempts),
        failure: (r.failure as string | null) ?? null,
        created_at: iso(r.created_at as Date)!,
        closed_at: iso(r.closed_at as Date | null),
        statements: Number(r.statements),
        statements_failed: Number(r.statements_failed),
      }));
    },
  };
}

export type RunsReader = ReturnType<typeof createRunsReader>;
