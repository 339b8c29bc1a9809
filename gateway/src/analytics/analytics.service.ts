import type { Db } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";

/**
 * Network analytics for the operator: what finance and marketing ask for (the domain's "measures"),
 * computed by set-based SQL over the ledger and the earn tables. Read-only: it never writes, and it
 * reads only posted facts (postings, entries, lots, point transactions), so every figure can be
 * re-derived from the ledger.
 *
 * Days and months are UTC. A window is [from, to): `from` is a day's start, `to` the start of the
 * day after the last one. Ratios are integers in basis points, floored (10000 = 100 %), so no float
 * touches a figure; percentages are only formatted for display.
 *
 * Only the live network counts: sandbox partners and sandbox members are left out of every measure.
 *
 * Definitions (docs/operator-console.md says the same):
 * - liability: points members hold (their points, held and debt accounts), end of each day;
 * - issued: points credited to members by partners (gross: negative postings on partner issuance
 *   accounts); redeemed: points spent with partners (gross: positive postings on partner redemption
 *   accounts); refund reversals are not netted off either;
 * - redemption rate: redeemed ÷ issued in the window;
 * - breakage: points expired in the window; breakage rate: of the points of the lots whose expiry
 *   fell in the window (what came due), the share that expired unused;
 * - spend: purchase amount (kinds earn and purchase) net of refunds, in one currency;
 * - active members: distinct members with any point transaction in the month;
 * - retention: of the members active in a month, the share active again in the next;
 * - RFM: over the window, each spending member scored 1–3 on recency (days since the last purchase),
 *   frequency (purchases) and monetary (spend) by NTILE(3) (ties by member id), then a segment
 *   from R and F;
 * - top fifth: members ranked by spend (ties by member id); the top ceil(n ÷ 5) members' share of
 *   the total spend.
 */

const MEMBER_KINDS = "('member_points', 'member_points_held', 'member_points_debt')";

/*
 * The live network only: developers' sandbox partners and their sandbox members (the portal's
 * sandbox network, `sandbox = true`) are left out of every measure, so test traffic never moves a
 * figure the operator reads. Members' balances and lots are filtered by the member's network,
 * partners' flows and purchases by the partner's (the two never meet: member access refuses it).
 */
const LIVE_MEMBER_OF = (col: string) => `JOIN members lm ON lm.id = ${col} AND NOT lm.sandbox`;
const LIVE_PARTNER_OF = (col: string) => `JOIN partners lp ON lp.id = ${col} AND NOT lp.sandbox`;
const DAY_MS = 86_400_000;

export interface Window {
  from: Date;
  to: Date;
}

const day = (d: Date) => d.toISOString().slice(0, 10);
const big = (v: unknown): bigint => (v === null || v === undefined ? 0n : BigInt(v as string | number | bigint));
const ratioBps = (num: bigint, den: bigint): number | null => (den === 0n ? null : Number((num * 10_000n) / den));

function rows<T>(r: unknown): T[] {
  return (r as { rows: T[] }).rows;
}

export const RFM_SEGMENTS = ["champions", "loyal", "new", "at_risk", "lost", "needs_attention"] as const;
export type RfmSegment = (typeof RFM_SEGMENTS)[number];

/** The segment of an R and F score (1–3 each, 3 best). */
export function rfmSegment(r: number, f: number): RfmSegment {
  if (r === 3 && f === 3) return "champions";
  if (r >= 2 && f >= 2) return "loyal";
  if (r === 3 && f === 1) return "new";
  if (r === 1 && f >= 2) return "at_risk";
  if (r === 1 && f === 1) return "lost";
  return "needs_attention";
}

export function createAnalyticsService(deps: { db: Db; clock: Clock }) {
  const { db, clock } = deps;

  return {
    /** The last `days` whole days up to and including today (UTC). */
    lastDays(days: number): Window {
      const now = clock.now();
      const to = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) + DAY_MS);
      return { from: new Date(to.getTime() - days * DAY_MS), to };
    },

    /** Points liability outstanding at the end of each day of the window. */
    async liability(w: Window): Promise<Array<{ day: string; points: bigint }>> {
      const r = await db.raw(
        `WITH days AS (
           SELECT d::date AS day FROM generate_series(?::date, (?::date - 1), interval '1 day') AS d
         ), opening AS (
           SELECT coalesce(sum(p.amount), 0)::bigint AS points
             FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id JOIN ledger_entries e ON e.id = p.entry_id
                 ${LIVE_MEMBER_OF("a.member_id")}
            WHERE a.kind IN ${MEMBER_KINDS} AND e.occurred_at < ?::timestamptz
         ), daily AS (
           SELECT (e.occurred_at AT TIME ZONE 'UTC')::date AS day, sum(p.amount)::bigint AS delta
             FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id JOIN ledger_entries e ON e.id = p.entry_id
                 ${LIVE_MEMBER_OF("a.member_id")}
            WHERE a.kind IN ${MEMBER_KINDS} AND e.occurred_at >= ?::timestamptz AND e.occurred_at < ?::timestamptz
            GROUP BY 1
         )
         SELECT to_char(d.day, 'YYYY-MM-DD') AS day,
                ((SELECT points FROM opening) + sum(coalesce(daily.delta, 0)) OVER (ORDER BY d.day))::bigint AS points
           FROM days d LEFT JOIN daily ON daily.day = d.day
          ORDER BY d.day`,
        [day(w.from), day(w.to), w.from.toISOString(), w.from.toISOString(), w.to.toISOString()],
      );
      return rows<{ day: string; points: unknown }>(r).map((x) => ({ day: x.day, points: big(x.points) }));
    },

    /** Points issued and redeemed per day (gross), every day of the window present. */
    async issuedRedeemed(w: Window): Promise<Array<{ day: string; issued: bigint; redeemed: bigint }>> {
      const r = await db.raw(
        `WITH days AS (
           SELECT d::date AS day FROM generate_series(?::date, (?::date - 1), interval '1 day') AS d
         ), flows AS (
           SELECT (e.occurred_at AT TIME ZONE 'UTC')::date AS day,
                  coalesce(sum(-p.amount) FILTER (WHERE a.kind = 'partner_issuance' AND p.amount < 0), 0)::bigint AS issued,
                  coalesce(sum(p.amount) FILTER (WHERE a.kind = 'partner_redemption' AND p.amount > 0), 0)::bigint AS redeemed
             FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id JOIN ledger_entries e ON e.id = p.entry_id
                  ${LIVE_PARTNER_OF("a.partner_id")}
            WHERE a.kind IN ('partner_issuance', 'partner_redemption') AND e.occurred_at >= ?::timestamptz AND e.occurred_at < ?::timestamptz
            GROUP BY 1
         )
         SELECT to_char(d.day, 'YYYY-MM-DD') AS day, coalesce(f.issued, 0)::bigint AS issued, coalesce(f.redeemed, 0)::bigint AS redeemed
           FROM days d LEFT JOIN flows f ON f.day = d.day ORDER BY d.day`,
        [day(w.from), day(w.to), w.from.toISOString(), w.to.toISOString()],
      );
      return rows<{ day: string; issued: unknown; redeemed: unknown }>(r).map((x) => ({ day: x.day, issued: big(x.issued), redeemed: big(x.redeemed) }));
    },

    /** Redemption rate over the window: gross redeemed ÷ gross issued. */
    async redemptionRate(w: Window): Promise<{ issued: bigint; redeemed: bigint; rate_bps: number | null }> {
      const [x] = rows<{ issued: unknown; redeemed: unknown }>(
        await db.raw(
          `SELECT coalesce(sum(-p.amount) FILTER (WHERE a.kind = 'partner_issuance' AND p.amount < 0), 0)::bigint AS issued,
                  coalesce(sum(p.amount) FILTER (WHERE a.kind = 'partner_redemption' AND p.amount > 0), 0)::bigint AS redeemed
             FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id JOIN ledger_entries e ON e.id = p.entry_id
                  ${LIVE_PARTNER_OF("a.partner_id")}
            WHERE a.kind IN ('partner_issuance', 'partner_redemption') AND e.occurred_at >= ?::timestamptz AND e.occurred_at < ?::timestamptz`,
          [w.from.toISOString(), w.to.toISOString()],
        ),
      );
      const issued = big(x?.issued);
      const redeemed = big(x?.redeemed);
      return { issued, redeemed, rate_bps: ratioBps(redeemed, issued) };
    },

    /**
     * Breakage: points expired in the window (`expired`, by the expiry entries' time), and of the
     * lots whose expiry fell in the window, how many points came due (`due`) and how many of those
     * expired unused (`expired_of_due`, from the lots' own movements): the rate is the latter ÷ due,
     * so an expiry run that is late does not distort it.
     */
    async breakage(w: Window): Promise<{ expired: bigint; due: bigint; expired_of_due: bigint; rate_bps: number | null }> {
      const [x] = rows<{ expired: unknown; due: unknown; expired_of_due: unknown }>(
        await db.raw(
          `SELECT (SELECT coalesce(sum(p.amount), 0)::bigint
                     FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id JOIN ledger_entries e ON e.id = p.entry_id
                          ${LIVE_MEMBER_OF("e.member_id")}
                    WHERE a.kind = 'breakage' AND e.kind = 'expire' AND e.occurred_at >= ?::timestamptz AND e.occurred_at < ?::timestamptz) AS expired,
                  (SELECT coalesce(sum(l.amount), 0)::bigint FROM ledger_lots l ${LIVE_MEMBER_OF("l.member_id")}
                    WHERE l.expires_at >= ?::timestamptz AND l.expires_at < ?::timestamptz) AS due,
                  (SELECT coalesce(sum(m.amount), 0)::bigint
                     FROM ledger_lot_movements m JOIN ledger_lots l ON l.id = m.lot_id JOIN ledger_entries e ON e.id = m.entry_id
                          ${LIVE_MEMBER_OF("l.member_id")}
                    WHERE e.kind = 'expire' AND l.expires_at >= ?::timestamptz AND l.expires_at < ?::timestamptz) AS expired_of_due`,
          [w.from.toISOString(), w.to.toISOString(), w.from.toISOString(), w.to.toISOString(), w.from.toISOString(), w.to.toISOString()],
        ),
      );
      const expired = big(x?.expired);
      const due = big(x?.due);
      const ofDue = big(x?.expired_of_due);
      return { expired, due, expired_of_due: ofDue, rate_bps: ratioBps(ofDue, due) };
    },

    /** Distinct members with any point transaction, per month of the window (months it touches). */
    async activeMembers(w: Window): Promise<Array<{ month: string; members: number }>> {
      const r = await db.raw(
        `WITH months AS (
           SELECT m::date AS month FROM generate_series(date_trunc('month', ?::timestamp), date_trunc('month', ?::timestamp - interval '1 microsecond'), interval '1 month') AS m
         ), active AS (
           SELECT date_trunc('month', t.occurred_at AT TIME ZONE 'UTC')::date AS month, count(DISTINCT t.member_id)::int AS members
             FROM point_transactions t ${LIVE_PARTNER_OF("t.partner_id")}
            WHERE t.occurred_at >= ?::timestamptz AND t.occurred_at < ?::timestamptz
            GROUP BY 1
         )
         SELECT to_char(m.month, 'YYYY-MM') AS month, coalesce(a.members, 0)::int AS members
           FROM months m LEFT JOIN active a ON a.month = m.month ORDER BY m.month`,
        [w.from.toISOString().slice(0, 19), w.to.toISOString().slice(0, 19), w.from.toISOString(), w.to.toISOString()],
      );
      return rows<{ month: string; members: number }>(r).map((x) => ({ month: x.month, members: Number(x.members) }));
    },

    /**
     * Month-on-month retention: for each month of the window after its first, the members active in
     * the month before (`base`) and how many of them are active again in this month (`retained`).
     */
    async retention(w: Window): Promise<Array<{ month: string; base: number; retained: number; rate_bps: number | null }>> {
      const r = await db.raw(
        `WITH months AS (
           SELECT m::date AS month FROM generate_series(date_trunc('month', ?::timestamp) + interval '1 month', date_trunc('month', ?::timestamp - interval '1 microsecond'), interval '1 month') AS m
         ), active AS (
           SELECT DISTINCT t.member_id, date_trunc('month', t.occurred_at AT TIME ZONE 'UTC')::date AS month
             FROM point_transactions t ${LIVE_PARTNER_OF("t.partner_id")}
            WHERE t.occurred_at >= date_trunc('month', ?::timestamp) AT TIME ZONE 'UTC' AND t.occurred_at < ?::timestamptz
         )
         SELECT to_char(m.month, 'YYYY-MM') AS month,
                count(prev.member_id)::int AS base,
                count(cur.member_id)::int AS retained
           FROM months m
           LEFT JOIN active prev ON prev.month = (m.month - interval '1 month')::date
           LEFT JOIN active cur ON cur.member_id = prev.member_id AND cur.month = m.month
          GROUP BY m.month ORDER BY m.month`,
        [w.from.toISOString().slice(0, 19), w.to.toISOString().slice(0, 19), w.from.toISOString().slice(0, 19), w.to.toISOString()],
      );
      return rows<{ month: string; base: number; retained: number }>(r).map((x) => ({
        month: x.month,
        base: Number(x.base),
        retained: Number(x.retained),
        rate_bps: ratioBps(BigInt(x.retained), BigInt(x.base)),
      }));
    },

    /** RFM over the window in one currency: members per segment with their spend, and every member's scores. */
    async rfm(w: Window, currency: string) {
      const r = await db.raw(
        `WITH spend AS (
           SELECT t.member_id,
                  (?::date - max((t.occurred_at AT TIME ZONE 'UTC')::date))::int AS recency_days,
                  count(*)::int AS frequency,
                  sum(t.amount_minor - t.refunded_minor)::bigint AS monetary
             FROM point_transactions t ${LIVE_PARTNER_OF("t.partner_id")}
            WHERE t.kind IN ('earn', 'purchase') AND t.currency = ? AND t.occurred_at >= ?::timestamptz AND t.occurred_at < ?::timestamptz
            GROUP BY t.member_id
         )
         SELECT member_id, recency_days, frequency, monetary,
                ntile(3) OVER (ORDER BY recency_days DESC, member_id) AS r,
                ntile(3) OVER (ORDER BY frequency, member_id) AS f,
                ntile(3) OVER (ORDER BY monetary, member_id) AS m
           FROM spend ORDER BY member_id`,
        [day(w.to), currency, w.from.toISOString(), w.to.toISOString()],
      );
      const members = rows<{ member_id: string; recency_days: number; frequency: number; monetary: unknown; r: unknown; f: unknown; m: unknown }>(r).map((x) => {
        const rs = Number(x.r);
        const fs = Number(x.f);
        return { member_id: x.member_id, recency_days: Number(x.recency_days), frequency: Number(x.frequency), monetary: big(x.monetary), r: rs, f: fs, m: Number(x.m), segment: rfmSegment(rs, fs) };
      });
      const segments = RFM_SEGMENTS.map((s) => {
        const mine = members.filter((m) => m.segment === s);
        return { segment: s, members: mine.length, spend: mine.reduce((a, m) => a + m.monetary, 0n) };
      });
      return { currency, segments, members };
    },

    /** The share of spend from the top fifth of spending members (the 20/80 check), in one currency. */
    async topFifthShare(w: Window, currency: string): Promise<{ members: number; top_members: number; top_spend: bigint; total_spend: bigint; share_bps: number | null }> {
      const [x] = rows<{ members: unknown; top_members: unknown; top_spend: unknown; total_spend: unknown }>(
        await db.raw(
          `WITH spend AS (
             SELECT t.member_id, sum(t.amount_minor - t.refunded_minor)::bigint AS spend
               FROM point_transactions t ${LIVE_PARTNER_OF("t.partner_id")}
              WHERE t.kind IN ('earn', 'purchase') AND t.currency = ? AND t.occurred_at >= ?::timestamptz AND t.occurred_at < ?::timestamptz
              GROUP BY t.member_id
           ), ranked AS (
             SELECT spend, row_number() OVER (ORDER BY spend DESC, member_id) AS rn, count(*) OVER () AS n FROM spend
           )
           SELECT coalesce(max(n), 0)::int AS members,
                  coalesce(max(ceil(n / 5.0)), 0)::int AS top_members,
                  coalesce(sum(spend) FILTER (WHERE rn <= ceil(n / 5.0)), 0)::bigint AS top_spend,
                  coalesce(sum(spend), 0)::bigint AS total_spend
             FROM ranked`,
          [currency, w.from.toISOString(), w.to.toISOString()],
        ),
      );
      const top = big(x?.top_spend);
      const total = big(x?.total_spend);
      return { members: Number(x?.members ?? 0), top_members: Number(x?.top_members ?? 0), top_spend: top, total_spend: total, share_bps: ratioBps(top, total) };
    },
  };
}

export type AnalyticsService = ReturnType<typeof createAnalyticsService>;
