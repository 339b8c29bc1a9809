import type { Db, DbOrTrx, Trx } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";
import { newId } from "../infra/ids.ts";
import { recordEvent } from "../events/events.service.ts";
import { partnerFunded, type Ledger } from "../ledger/ledger.service.ts";
import type { MemberAccess } from "../members/member-access.ts";
import { baseRateComputation, baseRateRules, type EarnComputation, type EarnRules } from "../earn/earn.rules.ts";
import { rulesErrors } from "./rules.errors.ts";
import { applyCaps, applyRules, partnerScope, periodOf, ruleMatches, RULE_TYPES, type Caps, type RuleDef, type RuleState, type RuleType, type Target } from "./rules.engine.ts";
import type { TiersService } from "./tiers.service.ts";

const DAY_MS = 86_400_000;

export interface RuleInput {
  name: string;
  type: RuleType;
  priority?: number;
  stack_group?: string | null;
  valid_from: string;
  valid_until?: string | null;
  target?: Target;
  partner_ids?: string[] | null;
  params: Record<string, unknown>;
  caps?: Caps;
}

interface RuleRow {
  id: string;
  owner_partner_id: string | null;
  name: string;
  type: RuleType;
  status: "draft" | "active" | "paused" | "archived";
  priority: number;
  stack_group: string | null;
  valid_from: Date | string;
  valid_until: Date | string | null;
  target: Target;
  partner_ids: string[] | null;
  params: Record<string, unknown>;
  caps: Caps;
  created_at: Date | string;
}

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

export function toDef(r: RuleRow): RuleDef {
  return {
    id: r.id,
    ownerPartnerId: r.owner_partner_id,
    name: r.name,
    type: r.type,
    priority: r.priority,
    stackGroup: r.stack_group,
    validFrom: new Date(r.valid_from),
    validUntil: r.valid_until ? new Date(r.valid_until) : null,
    target: r.target,
    partnerIds: r.partner_ids,
    params: r.params,
    caps: r.caps,
  };
}

function ruleView(r: RuleRow) {
  return {
    id: r.id,
    owner: r.owner_partner_id ? { kind: "partner" as const, partner_id: r.owner_partner_id } : { kind: "operator" as const, partner_id: null },
    funded_by: r.owner_partner_id ? `partner:${r.owner_partner_id}` : "operator",
    name: r.name,
    type: r.type,
    status: r.status,
    priority: r.priority,
    stack_group: r.stack_group,
    valid_from: iso(r.valid_from)!,
    valid_until: iso(r.valid_until),
    target: r.target,
    partner_ids: r.partner_ids,
    params: r.params,
    caps: r.caps,
    created_at: iso(r.created_at)!,
  };
}

/** What each type needs in `params`; checked on create so a rule never fails at earn time. */
export const REQUIRED_PARAMS: Record<RuleType, string[]> = {
  base_rate: ["points", "per_minor"],
  multiplier: ["multiplier_bp"],
  nth_purchase: ["every", "percent_bp", "point_value_minor"],
  first_purchase: ["points"],
  birthday: ["points"],
  referral: ["referrer_points", "referred_points", "clear_after_days"],
  custom_event: ["event", "points"],
  fixed_bonus: ["points"],
};

function validate(input: RuleInput): void {
  if (!RULE_TYPES.includes(input.type)) throw rulesErrors.make("invalid-rule", `Unknown rule type ${input.type}.`);
  const missing = REQUIRED_PARAMS[input.type].filter((k) => input.params[k] === undefined);
  if (missing.length) throw rulesErrors.make("invalid-rule", `A ${input.type} rule needs params ${missing.join(", ")}.`, { missing_params: missing });
  for (const [k, v] of Object.entries(input.params)) {
    if (typeof v === "number" && (!Number.isSafeInteger(v) || v < 0)) throw rulesErrors.make("invalid-rule", `params.${k} must be a non-negative integer.`);
  }
  if (input.params.per_minor === 0 || input.params.point_value_minor === 0 || input.params.every === 0) throw rulesErrors.make("invalid-rule", "Divisors and `every` must be positive.");
  if (input.type === "multiplier" && Number(input.params.multiplier_bp) <= 10_000) throw rulesErrors.make("invalid-rule", "multiplier_bp must exceed 10000 (×1).");
  if (input.valid_until && new Date(input.valid_until) <= new Date(input.valid_from)) throw rulesErrors.make("invalid-rule", "valid_until must be after valid_from.");
}

/** Answers the engine's questions from the database, as of `before` (the purchase's own instant). */
export function dbRuleState(conn: DbOrTrx): RuleState {
  return {
    async purchasesBetween(memberId, partners, from, before) {
      // A wholly refunded purchase is no purchase: it counts neither as a first nor towards "every n-th".
      const q = conn("point_transactions")
        .where({ member_id: memberId })
        .whereIn("kind", ["earn", "purchase"])
        .andWhere("occurred_at", "<", before)
        .andWhereRaw("refunded_minor < amount_minor");
      if (from) q.andWhere("occurred_at", ">=", from);
      if (partners) q.whereIn("partner_id", partners);
      const row: { n: bigint | string | number } = await q.first(conn.raw("count(*)::int AS n"));
      return Number(row.n);
    },
    async usage(ruleId, memberId, from, to) {
      const txn = await conn.raw(
        `SELECT COALESCE(SUM((i->>'points')::bigint), 0)::bigint AS points, count(*)::int AS times
           FROM point_transactions t, jsonb_array_elements(t.computation->'items') i
          WHERE i->>'rule_id' = ? AND t.occurred_at >= ? AND t.occurred_at < ? ${memberId ? "AND t.member_id = ?" : ""}`,
        memberId ? [ruleId, from, to, memberId] : [ruleId, from, to],
      );
      const aw = conn("rule_awards").where({ rule_id: ruleId }).andWhere("occurred_at", ">=", from).andWhere("occurred_at", "<", to);
      if (memberId) aw.andWhere({ member_id: memberId });
      const a: { points: bigint | string | null; times: number | string } = await aw.first(conn.raw("COALESCE(SUM(points), 0)::bigint AS points, count(*)::int AS times"));
      const t = (txn.rows as Array<{ points: bigint | string; times: number }>)[0]!;
      return { points: BigInt(t.points) + BigInt(a.points ?? 0), times: Number(t.times) + Number(a.times) };
    },
  };
}

async function memberFacts(conn: DbOrTrx, memberId: string) {
  // Sequential: `conn` is often a transaction, one connection, one query at a time.
  const segs = (await conn("member_segments").where({ member_id: memberId }).pluck("segment")) as string[];
  const prof = (await conn("member_profiles").where({ member_id: memberId }).first("date_of_birth")) as { date_of_birth: string | null } | undefined;
  return { segments: new Set(segs), dateOfBirth: prof?.date_of_birth ?? null };
}

/** The contract base line, with who funds it and how it rounds, like every rule's line. */
function withFunding(base: EarnComputation, partnerId: string): EarnComputation {
  return { points: base.points, items: base.items.map((i) => ({ ...i, rule_id: null, funded_by: `partner:${partnerId}`, rounding: "floor(amount_minor × earn_points ÷ earn_per_minor)" })) };
}

/**
 * Earn rules and campaigns: the operator's network-wide rules and partners' own promotions, the
 * `EarnRules` the earn service calls, custom partner events, referrals, and simulation.
 */
export function createRulesService(deps: { db: Db; clock: Clock; ledger: Ledger; members: MemberAccess; tiers: TiersService }) {
  const { db, clock, ledger, members, tiers } = deps;

  async function activeRules(conn: DbOrTrx, at: Date, types?: RuleType[]): Promise<RuleDef[]> {
    const q = conn("earn_rules")
      .where({ status: "active" })
      .andWhere("valid_from", "<=", at)
      .andWhere((w) => w.whereNull("valid_until").orWhere("valid_until", ">", at))
      .orderBy([{ column: "priority" }, { column: "id" }]);
    if (types) q.whereIn("type", types);
    return ((await q.select("*")) as RuleRow[]).map(toDef);
  }

  async function getRow(conn: DbOrTrx, id: string, ownerPartnerId?: string | null): Promise<RuleRow> {
    const row: RuleRow | undefined = await conn("earn_rules").where({ id }).first();
    // A partner sees only its own rules; the operator sees all.
    if (!row || (ownerPartnerId !== undefined && row.owner_partner_id !== ownerPartnerId)) throw rulesErrors.make("rule-not-found", `No rule ${id}.`);
    return row;
  }

  const PURCHASE_TYPES: RuleType[] = ["base_rate", "multiplier", "nth_purchase", "first_purchase", "birthday", "fixed_bonus"];

  /** The earn service's rules: the contract base rate, then every active rule, then the tier multiplier. */
  const earnRules: EarnRules = {
    async compute(ctx) {
      const base = await baseRateRules.compute(ctx);
      const conn = ctx.conn ?? db;
      const live = (conn as Trx).isTransaction === true;
      // One after the other: on a transaction they share one connection, which runs one query at a time
      // (node-postgres queues a second one, and will refuse to from pg 9).
      const rules = await activeRules(conn, ctx.occurredAt, PURCHASE_TYPES);
      const ladder = await tiers.hasLadder(conn);
      // Nothing configured: the contract's base rate is the whole answer (one query more than before rules).
      if (rules.length === 0 && !ladder) return withFunding(base, ctx.partnerId);
      // Serialise a member's earns so per-member caps and "n-th purchase" counts hold under concurrency.
      if (live && rules.length > 0) await conn("members").where({ id: ctx.memberId }).forUpdate().first("id");
      const tier = ladder ? await tiers.current(conn, ctx.memberId) : null;
      const mf = await memberFacts(conn, ctx.memberId);
      if (live) {
        // A rule with a budget for everyone: one earn at a time per rule, so the budget holds.
        const budgeted = rules.filter((r) => r.caps.total_points !== undefined).map((r) => r.id);
        if (budgeted.length) await conn("earn_rules").whereIn("id", budgeted).orderBy("id").forUpdate().select("id");
      }
      const items = await applyRules(
        rules,
        {
          partnerId: ctx.partnerId,
          memberId: ctx.memberId,
          occurredAt: ctx.occurredAt,
          earnableMinor: ctx.earnableMinor,
          lines: ctx.lines,
          earnPoints: ctx.contract.earnPoints,
          earnPerMinor: ctx.contract.earnPerMinor,
          basePoints: base.points,
          tierCode: tier?.code ?? null,
          tierMultiplierBp: tier?.multiplierBp ?? 10_000,
          segments: mf.segments,
          dateOfBirth: mf.dateOfBirth,
        },
        dbRuleState(conn),
      );
      const points = items.reduce((s, i) => s + BigInt(i.points), base.points);
      if (live && ladder) await tiers.afterPurchase(conn, ctx.memberId, ctx.occurredAt, ctx.earnableMinor, points);
      return { points, items: [...withFunding(base, ctx.partnerId).items, ...items] };
    },
    // The batched earn's shortcut: no purchase rule active at that instant and no tier ladder is
    // exactly the "nothing configured" case above, answered without the database.
    contractOnly: {
      whenSql: (at) => `NOT EXISTS (SELECT 1 FROM earn_rules r WHERE r.status = 'active' AND r.type IN (${PURCHASE_TYPES.map((t) => `'${t}'`).join(", ")})
                  AND r.valid_from <= ${at} AND (r.valid_until IS NULL OR r.valid_until > ${at}))
                AND NOT EXISTS (SELECT 1 FROM tier_ladder WHERE id = 1)`,
      compute: (ctx) => withFunding(baseRateComputation(ctx), ctx.partnerId),
    },
  };

  /** Credits points outside a purchase (custom events, referrals): award row first, so a repeat gives nothing. */
  async function award(trx: Trx, a: { rule: RuleDef; memberId: string; fundingPartnerId: string; sourceType: string; sourceId: string; points: bigint; at: Date }): Promise<{ id: string; points: number } | null> {
    const id = newId("awd");
    const inserted = (await trx("rule_awards")
      .insert({
        id,
        rule_id: a.rule.id,
        member_id: a.memberId,
        funding_partner_id: a.fundingPartnerId,
        source_type: a.sourceType,
        source_id: a.sourceId,
        points: a.points.toString(),
        occurred_at: a.at,
      })
      .onConflict(["rule_id", "source_type", "source_id", "member_id"])
      .ignore()
      .returning("id")) as unknown[];
    if (inserted.length === 0) return null;
    const contract: { id: string; points_validity_days: number } | undefined = await trx("contract_versions")
      .where({ partner_id: a.fundingPartnerId })
      .andWhere("effective_from", "<=", a.at)
      .orderBy("effective_from", "desc")
      .first("id", "points_validity_days");
    const res = await ledger.earn(trx, {
      memberId: a.memberId,
      partnerId: a.fundingPartnerId,
      points: a.points,
      contractVersionId: contract?.id ?? null,
      earnedAt: a.at,
      expiresAt: new Date(a.at.getTime() + (contract?.points_validity_days ?? 730) * DAY_MS),
      ref: { type: "rule_award", id },
      memo: { rule_id: a.rule.id, source_type: a.sourceType },
      // An operator rule's award is the operator's cost, booked at the partner where it was earned.
      funding: [{ fundedBy: a.rule.ownerPartnerId ? partnerFunded(a.rule.ownerPartnerId) : "operator", points: a.points }],
    });
    await trx("rule_awards").where({ id }).update({ entry_id: res.entryId });
    await recordEvent(trx, {
      type: "earn.posted",
      partnerId: a.fundingPartnerId,
      occurredAt: a.at,
      data: { award_id: id, rule_id: a.rule.id, member_id: a.memberId, points: Number(a.points) },
    });
    return { id, points: Number(a.points) };
  }

  return {
    earnRules,

    async createRule(ownerPartnerId: string | null, input: RuleInput) {
      validate(input);
      if (ownerPartnerId && input.partner_ids && input.partner_ids.some((p) => p !== ownerPartnerId)) {
        throw rulesErrors.make("invalid-rule", "A partner's rule applies to its own purchases only.");
      }
      const id = newId("rul");
      const now = clock.now();
      await db("earn_rules").insert({
        id,
        owner_partner_id: ownerPartnerId,
        name: input.name,
        type: input.type,
        status: "draft",
        priority: input.priority ?? 100,
        stack_group: input.stack_group ?? null,
        valid_from: new Date(input.valid_from),
        valid_until: input.valid_until ? new Date(input.valid_until) : null,
        target: JSON.stringify(input.target ?? { kind: "all" }),
        partner_ids: ownerPartnerId ? null : input.partner_ids ? JSON.stringify(input.partner_ids) : null,
        params: JSON.stringify(input.params),
        caps: JSON.stringify(input.caps ?? {}),
        created_at: now,
        updated_at: now,
      });
      return ruleView(await getRow(db, id));
    },

    async listRules(ownerPartnerId?: string | null, status?: string) {
      const q = db("earn_rules").orderBy([{ column: "priority" }, { column: "id" }]);
      if (ownerPartnerId !== undefined) q.where({ owner_partner_id: ownerPartnerId });
      if (status) q.where({ status });
      return { items: ((await q.select("*")) as RuleRow[]).map(ruleView) };
    },

    async getRule(id: string, ownerPartnerId?: string | null) {
      return ruleView(await getRow(db, id, ownerPartnerId));
    },

    async setStatus(id: string, status: "active" | "paused" | "archived", ownerPartnerId?: string | null) {
      const row = await getRow(db, id, ownerPartnerId);
      const allowed: Record<string, string[]> = { draft: ["active", "archived"], active: ["paused", "archived"], paused: ["active", "archived"], archived: [] };
      if (!allowed[row.status]!.includes(status)) throw rulesErrors.make("rule-not-draft", `A ${row.status} rule cannot become ${status}.`, { rule_status: row.status });
      await db("earn_rules").where({ id }).update({ status, updated_at: clock.now() });
      return ruleView(await getRow(db, id));
    },

    async setSegment(segment: string, memberIds: string[]) {
      await db.transaction(async (trx) => {
        await trx("member_segments").where({ segment }).delete();
        for (const m of [...new Set(memberIds)]) await trx("member_segments").insert({ segment, member_id: m });
      });
      return { segment, members: new Set(memberIds).size };
    },

    /** A partner's custom event (a review, a share): every active custom_event rule for it gives its points once per event id. */
    async customEvent(trx: Trx, partnerId: string, input: { member_id?: string; card_number?: string; event: string; event_id: string; occurred_at?: string }) {
      const { memberId } = await members.resolve(trx, partnerId, input);
      const at = input.occurred_at ? new Date(input.occurred_at) : clock.now();
      await trx("members").where({ id: memberId }).forUpdate().first("id");
      const rules = (await activeRules(trx, at, ["custom_event"])).filter((r) => r.params.event === input.event);
      const tier = await tiers.current(trx, memberId);
      const mf = await memberFacts(trx, memberId);
      const state = dbRuleState(trx);
      const awards: Array<{ rule_id: string; rule_name: string; funded_by: string; points: number; capped_from?: number }> = [];
      let matched = 0;
      for (const rule of rules) {
        if (!ruleMatches(rule, { partnerId, occurredAt: at, tierCode: tier?.code ?? null, segments: mf.segments })) continue;
        matched++;
        const raw = BigInt(Number(rule.params.points));
        const points = await applyCaps(rule, memberId, at, raw, state);
        if (points <= 0n) continue;
        const funder = rule.ownerPartnerId ?? partnerId;
        const a = await award(trx, { rule, memberId, fundingPartnerId: funder, sourceType: "custom_event", sourceId: `${partnerId}:${input.event_id}`, points, at });
        if (a) awards.push({ rule_id: rule.id, rule_name: rule.name, funded_by: rule.ownerPartnerId ? `partner:${funder}` : "operator", points: a.points, ...(points < raw ? { capped_from: Number(raw) } : {}) });
      }
      if (matched === 0) throw rulesErrors.make("no-matching-rule", `No active rule rewards the event ${input.event} at this partner for this member.`);
      const bal = await ledger.balances(trx, memberId);
      return { member_id: memberId, event: input.event, event_id: input.event_id, occurred_at: at.toISOString(), points_earned: awards.reduce((s, a) => s + a.points, 0), awards, balance_available: Number(bal.points) };
    },

    /**
     * Referral bonuses, both sides, once the referred member's first purchase has cleared: it is
     * older than the rule's `clear_after_days` and not wholly refunded. Safe to repeat (award rows).
     */
    async runReferrals(): Promise<{ awarded: number }> {
      const now = clock.now();
      let awarded = 0;
      for (const rule of await activeRules(db, now, ["referral"])) {
        const clearDays = Number(rule.params.clear_after_days);
        const scope = partnerScope(rule);
        const q = db("members as m")
          .whereNotNull("m.referred_by_member_id")
          .whereNotExists(db("rule_awards as a").whereRaw("a.rule_id = ? AND a.source_type = 'referral' AND a.source_id = m.id", [rule.id]))
          .select("m.id", "m.referred_by_member_id");
        const candidates: Array<{ id: string; referred_by_member_id: string }> = await q;
        for (const c of candidates) {
          const firstQ = db("point_transactions").where({ member_id: c.id }).whereIn("kind", ["earn", "purchase"]).orderBy([{ column: "occurred_at" }, { column: "id" }]);
          if (scope) firstQ.whereIn("partner_id", scope);
          const first: { id: string; partner_id: string; occurred_at: Date | string; amount_minor: bigint; refunded_minor: bigint } | undefined = await firstQ.first();
          if (!first) continue;
          const at = new Date(first.occurred_at);
          if (at < rule.validFrom || (rule.validUntil && at >= rule.validUntil)) continue;
          if (at.getTime() + clearDays * DAY_MS > now.getTime()) continue;
          if (BigInt(first.refunded_minor) >= BigInt(first.amount_minor)) continue;
          await db.transaction(async (trx) => {
            const funder = rule.ownerPartnerId ?? first.partner_id;
            const sides: Array<[string, bigint]> = [
              [c.id, BigInt(Number(rule.params.referred_points))],
              [c.referred_by_member_id, BigInt(Number(rule.params.referrer_points))],
            ];
            for (const [memberId, pts] of sides) {
              if (pts <= 0n) continue;
              const allowed = await applyCaps(rule, memberId, now, pts, dbRuleState(trx));
              if (allowed > 0n && (await award(trx, { rule, memberId, fundingPartnerId: funder, sourceType: "referral", sourceId: c.id, points: allowed, at: now }))) awarded++;
            }
          });
        }
      }
      return { awarded };
    },

    /**
     * Runs a rule (a draft, or any rule) over the last `days` days of real purchases, as if it had
     * been active: points it would have given, their cost at the issuance price of the contract in
     * force for each purchase, and the members it would have touched. Nothing is written.
     */
    async simulate(id: string, days: number) {
      const rule = toDef(await getRow(db, id));
      const to = clock.now();
      const from = new Date(to.getTime() - days * DAY_MS);
      // The simulated rule never ran, so its own usage (for caps) is kept here, in memory.
      const given: Array<{ memberId: string; at: Date; points: bigint }> = [];
      const real = dbRuleState(db);
      const state: RuleState = {
        purchasesBetween: real.purchasesBetween,
        async usage(_ruleId, memberId, f, t) {
          const mine = given.filter((g) => (memberId === null || g.memberId === memberId) && g.at >= f && g.at < t);
          return { points: mine.reduce((s, g) => s + g.points, 0n), times: mine.length };
        },
      };
      const q = db("point_transactions as t")
        .join("contract_versions as c", "c.id", "t.contract_version_id")
        .whereIn("t.kind", ["earn", "purchase"])
        .andWhere("t.occurred_at", ">=", from)
        .andWhere("t.occurred_at", "<", to)
        .orderBy([{ column: "t.occurred_at" }, { column: "t.id" }])
        .select("t.id", "t.partner_id", "t.member_id", "t.amount_minor", "t.burn_amount_minor", "t.occurred_at", "t.computation", "c.currency", "c.earn_points", "c.earn_per_minor", "c.issuance_price_micros");
      const scope = partnerScope(rule);
      if (scope) q.whereIn("t.partner_id", scope);
      const rows: Array<{
        id: string;
        partner_id: string;
        member_id: string;
        amount_minor: bigint;
        burn_amount_minor: bigint;
        occurred_at: Date | string;
        computation: { lines?: Array<{ sku?: string; category?: string; amount_minor: number }> } | null;
        currency: string;
        earn_points: bigint;
        earn_per_minor: bigint;
        issuance_price_micros: bigint;
      }> = await q;
      const facts = new Map<string, { tier: { code: string; multiplierBp: number } | null; segments: Set<string>; dateOfBirth: string | null }>();
      let points = 0n;
      let rewarded = 0;
      const touched = new Set<string>();
      const cost = new Map<string, bigint>();
      for (const r of rows) {
        let mf = facts.get(r.member_id);
        if (!mf) {
          mf = { tier: await tiers.current(db, r.member_id), ...(await memberFacts(db, r.member_id)) };
          facts.set(r.member_id, mf);
        }
        const earnable = BigInt(r.amount_minor) - BigInt(r.burn_amount_minor);
        const at = new Date(r.occurred_at);
        const base = earnable > 0n ? (earnable * BigInt(r.earn_points)) / BigInt(r.earn_per_minor) : 0n;
        const items = await applyRules(
          [rule],
          {
            partnerId: r.partner_id,
            memberId: r.member_id,
            occurredAt: at,
            earnableMinor: earnable,
            lines: r.computation?.lines ?? [],
            earnPoints: BigInt(r.earn_points),
            earnPerMinor: BigInt(r.earn_per_minor),
            basePoints: base,
            tierCode: mf.tier?.code ?? null,
            // The tier multiplier is the ladder's, not this rule's: leave it out of the rule's figures.
            tierMultiplierBp: 10_000,
            segments: mf.segments,
            dateOfBirth: mf.dateOfBirth,
          },
          state,
        );
        const p = items.reduce((s, i) => s + BigInt(i.points), 0n);
        if (p <= 0n) continue;
        given.push({ memberId: r.member_id, at, points: p });
        points += p;
        rewarded++;
        touched.add(r.member_id);
        cost.set(r.currency, (cost.get(r.currency) ?? 0n) + p * BigInt(r.issuance_price_micros));
      }
      return {
        rule_id: rule.id,
        from: from.toISOString(),
        to: to.toISOString(),
        days,
        transactions_examined: rows.length,
        transactions_rewarded: rewarded,
        points: Number(points),
        members_touched: touched.size,
        cost: [...cost.entries()]
          .sort(([a], [b]) => (a < b ? -1 : 1))
          // micros are millionths of the currency unit; to minor units (cents): ÷ 10^4, rounded half up.
          .map(([currency, micros]) => ({ currency, cost_micros: Number(micros), cost_minor: Number((micros + 5_000n) / 10_000n) })),
        rounding: "each purchase's points floor per the rule; cost = Σ points × issuance_price_micros of the contract in force, in micros, then ÷ 10^4 rounded half up to minor units",
        notes: "Tier and segment are the member's today; off-purchase rules (referral, custom_event) are not simulated.",
      };
    },

    periodOf,
  };
}

export type RulesService = ReturnType<typeof createRulesService>;
