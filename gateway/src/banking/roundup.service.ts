import type { Db, Trx } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";
import { newId } from "../infra/ids.ts";
import { recordEvent } from "../events/events.service.ts";
import { bankingErrors } from "./banking.errors.ts";
import type { MoneyLedger } from "./money-ledger.ts";
import { moneyAccounts } from "./money-ledger.ts";
import { roundUp, weekOf } from "./card-transactions.rules.ts";

export interface RoundupSettings {
  enabled: boolean;
  round_to_units: 1 | 10;
  multiplier: number;
  weekly_cap_minor: number | null;
}

interface SettingsRow {
  member_id: string;
  bank_partner_id: string;
  enabled: boolean;
  round_to_units: number;
  multiplier: number;
  weekly_cap_minor: bigint | null;
  updated_at: Date | string;
}

interface ItemRow {
  purchase_id: string;
  member_id: string;
  bank_partner_id: string;
  currency: string;
  week: string | Date;
  transaction_at: Date | string;
  raw_minor: bigint;
  allocated_minor: bigint;
  match_minor: bigint;
  match_partner_id: string | null;
  match_bps: number;
  sweep_id: string | null;
}

interface SweepRow {
  id: string;
  member_id: string;
  bank_partner_id: string;
  currency: string;
  business_day: string | Date;
  roundup_minor: bigint;
  match_minor: bigint;
  status: "instructed" | "confirmed" | "failed";
  confirmed_roundup_minor: bigint | null;
  confirmed_match_minor: bigint | null;
  ledger_entry_id: string | null;
  instructed_at: Date | string;
  confirmed_at: Date | string | null;
}

const dayText = (d: string | Date) => (typeof d === "string" ? d.slice(0, 10) : d.toISOString().slice(0, 10));

export function sweepView(s: SweepRow) {
  return {
    id: s.id,
    member_id: s.member_id,
    currency: s.currency,
    business_day: dayText(s.business_day),
    roundup_minor: Number(s.roundup_minor),
    match_minor: Number(s.match_minor),
    status: s.status,
    confirmed_roundup_minor: s.confirmed_roundup_minor === null ? null : Number(s.confirmed_roundup_minor),
    confirmed_match_minor: s.confirmed_match_minor === null ? null : Number(s.confirmed_match_minor),
    instructed_at: new Date(s.instructed_at).toISOString(),
    confirmed_at: s.confirmed_at ? new Date(s.confirmed_at).toISOString() : null,
  };
}

function settingsView(s: SettingsRow | undefined) {
  return {
    enabled: s?.enabled ?? false,
    round_to_units: (s?.round_to_units ?? 1) as 1 | 10,
    multiplier: s?.multiplier ?? 1,
    weekly_cap_minor: s?.weekly_cap_minor === null || s?.weekly_cap_minor === undefined ? null : Number(s.weekly_cap_minor),
  };
}

/**
 * Round-up savings: each cleared purchase of a member who turned round-up on (through the bank
 * that holds the savings) rounds up to the next 1 or 10 units × the multiplier; within a week
 * (Monday to Sunday, UTC) the round-ups fill the weekly cap in the order of the purchases' times,
 * so the allocation does not depend on the order the events arrived in. A matched partner may add
 * floor(round-up × roundup_match_bps ÷ 10000) of its own money. The hub instructs the bank daily
 * and books what the bank confirms.
 */
export function createRoundupService(deps: { db: Db; clock: Clock; money: MoneyLedger }) {
  const { db, clock, money } = deps;
  // Settings read ahead for a batch, for as long as its transaction lives.
  const preloaded = new WeakMap<Trx, Map<string, SettingsRow | undefined>>();

  /**
   * Re-allocates members' weeks: in each, swept items are fixed and the rest fill what is left of the
   * cap in the order of the purchases' times. One read and one write for all the weeks given.
   */
  async function allocateWeeks(trx: Trx, weeks: Array<{ memberId: string; week: string; cap: bigint | null }>): Promise<void> {
    if (weeks.length === 0) return;
    const items: ItemRow[] = (
      await trx.raw(
        `SELECT i.* FROM roundup_items i
          WHERE (i.member_id, i.week) IN (SELECT m, w FROM jsonb_to_recordset(?::jsonb) AS x(m text, w date))
          ORDER BY i.member_id, i.week, i.transaction_at, i.purchase_id`,
        [JSON.stringify(weeks.map((w) => ({ m: w.memberId, w: w.week })))],
      )
    ).rows;
    const capOf = new Map(weeks.map((w) => [`${w.memberId}|${w.week}`, w.cap]));
    const used = new Map<string, bigint>();
    const key = (i: ItemRow) => `${i.member_id}|${dayText(i.week)}`;
    for (const i of items) if (i.sweep_id !== null) used.set(key(i), (used.get(key(i)) ?? 0n) + BigInt(i.allocated_minor));
    const changes: Array<{ purchase_id: string; allocated_minor: string; match_minor: string }> = [];
    for (const i of items) {
      if (i.sweep_id !== null) continue;
      const k = key(i);
      const cap = capOf.get(k) ?? null;
      const raw = BigInt(i.raw_minor);
      const before = used.get(k) ?? 0n;
      let alloc = raw;
      if (cap !== null) {
        const room = cap - before > 0n ? cap - before : 0n;
        alloc = raw < room ? raw : room;
      }
      used.set(k, before + alloc);
      const matchMinor = (alloc * BigInt(i.match_bps)) / 10000n;
      if (alloc !== BigInt(i.allocated_minor) || matchMinor !== BigInt(i.match_minor)) {
        changes.push({ purchase_id: i.purchase_id, allocated_minor: alloc.toString(), match_minor: matchMinor.toString() });
      }
    }
    if (changes.length === 0) return;
    await trx.raw(
      `UPDATE roundup_items i SET allocated_minor = x.allocated_minor, match_minor = x.match_minor
         FROM jsonb_to_recordset(?::jsonb) AS x(purchase_id text, allocated_minor bigint, match_minor bigint)
        WHERE i.purchase_id = x.purchase_id`,
      [JSON.stringify(changes)],
    );
  }

  /**
   * Purchases that cleared (or whose cleared amount changed): their round-ups, unless already swept,
   * and their weeks re-allocated — the same result as one purchase at a time, in a few statements.
   */
  async function onClearedMany(
    trx: Trx,
    cleared: Array<{
      p: { id: string; member_id: string | null; bank_partner_id: string; currency: string; cleared_minor: bigint; transaction_at: Date | string };
      match: { partnerId: string; matchBps: number } | null;
    }>,
  ): Promise<void> {
    const withMember = cleared.filter((c) => c.p.member_id !== null);
    if (withMember.length === 0) return;
    const memberIds = [...new Set(withMember.map((c) => c.p.member_id!))];
    const known = preloaded.get(trx);
    const missing = memberIds.filter((m) => !known?.has(m));
    const settings = new Map<string, SettingsRow | undefined>(memberIds.filter((m) => known?.has(m)).map((m) => [m, known!.get(m)]));
    if (missing.length > 0) {
      const rows: SettingsRow[] = await trx("roundup_settings").whereIn("member_id", missing).select("*");
      for (const r of rows) settings.set(r.member_id, r);
    }
    const eligible = withMember.filter((c) => {
      const st = settings.get(c.p.member_id!);
      return st !== undefined && st.enabled && st.bank_partner_id === c.p.bank_partner_id;
    });
    if (eligible.length === 0) return;
    const existing = new Map<string, ItemRow>(
      ((await trx("roundup_items").whereIn("purchase_id", eligible.map((c) => c.p.id)).select("*")) as ItemRow[]).map((i) => [i.purchase_id, i]),
    );
    const upserts: Array<Record<string, unknown>> = [];
    const weeks = new Map<string, { memberId: string; week: string; cap: bigint | null }>();
    for (const { p, match } of eligible) {
      const st = settings.get(p.member_id!)!;
      const old = existing.get(p.id);
      if (old?.sweep_id) continue;
      const at = new Date(p.transaction_at);
      const raw = roundUp(BigInt(p.cleared_minor), p.currency, st.round_to_units, st.multiplier);
      const week = weekOf(at);
      const matchPartner = match?.partnerId ?? null;
      if (old && BigInt(old.raw_minor) === raw && old.match_partner_id === matchPartner) continue;
      upserts.push({
        purchase_id: p.id,
        member_id: p.member_id,
        bank_partner_id: p.bank_partner_id,
        currency: p.currency,
        week,
        transaction_at: at.toISOString(),
        raw_minor: raw.toString(),
        match_partner_id: matchPartner,
        match_bps: match?.matchBps ?? 0,
      });
      weeks.set(`${p.member_id}|${week}`, { memberId: p.member_id!, week, cap: st.weekly_cap_minor === null ? null : BigInt(st.weekly_cap_minor) });
    }
    if (upserts.length === 0) return;
    await trx.raw(
      `INSERT INTO roundup_items (purchase_id, member_id, bank_partner_id, currency, week, transaction_at, raw_minor, allocated_minor, match_minor, match_partner_id, match_bps)
       SELECT purchase_id, member_id, bank_partner_id, currency, week, transaction_at, raw_minor, 0, 0, match_partner_id, match_bps
         FROM jsonb_to_recordset(?::jsonb) AS x(purchase_id text, member_id text, bank_partner_id text, currency text, week date, transaction_at timestamptz,
                                                raw_minor bigint, match_partner_id text, match_bps integer)
       ON CONFLICT (purchase_id) DO UPDATE SET raw_minor = excluded.raw_minor, allocated_minor = least(roundup_items.allocated_minor, excluded.raw_minor), transaction_at = excluded.transaction_at, week = excluded.week,
         match_partner_id = excluded.match_partner_id, match_bps = excluded.match_bps`,
      [JSON.stringify(upserts)],
    );
    await allocateWeeks(trx, [...weeks.values()]);
  }

  return {
    /** Reads the settings of a batch's members at once (the batch's transaction only). */
    async preload(trx: Trx, memberIds: string[]): Promise<void> {
      if (memberIds.length === 0) return;
      let m = preloaded.get(trx);
      if (!m) preloaded.set(trx, (m = new Map()));
      const rows: SettingsRow[] = await trx("roundup_settings").whereIn("member_id", memberIds).select("*");
      for (const id of memberIds) m.set(id, undefined);
      for (const r of rows) m.set(r.member_id, r);
    },

    async getSettings(memberId: string) {
      return settingsView(await db("roundup_settings").where({ member_id: memberId }).first());
    },

    async putSettings(bankId: string, memberId: string, s: RoundupSettings) {
      const row = {
        member_id: memberId,
        bank_partner_id: bankId,
        enabled: s.enabled,
        round_to_units: s.round_to_units,
        multiplier: s.multiplier,
        weekly_cap_minor: s.weekly_cap_minor === null ? null : String(s.weekly_cap_minor),
        updated_at: clock.now(),
      };
      await db("roundup_settings").insert(row).onConflict("member_id").merge();
      return settingsView({ ...row, weekly_cap_minor: row.weekly_cap_minor === null ? null : BigInt(row.weekly_cap_minor) });
    },

    /** A purchase cleared (or its cleared amount changed): its round-up, unless already swept. */
    async onCleared(
      trx: Trx,
      p: { id: string; member_id: string | null; bank_partner_id: string; currency: string; cleared_minor: bigint; transaction_at: Date | string },
      match: { partnerId: string; matchBps: number } | null,
    ): Promise<void> {
      await onClearedMany(trx, [{ p, match }]);
    },

    onClearedMany,

    /**
     * The daily batch: one sweep instruction per member, bank and currency with the round-ups not
     * yet swept (unique per business day, so a rerun adds nothing). Returns the sweeps made.
     */
    async instructSweeps(day: string, now: Date = clock.now()): Promise<number> {
      const groups: Array<{ member_id: string; bank_partner_id: string; currency: string; roundup: string; match: string }> = await db("roundup_items")
        .whereNull("sweep_id")
        .groupBy("member_id", "bank_partner_id", "currency")
        .havingRaw("sum(allocated_minor + match_minor) > 0")
        .select("member_id", "bank_partner_id", "currency", db.raw("sum(allocated_minor)::bigint AS roundup"), db.raw("sum(match_minor)::bigint AS match"));
      let made = 0;
      for (const g of groups) {
        await db.transaction(async (trx) => {
          const items: ItemRow[] = await trx("roundup_items")
            .where({ member_id: g.member_id, bank_partner_id: g.bank_partner_id, currency: g.currency })
            .whereNull("sweep_id")
            .forUpdate()
            .select("*");
          const roundup = items.reduce((s, i) => s + BigInt(i.allocated_minor), 0n);
          const match = items.reduce((s, i) => s + BigInt(i.match_minor), 0n);
          if (roundup + match === 0n) return;
          const id = newId("swp", now.getTime());
          const ins = (
            await trx.raw(
              `INSERT INTO roundup_sweeps (id, member_id, bank_partner_id, currency, business_day, roundup_minor, match_minor, instructed_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (member_id, bank_partner_id, currency, business_day) DO NOTHING RETURNING id`,
              [id, g.member_id, g.bank_partner_id, g.currency, day, roundup.toString(), match.toString(), now],
            )
          ).rows as unknown[];
          if (ins.length === 0) return;
          await trx("roundup_items").whereIn("purchase_id", items.map((i) => i.purchase_id)).update({ sweep_id: id });
          await recordEvent(trx, {
            type: "roundup.sweep_instructed",
            partnerId: g.bank_partner_id,
            occurredAt: now,
            data: { sweep_id: id, member_id: g.member_id, currency: g.currency, roundup_minor: Number(roundup), match_minor: Number(match), business_day: day },
          });
          made++;
        });
      }
      return made;
    },

    async listSweeps(bankId: string, day: string) {
      const rows: SweepRow[] = await db("roundup_sweeps").where({ bank_partner_id: bankId, business_day: day }).orderBy("id").select("*");
      return rows.map(sweepView);
    },

    /**
     * The bank moved `roundup_minor` (at most what was instructed; less when the member's account
     * could not cover it). The partners' matches follow in proportion, rounded down per partner:
     * floor(match × confirmed ÷ instructed). Booked in the ledger once; a second confirmation is 409.
     */
    async confirm(trx: Trx, bankId: string, sweepId: string, input: { roundup_minor: number }) {
      const s: SweepRow | undefined = await trx("roundup_sweeps").where({ id: sweepId, bank_partner_id: bankId }).forUpdate().first();
      if (!s) throw bankingErrors.make("sweep-not-found", `No sweep ${sweepId} of this bank.`);
      if (s.status !== "instructed") throw bankingErrors.make("sweep-already-confirmed", `Sweep ${sweepId} is ${s.status}.`);
      const instructed = BigInt(s.roundup_minor);
      const confirmed = BigInt(input.roundup_minor);
      if (confirmed > instructed) throw bankingErrors.make("confirmation-exceeds-sweep", `The sweep instructed ${instructed}; ${confirmed} was confirmed.`);
      const byPartner: Array<{ partner: string; match: string }> = await trx("roundup_items")
        .where({ sweep_id: sweepId })
        .whereNotNull("match_partner_id")
        .groupBy("match_partner_id")
        .havingRaw("sum(match_minor) > 0")
        .orderBy("match_partner_id")
        .select("match_partner_id as partner", trx.raw("sum(match_minor)::bigint AS match"));
      const matches = byPartner.map((m) => ({
        partnerId: m.partner,
        amount: instructed === 0n ? BigInt(m.match) : (BigInt(m.match) * confirmed) / instructed,
      }));
      const matchTotal = matches.reduce((x, m) => x + m.amount, 0n);
      const now = clock.now();
      const entryId = await money.roundup(trx, {
        memberId: s.member_id,
        bankId,
        currency: s.currency,
        roundup: confirmed,
        matches: matches.filter((m) => m.amount > 0n),
        occurredAt: now,
        ref: { type: "roundup_sweep", id: sweepId },
      });
      await trx("roundup_sweeps")
        .where({ id: sweepId })
        .update({ status: "confirmed", confirmed_roundup_minor: confirmed.toString(), confirmed_match_minor: matchTotal.toString(), ledger_entry_id: entryId, confirmed_at: now });
      return sweepView({ ...s, status: "confirmed", confirmed_roundup_minor: confirmed, confirmed_match_minor: matchTotal, ledger_entry_id: entryId, confirmed_at: now });
    },

    /** The member's savings as booked (what banks confirmed) and what is still to be swept. */
    async account(memberId: string, currency: string) {
      const unswept: { s: string | null } | undefined = await db("roundup_items")
        .where({ member_id: memberId, currency })
        .whereNull("sweep_id")
        .first(db.raw("sum(allocated_minor + match_minor)::bigint AS s"));
      const inFlight: { s: string | null } | undefined = await db("roundup_sweeps")
        .where({ member_id: memberId, currency, status: "instructed" })
        .first(db.raw("sum(roundup_minor + match_minor)::bigint AS s"));
      return {
        saved_minor: Number(await money.balance(db, moneyAccounts.roundup(memberId, currency))),
        to_sweep_minor: Number(unswept?.s ?? 0),
        instructed_minor: Number(inFlight?.s ?? 0),
      };
    },
  };
}

export type RoundupService = ReturnType<typeof createRoundupService>;
