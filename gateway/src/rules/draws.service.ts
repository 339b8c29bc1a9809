import { randomBytes } from "node:crypto";
import type { Db } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";
import { newId } from "../infra/ids.ts";
import { rulesErrors } from "./rules.errors.ts";
import { commitmentOf, deriveWinners, entriesHashOf, entryCodeOf } from "./draws.verify.ts";

export interface DrawInput {
  name: string;
  entries_open_at: string;
  entries_close_at: string;
  winners_count: number;
  qualifying?: { min_amount_minor?: number; partner_ids?: string[] };
}

interface DrawRow {
  id: string;
  name: string;
  status: "announced" | "closed" | "revealed";
  entries_open_at: Date | string;
  entries_close_at: Date | string;
  winners_count: number;
  qualifying: { min_amount_minor?: number; partner_ids?: string[] };
  commitment: string;
  seed: string;
  entries_hash: string | null;
  entries_count: number | null;
  winners: string[] | null;
  closed_at: Date | string | null;
  revealed_at: Date | string | null;
}

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

/**
 * Verifiable prize draws: commit to a secret seed up front, freeze the hashed entry list when
 * entries close, then reveal the seed; the winners follow from both (draws.verify.ts).
 */
export function createDrawsService(deps: { db: Db; clock: Clock }) {
  const { db, clock } = deps;

  async function get(id: string): Promise<DrawRow> {
    const row: DrawRow | undefined = await db("draws").where({ id }).first();
    if (!row) throw rulesErrors.make("draw-not-found", `No draw ${id}.`);
    return row;
  }

  /** What anyone may see: the seed only once revealed, the entries only once closed. */
  async function publicView(row: DrawRow) {
    const entries =
      row.status === "announced" ? null : ((await db("draw_entries").where({ draw_id: row.id }).orderBy("position").pluck("entry_code")) as string[]);
    return {
      id: row.id,
      name: row.name,
      status: row.status,
      entries_open_at: iso(row.entries_open_at)!,
      entries_close_at: iso(row.entries_close_at)!,
      winners_count: row.winners_count,
      qualifying: row.qualifying,
      commitment: row.commitment,
      entries_hash: row.entries_hash,
      entries_count: row.entries_count,
      entries,
      seed: row.status === "revealed" ? row.seed : null,
      winners: row.status === "revealed" ? row.winners : null,
      algorithm:
        "commitment = sha256(seed bytes); entry_code = sha256('<draw_id>:<transaction_id>'); entries sorted ascending; entries_hash = sha256(entries joined by '\\n'); winner i = entries_left[sha256('<seed>:<entries_hash>:<i>') mod len(entries_left)], removed once drawn. Verify with: npm run verify-draw -- <file or URL>",
    };
  }

  return {
    async create(input: DrawInput) {
      const open = new Date(input.entries_open_at);
      const close = new Date(input.entries_close_at);
      if (close <= open) throw rulesErrors.make("invalid-draw", "entries_close_at must be after entries_open_at.");
      // The commitment is worth something only if it is public before the entries are known.
      if (close <= clock.now()) throw rulesErrors.make("invalid-draw", "Entries must still be open when the draw is announced: entries_close_at is in the past.");
      const seed = randomBytes(32).toString("hex");
      const id = newId("drw");
      await db("draws").insert({
        id,
        name: input.name,
        status: "announced",
        entries_open_at: open,
        entries_close_at: close,
        winners_count: input.winners_count,
        qualifying: JSON.stringify(input.qualifying ?? {}),
        commitment: commitmentOf(seed),
        seed,
        created_at: clock.now(),
      });
      return publicView(await get(id));
    },

    async view(id: string) {
      return publicView(await get(id));
    },

    /** Freezes the entries: one per qualifying purchase in the window not wholly refunded. Only after entries close. */
    async close(id: string) {
      await db.transaction(async (trx) => {
        const d: DrawRow | undefined = await trx("draws").where({ id }).forUpdate().first();
        if (!d) throw rulesErrors.make("draw-not-found", `No draw ${id}.`);
        if (d.status !== "announced") throw rulesErrors.make("draw-not-ready", `The draw is ${d.status}.`, { draw_status: d.status });
        if (clock.now() < new Date(d.entries_close_at)) throw rulesErrors.make("draw-not-ready", `Entries close at ${iso(d.entries_close_at)}.`, { draw_status: d.status });
        const q = trx("point_transactions")
          .whereIn("kind", ["earn", "purchase"])
          .andWhere("occurred_at", ">=", d.entries_open_at)
          .andWhere("occurred_at", "<", d.entries_close_at)
          .andWhere("amount_minor", ">=", d.qualifying.min_amount_minor ?? 0)
          .andWhereRaw("refunded_minor < amount_minor");
        if (d.qualifying.partner_ids?.length) q.whereIn("partner_id", d.qualifying.partner_ids);
        const rows: Array<{ id: string; member_id: string }> = await q.select("id", "member_id");
        const entries = rows.map((r) => ({ code: entryCodeOf(id, r.id), transactionId: r.id, memberId: r.member_id })).sort((a, b) => (a.code < b.code ? -1 : 1));
        for (let i = 0; i < entries.length; i += 500) {
          await trx("draw_entries").insert(
            entries.slice(i, i + 500).map((e, j) => ({ draw_id: id, position: i + j, entry_code: e.code, transaction_id: e.transactionId, member_id: e.memberId })),
          );
        }
        await trx("draws")
          .where({ id })
          .update({ status: "closed", entries_hash: entriesHashOf(entries.map((e) => e.code)), entries_count: entries.length, closed_at: clock.now() });
      });
      return publicView(await get(id));
    },

    /** Reveals the seed and the winners derived from it. */
    async reveal(id: string) {
      await db.transaction(async (trx) => {
        const d: DrawRow | undefined = await trx("draws").where({ id }).forUpdate().first();
        if (!d) throw rulesErrors.make("draw-not-found", `No draw ${id}.`);
        if (d.status !== "closed") throw rulesErrors.make("draw-not-ready", `Only a closed draw is revealed; this one is ${d.status}.`, { draw_status: d.status });
        const entries = (await trx("draw_entries").where({ draw_id: id }).orderBy("position").pluck("entry_code")) as string[];
        const winners = deriveWinners(d.seed, d.entries_hash!, entries, d.winners_count);
        await trx("draws").where({ id }).update({ status: "revealed", winners: JSON.stringify(winners), revealed_at: clock.now() });
      });
      return publicView(await get(id));
    },

    /** For the operator: which members the winning entries belong to (never published). */
    async winners(id: string) {
      const d = await get(id);
      if (d.status !== "revealed") throw rulesErrors.make("draw-not-ready", `The draw is ${d.status}.`, { draw_status: d.status });
      const rows: Array<{ entry_code: string; transaction_id: string; member_id: string }> = await db("draw_entries")
        .where({ draw_id: id })
        .whereIn("entry_code", d.winners ?? [])
        .select("entry_code", "transaction_id", "member_id");
      const by = new Map(rows.map((r) => [r.entry_code, r]));
      return { draw_id: id, winners: (d.winners ?? []).map((code, i) => ({ place: i + 1, entry_code: code, transaction_id: by.get(code)!.transaction_id, member_id: by.get(code)!.member_id })) };
    },
  };
}

export type DrawsService = ReturnType<typeof createDrawsService>;
