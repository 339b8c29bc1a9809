import type { Db, DbOrTrx, Trx } from "../../gateway/src/infra/db.ts";
import { pgErrorCode } from "../../gateway/src/infra/db.ts";
import type { Clock } from "../../gateway/src/infra/clock.ts";
import { newId } from "../../gateway/src/infra/ids.ts";
import { recordEvent } from "../../gateway/src/events/events.service.ts";
import { parsePeriod, periodOf } from "./period.ts";
import { disputeErrors } from "./disputes.errors.ts";
import { settlementErrors } from "./settlement.errors.ts";
import { decodeCursor, encodeCursor } from "../../gateway/src/http/cursor.ts";

/**
 * Disputes of statement lines. A partner disputes one line of one of its closed statements, with a
 * reason and optionally the amount it claims; the operator comments and resolves: rejected, or
 * accepted with an adjustment booked into the next open month (see adjustments.ts). The statement
 * disputed never changes. Every step is a row of the dispute's append-only trail, which both sides
 * read; opening and resolving are also events (`dispute.opened`, `dispute.resolved`) sent to the
 * partner in the same transaction.
 */

export interface DisputeInput {
  line_no: number;
  reason: string;
  amount_claimed_minor?: number;
}

export interface ResolutionInput {
  outcome: "rejected" | "accepted";
  note: string;
  adjustment_minor?: number;
}

interface DisputeRow {
  id: string;
  partner_id: string;
  statement_id: string;
  line_no: number;
  reason: string;
  amount_claimed_minor: bigint | null;
  currency: string;
  status: "open" | "rejected" | "accepted";
  resolution_note: string | null;
  opened_at: Date | string;
  resolved_at: Date | string | null;
  // joined
  period: string;
  line_group: string;
  line_description: string;
  line_amount_minor: bigint;
  adjustment_id: string | null;
  adjustment_amount_minor: bigint | null;
  adjustment_period: string | null;
  carried_by_statement_id: string | null;
  carried_on_line_no: number | null;
}

interface TrailRow {
  dispute_id: string;
  at: Date | string;
  kind: string;
  actor: "partner" | "operator";
  actor_client_id: string | null;
  note: string | null;
  amount_minor: bigint | null;
}

type Audience = "partner" | "operator";

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());
const num = (v: bigint | number | null) => (v === null ? null : Number(v));


function nextPeriod(period: string): string {
  return periodOf(parsePeriod(period).end);
}

export function createDisputesService(deps: { db: Db; clock: Clock }) {
  const { db, clock } = deps;

  /** Disputes with what they point at: the line, and the adjustment (shown carried once its statement closed). */
  const base = (conn: DbOrTrx) =>
    conn("settlement_disputes as d")
      .join("settlement_statements as s", "s.id", "d.statement_id")
      .join("settlement_lines as l", (j) => j.on("l.statement_id", "d.statement_id").andOn("l.line_no", "d.line_no"))
      .leftJoin("settlement_adjustments as a", "a.dispute_id", "d.id")
      .leftJoin("settlement_statements as cs", (j) => j.on("cs.id", "a.statement_id").andOnVal("cs.status", "closed"))
      .leftJoin("settlement_lines as cl", (j) => j.on("cl.statement_id", "cs.id").andOn("cl.adjustment_id", "a.id"))
      .select(
        "d.*",
        "s.period",
        "l.line_group",
        "l.description as line_description",
        "l.amount_minor as line_amount_minor",
        "a.id as adjustment_id",
        "a.amount_minor as adjustment_amount_minor",
        "a.period as adjustment_period",
        "cs.id as carried_by_statement_id",
        "cl.line_no as carried_on_line_no",
      );

  function view(d: DisputeRow, trail: TrailRow[], audience: Audience) {
    return {
      id: d.id,
      ...(audience === "operator" ? { partner_id: d.partner_id } : {}),
      statement_id: d.statement_id,
      period: d.period,
      line: { line_no: d.line_no, group: d.line_group, description: d.line_description, amount_minor: Number(d.line_amount_minor) },
      reason: d.reason,
      amount_claimed_minor: num(d.amount_claimed_minor),
      currency: d.currency,
      status: d.status,
      opened_at: iso(d.opened_at)!,
      resolved_at: iso(d.resolved_at),
      resolution:
        d.status === "open"
          ? null
          : {
              outcome: d.status,
              note: d.resolution_note ?? "",
              adjustment:
                d.adjustment_id === null
                  ? null
                  : {
                      id: d.adjustment_id,
                      amount_minor: Number(d.adjustment_amount_minor),
                      booked_period: d.adjustment_period!,
                      statement_id: d.carried_by_statement_id,
                      line_no: d.carried_on_line_no,
                    },
            },
      trail: trail.map((t) => ({
        at: iso(t.at)!,
        kind: t.kind,
        actor: t.actor,
        ...(audience === "operator" ? { client_id: t.actor_client_id } : {}),
        note: t.note,
        amount_minor: num(t.amount_minor),
      })),
    };
  }

  async function trailsOf(conn: DbOrTrx, ids: string[]): Promise<Map<string, TrailRow[]>> {
    const rows: TrailRow[] = ids.length === 0 ? [] : await conn("settlement_dispute_trail").whereIn("dispute_id", ids).orderBy("id").select("*");
    const out = new Map<string, TrailRow[]>(ids.map((id) => [id, []]));
    for (const r of rows) out.get(r.dispute_id)!.push(r);
    return out;
  }

  async function one(conn: DbOrTrx, id: string, audience: Audience, partnerId?: string) {
    const q = base(conn).where("d.id", id);
    if (partnerId) q.andWhere("d.partner_id", partnerId);
    const d: DisputeRow | undefined = await q.first();
    if (!d) throw disputeErrors.make("dispute-not-found", `No dispute ${id}.`);
    return view(d, (await trailsOf(conn, [d.id])).get(d.id)!, audience);
  }

  async function page(filter: { partnerId?: string; status?: string; statementId?: string; cursor?: string; limit?: number }, audience: Audience) {
    const limit = Math.min(Math.max(filter.limit ?? 20, 1), 100);
    const q = base(db);
    if (filter.partnerId) q.where("d.partner_id", filter.partnerId);
    if (filter.status) q.where("d.status", filter.status);
    if (filter.statementId) q.where("d.statement_id", filter.statementId);
    if (filter.cursor) q.where("d.id", "<", decodeCursor(filter.cursor, /^dsp_[0-9a-z]{26}$/));
    const rows: DisputeRow[] = await q.orderBy("d.id", "desc").limit(limit + 1);
    const items = rows.slice(0, limit);
    const trails = await trailsOf(db, items.map((d) => d.id));
    return {
      items: items.map((d) => view(d, trails.get(d.id)!, audience)),
      next_cursor: rows.length > limit ? encodeCursor(items[items.length - 1]!.id) : null,
    };
  }

  const trail = (trx: Trx, row: Omit<TrailRow, "at" | "amount_minor"> & { amount_minor?: bigint | null }) =>
    trx("settlement_dispute_trail").insert({ ...row, amount_minor: row.amount_minor?.toString() ?? null, at: clock.now() });

  return {
    /** A partner disputes a line of one of its closed statements (another partner's statement: 404). */
    async open(trx: Trx, partnerId: string, clientId: string, statementId: string, input: DisputeInput) {
      const st: { id: string; currency: string | null; period: string } | undefined = await trx("settlement_statements")
        .where({ id: statementId, partner_id: partnerId, status: "closed" })
        .first("id", "currency", "period");
      if (!st) throw settlementErrors.make("statement-not-found", `No statement ${statementId}.`);
      const line: { line_no: number } | undefined = await trx("settlement_lines").where({ statement_id: st.id, line_no: input.line_no }).first("line_no");
      if (!line) {
        const reason = `statement ${st.id} has no line ${input.line_no}`;
        throw disputeErrors.make("statement-line-not-found", `${reason}.`, { errors: [{ field: "body/line_no", reason }] });
      }
      const id = newId("dsp");
      const now = clock.now();
      const claimed = input.amount_claimed_minor === undefined ? null : BigInt(input.amount_claimed_minor);
      try {
        await trx("settlement_disputes").insert({
          id,
          partner_id: partnerId,
          statement_id: st.id,
          line_no: line.line_no,
          reason: input.reason,
          amount_claimed_minor: claimed?.toString() ?? null,
          currency: st.currency ?? "EUR",
          opened_at: now,
        });
      } catch (err) {
        if (pgErrorCode(err) === "23505") throw disputeErrors.make("dispute-already-open", `Line ${line.line_no} of ${st.id} already has an open dispute; add to it or wait for its resolution.`);
        throw err;
      }
      await trail(trx, { dispute_id: id, kind: "opened", actor: "partner", actor_client_id: clientId, note: input.reason, amount_minor: claimed });
      await recordEvent(trx, {
        type: "dispute.opened",
        partnerId,
        occurredAt: now,
        data: { dispute_id: id, statement_id: st.id, period: st.period, line_no: line.line_no, amount_claimed_minor: num(claimed), currency: st.currency },
      });
      return one(trx, id, "partner");
    },

    listForPartner: (partnerId: string, q: { status?: string; statementId?: string; cursor?: string; limit?: number }) => page({ ...q, partnerId }, "partner"),
    getForPartner: (partnerId: string, id: string) => one(db, id, "partner", partnerId),
    listForOperator: (q: { status?: string; partnerId?: string; cursor?: string; limit?: number }) => page(q, "operator"),
    getForOperator: (id: string) => one(db, id, "operator"),

    /**
     * Either side adds a note to the trail (open or resolved: the conversation may go on). A
     * partner comments only on its own disputes.
     */
    async comment(id: string, by: { actor: Audience; clientId: string; partnerId?: string }, note: string) {
      return db.transaction(async (trx) => {
        const q = trx("settlement_disputes").where({ id });
        if (by.actor === "partner") q.andWhere({ partner_id: by.partnerId ?? "" });
        const d: { id: string } | undefined = await q.forUpdate().first("id");
        if (!d) throw disputeErrors.make("dispute-not-found", `No dispute ${id}.`);
        await trail(trx, { dispute_id: id, kind: "comment", actor: by.actor, actor_client_id: by.clientId, note });
        return one(trx, id, by.actor);
      });
    },

    /**
     * The operator resolves an open dispute. Accepted books an adjustment (signed from the
     * partner's side; by default the amount claimed) into the next open month: the month it is
     * now, or the month after the latest month a run was started for, whichever is later.
     */
    async resolve(trx: Trx, id: string, clientId: string, input: ResolutionInput) {
      const d: { id: string; partner_id: string; statement_id: string; line_no: number; status: string; amount_claimed_minor: bigint | null; currency: string } | undefined =
        await trx("settlement_disputes").where({ id }).forUpdate().first("*");
      if (!d) throw disputeErrors.make("dispute-not-found", `No dispute ${id}.`);
      if (d.status !== "open") throw disputeErrors.make("dispute-not-open", `Dispute ${id} was already ${d.status}.`);
      const now = clock.now();
      let adjustment: { id: string; amount_minor: bigint; period: string } | null = null;
      if (input.outcome === "accepted") {
        const amount = input.adjustment_minor !== undefined ? BigInt(input.adjustment_minor) : d.amount_claimed_minor === null ? null : BigInt(d.amount_claimed_minor);
        if (amount === null) {
          throw disputeErrors.make("adjustment-amount-required", "The dispute claims no amount: give adjustment_minor.", {
            errors: [{ field: "body/adjustment_minor", reason: "required when the dispute claims no amount" }],
          });
        }
        const [latest] = (await trx.raw("SELECT max(period) AS period FROM settlement_runs")).rows as Array<{ period: string | null }>;
        const current = periodOf(now);
        const period = latest?.period && latest.period >= current ? nextPeriod(latest.period) : current;
        adjustment = { id: newId("adj"), amount_minor: amount, period };
        await trx("settlement_adjustments").insert({
          id: adjustment.id,
          partner_id: d.partner_id,
          currency: d.currency,
          amount_minor: amount.toString(),
          period,
          corrects_statement_id: d.statement_id,
          corrects_line_no: d.line_no,
          dispute_id: d.id,
          description: `Dispute ${d.id} accepted: correction of statement ${d.statement_id}, line ${d.line_no}`,
          created_at: now,
        });
      } else if (input.adjustment_minor !== undefined) {
        throw disputeErrors.make("adjustment-amount-not-allowed", "A rejected dispute books nothing: leave adjustment_minor out.", {
          errors: [{ field: "body/adjustment_minor", reason: "only with outcome accepted" }],
        });
      }
      await trx("settlement_disputes").where({ id }).update({ status: input.outcome, resolution_note: input.note, resolved_at: now });
      await trail(trx, { dispute_id: id, kind: input.outcome, actor: "operator", actor_client_id: clientId, note: input.note, amount_minor: adjustment?.amount_minor ?? null });
      await recordEvent(trx, {
        type: "dispute.resolved",
        partnerId: d.partner_id,
        occurredAt: now,
        data: {
          dispute_id: id,
          statement_id: d.statement_id,
          line_no: d.line_no,
          outcome: input.outcome,
          adjustment: adjustment === null ? null : { id: adjustment.id, amount_minor: Number(adjustment.amount_minor), currency: d.currency, booked_period: adjustment.period },
        },
      });
      return one(trx, id, "operator");
    },
  };
}

export type DisputesService = ReturnType<typeof createDisputesService>;
