import type { Db, DbOrTrx } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";
import { recordEvents } from "../events/events.service.ts";
import { rulesErrors } from "./rules.errors.ts";

const DAY_MS = 86_400_000;

export type TierBasis = "spend_minor" | "points_earned";

export interface TierDef {
  code: string;
  name: string;
  rank: number;
  threshold: number;
  multiplier_bp: number;
  perks: string[];
}

export interface LadderInput {
  basis: TierBasis;
  window_days: number;
  grace_days: number;
  tiers: TierDef[];
}

interface TierRow {
  code: string;
  name: string;
  rank: number;
  threshold: bigint;
  multiplier_bp: number;
  perks: string[];
}

interface Ladder {
  basis: TierBasis;
  windowDays: number;
  graceDays: number;
  tiers: TierRow[];
}

interface MemberTierRow {
  member_id: string;
  tier_code: string;
  since: Date | string;
  downgrade_due_at: Date | string | null;
}

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

/**
 * The tier ladder: thresholds on qualifying spend or on points earned in a rolling window (never
 * the balance). Upgrades happen inside the purchase that crosses a threshold; a member below their
 * tier's threshold keeps it for `grace_days`, then the daily review moves them down.
 */
export function createTiersService(deps: { db: Db; clock: Clock; paidTier?: (conn: DbOrTrx, memberId: string) => Promise<string | null> }) {
  const { db, clock } = deps;

  async function ladder(conn: DbOrTrx): Promise<Ladder | null> {
    const l: { basis: TierBasis; window_days: number; grace_days: number } | undefined = await conn("tier_ladder").where({ id: 1 }).first();
    if (!l) return null;
    const tiers: TierRow[] = await conn("tiers").orderBy("rank", "asc").select("*");
    return { basis: l.basis, windowDays: l.window_days, graceDays: l.grace_days, tiers: tiers.map((t) => ({ ...t, threshold: BigInt(t.threshold) })) };
  }

  /** The qualifying figure in (at − window, at]: net spend after refunds and the part paid with points, or points earned net of clawbacks. */
  async function qualifying(conn: DbOrTrx, l: Ladder, memberId: string, at: Date): Promise<bigint> {
    const from = new Date(at.getTime() - l.windowDays * DAY_MS);
    const expr =
      l.basis === "spend_minor"
        ? "GREATEST(amount_minor - refunded_minor - burn_amount_minor, 0)"
        : "points_earned - points_clawed_back";
    const row: { v: bigint | string | null } = await conn("point_transactions")
      .where({ member_id: memberId })
      .whereIn("kind", ["earn", "purchase"])
      .andWhere("occurred_at", ">", from)
      .andWhere("occurred_at", "<=", at)
      .first(conn.raw(`COALESCE(SUM(${expr}), 0)::bigint AS v`));
    return BigInt(row.v ?? 0);
  }

  /** The highest tier whose threshold `value` reaches, or null. */
  function tierFor(l: Ladder, value: bigint): TierRow | null {
    let best: TierRow | null = null;
    for (const t of l.tiers) if (value >= t.threshold) best = t;
    return best;
  }

  async function move(conn: DbOrTrx, memberId: string, from: string | null, to: TierRow | null, reason: "upgrade" | "downgrade", now: Date): Promise<void> {
    if (to) {
      await conn("member_tiers")
        .insert({ member_id: memberId, tier_code: to.code, since: now, downgrade_due_at: null, updated_at: now })
        .onConflict("member_id")
        .merge(["tier_code", "since", "downgrade_due_at", "updated_at"]);
    } else {
      await conn("member_tiers").where({ member_id: memberId }).delete();
    }
    // A tier is the member's across the network: every partner the member is linked to is told,
    // one event each (an event is always one partner's, and only addressed events are delivered).
    const partners = (await conn("member_partner_links").where({ member_id: memberId }).distinct("partner_id").orderBy("partner_id")) as Array<{ partner_id: string }>;
    const data = { member_id: memberId, from_tier: from, to_tier: to?.code ?? null, reason };
    await recordEvents(conn, partners.map((p) => ({ type: "tier.changed", partnerId: p.partner_id, occurredAt: now, data })));
  }

  function rankOf(l: Ladder, code: string | null): number {
    return code === null ? 0 : (l.tiers.find((t) => t.code === code)?.rank ?? 0);
  }

  return {
    async getLadder() {
      const l = await ladder(db);
      if (!l) throw rulesErrors.make("no-tier-ladder", "No tier ladder is defined yet.");
      return {
        basis: l.basis,
        window_days: l.windowDays,
        grace_days: l.graceDays,
        tiers: l.tiers.map((t) => ({ code: t.code, name: t.name, rank: t.rank, threshold: Number(t.threshold), multiplier_bp: t.multiplier_bp, perks: t.perks })),
      };
    },

    /** Replaces the ladder. Thresholds must grow with rank, so "the highest tier reached" is one tier. */
    async setLadder(input: LadderInput) {
      const sorted = [...input.tiers].sort((a, b) => a.rank - b.rank);
      for (let i = 1; i < sorted.length; i++) {
        if (sorted[i]!.rank === sorted[i - 1]!.rank || sorted[i]!.threshold <= sorted[i - 1]!.threshold) {
          throw rulesErrors.make("invalid-ladder", "Ranks must be distinct and thresholds must grow with rank.");
        }
      }
      if (new Set(sorted.map((t) => t.code)).size !== sorted.length) throw rulesErrors.make("invalid-ladder", "Tier codes must be distinct.");
      await db.transaction(async (trx) => {
        await trx("tier_ladder")
          .insert({ id: 1, basis: input.basis, window_days: input.window_days, grace_days: input.grace_days, updated_at: clock.now() })
          .onConflict("id")
          .merge();
        await trx("tiers").delete();
        for (const t of sorted) {
          await trx("tiers").insert({ code: t.code, name: t.name, rank: t.rank, threshold: String(t.threshold), multiplier_bp: t.multiplier_bp, perks: JSON.stringify(t.perks) });
        }
      });
      return this.getLadder();
    },

    /** The member's tier now (and its earn multiplier), or null. */
    /** The member's tier now: the one earned, or the one a paid membership grants, whichever ranks higher. */
    async current(conn: DbOrTrx, memberId: string): Promise<{ code: string; multiplierBp: number } | null> {
      const earned: { tier_code: string } | undefined = await conn("member_tiers").where({ member_id: memberId }).first("tier_code");
      const paid = deps.paidTier ? await deps.paidTier(conn, memberId) : null;
      const codes = [earned?.tier_code, paid].filter((c): c is string => !!c);
      if (codes.length === 0) return null;
      const rows: Array<{ code: string; rank: number; multiplier_bp: number }> = await conn("tiers").whereIn("code", codes).select("code", "rank", "multiplier_bp");
      const best = rows.sort((a, b) => b.rank - a.rank)[0];
      return best ? { code: best.code, multiplierBp: best.multiplier_bp } : { code: codes[0]!, multiplierBp: 10_000 };
    },

    async hasLadder(conn: DbOrTrx): Promise<boolean> {
      return (await conn("tier_ladder").where({ id: 1 }).first("id")) !== undefined;
    },

    /** Inside the earn's transaction: an upgrade at once when this purchase crosses a threshold. */
    async afterPurchase(trx: DbOrTrx, memberId: string, at: Date, spendMinor: bigint, points: bigint): Promise<void> {
      const l = await ladder(trx);
      if (!l || l.tiers.length === 0) return;
      // The purchase itself is not written yet (rules run before it): add it by hand.
      const value = (await qualifying(trx, l, memberId, at)) + (l.basis === "spend_minor" ? spendMinor : points);
      const cur: MemberTierRow | undefined = await trx("member_tiers").where({ member_id: memberId }).forUpdate().first();
      const curCode = cur?.tier_code ?? null;
      const target = tierFor(l, value);
      if (target && target.rank > rankOf(l, curCode)) {
        await move(trx, memberId, curCode, target, "upgrade", clock.now());
      } else if (cur?.downgrade_due_at && target && target.rank >= rankOf(l, curCode)) {
        await trx("member_tiers").where({ member_id: memberId }).update({ downgrade_due_at: null, updated_at: clock.now() });
      }
    },

    async memberTier(memberId: string) {
      const row: MemberTierRow | undefined = await db("member_tiers").where({ member_id: memberId }).first();
      const l = await ladder(db);
      const value = l ? await qualifying(db, l, memberId, clock.now()) : 0n;
      const effective = await this.current(db, memberId);
      const perks = effective ? ((await db("tiers").where({ code: effective.code }).first("perks")) as { perks: string[] } | undefined)?.perks ?? [] : [];
      return {
        member_id: memberId,
        tier: row?.tier_code ?? null,
        effective_tier: effective?.code ?? null,
        perks,
        since: row ? iso(row.since) : null,
        downgrade_due_at: row ? iso(row.downgrade_due_at) : null,
        qualifying_value: Number(value),
        basis: l?.basis ?? null,
      };
    },

    /**
     * The daily review: members below their tier's threshold get a grace period; when it has run
     * out and they still fall short, they move down to the tier they reach (or none). Safe to repeat.
     */
    async reviewTiers(): Promise<{ graced: number; downgraded: number; upgraded: number }> {
      const l = await ladder(db);
      const out = { graced: 0, downgraded: 0, upgraded: 0 };
      if (!l) return out;
      const ids: Array<{ member_id: string }> = await db("member_tiers").orderBy("member_id").select("member_id");
      for (const { member_id } of ids) {
        await db.transaction(async (trx) => {
          const cur: MemberTierRow | undefined = await trx("member_tiers").where({ member_id }).forUpdate().first();
          if (!cur) return;
          const now = clock.now();
          const target = tierFor(l, await qualifying(trx, l, member_id, now));
          const curRank = rankOf(l, cur.tier_code);
          const targetRank = target?.rank ?? 0;
          if (targetRank > curRank) {
            await move(trx, member_id, cur.tier_code, target, "upgrade", now);
            out.upgraded++;
          } else if (targetRank === curRank) {
            if (cur.downgrade_due_at) await trx("member_tiers").where({ member_id }).update({ downgrade_due_at: null, updated_at: now });
          } else if (!cur.downgrade_due_at) {
            await trx("member_tiers").where({ member_id }).update({ downgrade_due_at: new Date(now.getTime() + l.graceDays * DAY_MS), updated_at: now });
            out.graced++;
          } else if (new Date(cur.downgrade_due_at) <= now) {
            await move(trx, member_id, cur.tier_code, target, "downgrade", now);
            out.downgraded++;
          }
        });
      }
      return out;
    },
  };
}

export type TiersService = ReturnType<typeof createTiersService>;
