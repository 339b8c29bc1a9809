import type { Db, Trx } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";
import { newId } from "../infra/ids.ts";
import type { MemberAccess } from "../members/member-access.ts";
import { bankingErrors } from "./banking.errors.ts";
import { offerView, type OfferRow } from "./offers.ts";

export interface OfferInput {
  name: string;
  reward_type: "cashback" | "points";
  cashback_bps?: number;
  points?: number;
  currency: string;
  min_spend_minor?: number;
  max_reward_per_purchase?: number;
  max_reward_per_member?: number;
  days_of_week?: number[];
  starts_at: string;
  ends_at?: string;
  requires_activation?: boolean;
  return_period_days?: number;
}

/** Card-linked offers, set by merchant partners; banks activate them for members who opt in. */
export function createOffersService(deps: { db: Db; clock: Clock; members: MemberAccess }) {
  const { db, clock, members } = deps;
  return {
    async create(trx: Trx, partnerId: string, input: OfferInput) {
      // Each refusal names its field in `errors`, as a validation error does.
      const invalid = (detail: string, field: string, reason: string) => bankingErrors.make("offer-invalid", detail, { errors: [{ field: `body/${field}`, reason }] });
      if (input.reward_type === "cashback" && (input.cashback_bps === undefined || input.points !== undefined)) {
        throw input.cashback_bps === undefined
          ? invalid("A cashback offer takes cashback_bps and no points.", "cashback_bps", "is required for a cashback offer")
          : invalid("A cashback offer takes cashback_bps and no points.", "points", "is not taken by a cashback offer");
      }
      if (input.reward_type === "points" && (input.points === undefined || input.cashback_bps !== undefined)) {
        throw input.points === undefined
          ? invalid("A points offer takes points and no cashback_bps.", "points", "is required for a points offer")
          : invalid("A points offer takes points and no cashback_bps.", "cashback_bps", "is not taken by a points offer");
      }
      if (input.ends_at && new Date(input.ends_at) <= new Date(input.starts_at)) throw invalid("ends_at must be after starts_at.", "ends_at", "must be after starts_at");
      const row = {
        id: newId("off", clock.now().getTime()),
        partner_id: partnerId,
        name: input.name,
        reward_type: input.reward_type,
        cashback_bps: input.cashback_bps ?? null,
        points: input.points === undefined ? null : String(input.points),
        currency: input.currency,
        min_spend_minor: String(input.min_spend_minor ?? 0),
        max_reward_per_purchase: input.max_reward_per_purchase === undefined ? null : String(input.max_reward_per_purchase),
        max_reward_per_member: input.max_reward_per_member === undefined ? null : String(input.max_reward_per_member),
        days_of_week: JSON.stringify([...new Set(input.days_of_week ?? [])].sort()),
        starts_at: new Date(input.starts_at),
        ends_at: input.ends_at ? new Date(input.ends_at) : null,
        requires_activation: input.requires_activation ?? false,
        return_period_days: input.return_period_days ?? 30,
        status: "active",
        created_at: clock.now(),
      };
      const [created] = (await trx("card_offers").insert(row).returning("*")) as OfferRow[];
      return offerView(created!);
    },

    /** Offers running now, of active partners: what a bank shows its customers. */
    async listRunning() {
      const now = clock.now();
      const rows: OfferRow[] = await db("card_offers as o")
        .join("partners as p", "p.id", "o.partner_id")
        .where({ "o.status": "active", "p.status": "active" })
        .andWhere("o.starts_at", "<=", now)
        .andWhere((q) => q.whereNull("o.ends_at").orWhere("o.ends_at", ">", now))
        .orderBy("o.id")
        .select("o.*");
      return rows.map(offerView);
    },

    async list(partnerId: string) {
      const rows: OfferRow[] = await db("card_offers").where({ partner_id: partnerId }).orderBy("id").select("*");
      return rows.map(offerView);
    },

    async end(partnerId: string, offerId: string) {
      const [row] = (await db("card_offers").where({ id: offerId, partner_id: partnerId }).update({ status: "ended" }).returning("*")) as OfferRow[];
      if (!row) throw bankingErrors.make("offer-not-found", `No offer ${offerId} of this partner.`);
      return offerView(row);
    },

    /** A bank activates an offer for a member who opted in through it. */
    async activate(trx: Trx, bankId: string, offerId: string, memberId: string) {
      await members.resolve(trx, bankId, { member_id: memberId });
      const offer: OfferRow | undefined = await trx("card_offers").where({ id: offerId, status: "active" }).first();
      if (!offer) throw bankingErrors.make("offer-not-found", `No active offer ${offerId}.`);
      const now = clock.now();
      await trx("card_offer_activations").insert({ offer_id: offerId, member_id: memberId, activated_by_partner_id: bankId, activated_at: now }).onConflict(["offer_id", "member_id"]).ignore();
      const row: { activated_at: Date | string } = await trx("card_offer_activations").where({ offer_id: offerId, member_id: memberId }).first("activated_at");
      return { offer_id: offerId, member_id: memberId, activated_at: new Date(row.activated_at).toISOString() };
    },
  };
}

export type OffersService = ReturnType<typeof createOffersService>;
