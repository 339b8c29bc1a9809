import type Stripe from "stripe";
import type { Db, DbOrTrx, Trx } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";
import type { Logger } from "../infra/logger.ts";
import { newId } from "../infra/ids.ts";
import type { MemberAccess } from "../members/member-access.ts";
import { AppError } from "../http/problem.ts";
import { rulesErrors } from "./rules.errors.ts";

const DAY_MS = 86_400_000;

export interface PlanInput {
  code: string;
  name: string;
  kind: "subscription" | "one_off";
  amount_minor: number;
  currency: string;
  interval?: "month" | "year";
  duration_days?: number | null;
  grants_tier?: string | null;
}

interface PlanRow {
  code: string;
  name: string;
  kind: "subscription" | "one_off";
  amount_minor: bigint;
  currency: string;
  interval: "month" | "year" | null;
  duration_days: number | null;
  grants_tier: string | null;
  stripe_product_id: string;
  stripe_price_id: string;
}

interface MembershipRow {
  id: string;
  member_id: string;
  plan_code: string;
  partner_id: string;
  status: "pending" | "active" | "past_due" | "canceled" | "expired";
  stripe_checkout_session_id: string | null;
  stripe_customer_id: string | null;
  stripe_subscription_id: string | null;
  paid_until: Date | string | null;
  created_at: Date | string;
  updated_at: Date | string;
}

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

function planView(p: PlanRow) {
  return {
    code: p.code,
    name: p.name,
    kind: p.kind,
    amount_minor: Number(p.amount_minor),
    currency: p.currency,
    interval: p.interval,
    duration_days: p.duration_days,
    grants_tier: p.grants_tier,
    stripe_price_id: p.stripe_price_id,
  };
}

function membershipView(m: MembershipRow) {
  return {
    id: m.id,
    member_id: m.member_id,
    plan_code: m.plan_code,
    status: m.status,
    paid_until: iso(m.paid_until),
    stripe_subscription_id: m.stripe_subscription_id,
    created_at: iso(m.created_at)!,
    updated_at: iso(m.updated_at)!,
  };
}

/** Where a subscription's paid period ends: on its items in current API versions, on the subscription in older ones. */
function periodEnd(sub: Stripe.Subscription): Date | null {
  const loose = sub as unknown as { current_period_end?: number; items?: { data?: Array<{ current_period_end?: number }> } };
  const secs = loose.items?.data?.[0]?.current_period_end ?? loose.current_period_end;
  return typeof secs === "number" ? new Date(secs * 1000) : null;
}

/** The subscription an invoice belongs to, in the current (parent) and older (subscription) shapes. */
function invoiceSubscription(inv: Stripe.Invoice): string | null {
  const loose = inv as unknown as { subscription?: string | { id: string } | null; parent?: { subscription_details?: { subscription?: string | { id: string } } } };
  const s = loose.parent?.subscription_details?.subscription ?? loose.subscription ?? null;
  return typeof s === "string" ? s : (s?.id ?? null);
}

/**
 * Paid tiers and closed programmes' fees, billed through Stripe Checkout (a subscription or a
 * one-off payment). The hub never sees a card: Stripe's signed webhooks move a membership from
 * pending to active, past_due, canceled or expired. An active membership's plan may grant a tier.
 */
export function createMembershipService(deps: { db: Db; clock: Clock; log: Logger; members: MemberAccess; stripe: Stripe | null; webhookSecret: string | null }) {
  const { db, clock, members, log } = deps;

  function stripe(): Stripe {
    if (!deps.stripe) throw rulesErrors.make("payments-not-configured", "Stripe is not configured on this hub (STRIPE_SECRET_KEY).");
    return deps.stripe;
  }

  /** A Stripe API call: its failure is Stripe's answer or an outage, told to the caller as 502, never a 500. */
  async function call<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof AppError) throw err;
      const e = err as { type?: string; message?: string; statusCode?: number };
      log.warn({ what, type: e.type, statusCode: e.statusCode }, "stripe call failed");
      throw rulesErrors.make("payment-provider-error", `Stripe refused or did not answer (${what}): ${e.message ?? "unknown error"}`);
    }
  }

  async function plan(conn: DbOrTrx, code: string): Promise<PlanRow> {
    const p: PlanRow | undefined = await conn("membership_plans").where({ code }).first();
    if (!p) throw rulesErrors.make("membership-plan-not-found", `No membership plan ${code}.`);
    return p;
  }

  async function lockBy(trx: Trx, where: Record<string, string>): Promise<MembershipRow | undefined> {
    return trx("memberships").where(where).forUpdate().first();
  }

  async function update(trx: Trx, id: string, patch: Partial<MembershipRow>): Promise<void> {
    await trx("memberships").where({ id }).update({ ...patch, updated_at: clock.now() });
  }

  return {
    async createPlan(input: PlanInput) {
      if ((input.kind === "subscription") !== (input.interval !== undefined)) {
        throw rulesErrors.make("invalid-rule", "A subscription needs an interval (month or year); a one-off payment has none.");
      }
      const product = await call("products.create", () => stripe().products.create({ name: input.name, metadata: { plan_code: input.code } }));
      const price = await call("prices.create", () => stripe().prices.create({
        product: product.id,
        unit_amount: input.amount_minor,
        currency: input.currency.toLowerCase(),
        ...(input.interval ? { recurring: { interval: input.interval } } : {}),
        metadata: { plan_code: input.code },
      }));
      await db("membership_plans").insert({
        code: input.code,
        name: input.name,
        kind: input.kind,
        amount_minor: String(input.amount_minor),
        currency: input.currency,
        interval: input.interval ?? null,
        duration_days: input.duration_days ?? null,
        grants_tier: input.grants_tier ?? null,
        stripe_product_id: product.id,
        stripe_price_id: price.id,
      });
      return planView(await plan(db, input.code));
    },

    async listPlans() {
      return { items: ((await db("membership_plans").orderBy("code").select("*")) as PlanRow[]).map(planView) };
    },

    /** Opens a Stripe Checkout for a member; the membership stays pending until Stripe says it was paid. */
    async start(partnerId: string, input: { member_id?: string; card_number?: string; plan_code: string; success_url: string; cancel_url: string }) {
      const { memberId } = await members.resolve(db, partnerId, input);
      const p = await plan(db, input.plan_code);
      const id = newId("msh");
      const now = clock.now();
      await db("memberships").insert({ id, member_id: memberId, plan_code: p.code, partner_id: partnerId, status: "pending", created_at: now, updated_at: now });
      const session = await call("checkout.sessions.create", () => stripe().checkout.sessions.create({
        mode: p.kind === "subscription" ? "subscription" : "payment",
        line_items: [{ price: p.stripe_price_id, quantity: 1 }],
        client_reference_id: id,
        metadata: { membership_id: id },
        ...(p.kind === "subscription" ? { subscription_data: { metadata: { membership_id: id } } } : {}),
        success_url: input.success_url,
        cancel_url: input.cancel_url,
      }, { idempotencyKey: `membership-checkout:${id}` }));
      await db("memberships").where({ id }).update({ stripe_checkout_session_id: session.id });
      const row: MembershipRow = await db("memberships").where({ id }).first();
      return { membership: membershipView(row), checkout_url: session.url ?? null };
    },

    async getMembership(partnerId: string, id: string) {
      const row: MembershipRow | undefined = await db("memberships").where({ id }).first();
      if (!row || !(await members.canSee(db, partnerId, row.member_id))) throw rulesErrors.make("membership-not-found", `No membership ${id}.`);
      return membershipView(row);
    },

    /** The tier an active, paid-up membership grants the member now, if any. */
    async paidTier(conn: DbOrTrx, memberId: string): Promise<string | null> {
      const row: { grants_tier: string } | undefined = await conn("memberships as m")
        .join("membership_plans as p", "p.code", "m.plan_code")
        .where({ "m.member_id": memberId, "m.status": "active" })
        .whereNotNull("p.grants_tier")
        .andWhere((w) => w.whereNull("m.paid_until").orWhere("m.paid_until", ">", clock.now()))
        .first("p.grants_tier");
      return row?.grants_tier ?? null;
    },

    /**
     * Stripe's webhook: the signature over the raw body is checked with the endpoint's secret
     * (stripe.webhooks.constructEvent, which also refuses old timestamps); each event id is handled once.
     */
    async handleWebhook(rawBody: Buffer | undefined, signature: string | undefined) {
      if (!deps.webhookSecret) throw rulesErrors.make("payments-not-configured", "Stripe webhooks are not configured on this hub (STRIPE_WEBHOOK_SECRET).");
      let event: Stripe.Event;
      try {
        event = stripe().webhooks.constructEvent(rawBody ?? Buffer.alloc(0), signature ?? "", deps.webhookSecret);
      } catch (err) {
        throw rulesErrors.make("invalid-signature", `The Stripe-Signature header does not verify: ${(err as Error).message}`);
      }
      // Fetched outside the transaction: Stripe is a network call.
      let subscription: Stripe.Subscription | null = null;
      if (event.type === "checkout.session.completed" && event.data.object.mode === "subscription" && event.data.object.subscription) {
        const s = event.data.object.subscription;
        subscription = typeof s === "string" ? await call("subscriptions.retrieve", () => stripe().subscriptions.retrieve(s)) : s;
      }
      return db.transaction(async (trx) => {
        const fresh = (await trx("stripe_events").insert({ id: event.id, type: event.type }).onConflict("id").ignore().returning("id")) as unknown[];
        if (fresh.length === 0) return { received: true, duplicate: true, membership_id: null };
        let membershipId: string | null = null;
        switch (event.type) {
          case "checkout.session.completed": {
            const s = event.data.object;
            const m = await lockBy(trx, { stripe_checkout_session_id: s.id });
            if (!m) break;
            membershipId = m.id;
            if (s.payment_status !== "paid" && s.payment_status !== "no_payment_required") break;
            const p = await plan(trx, m.plan_code);
            const paidUntil = subscription ? periodEnd(subscription) : p.duration_days ? new Date(clock.now().getTime() + p.duration_days * DAY_MS) : null;
            await update(trx, m.id, {
              status: "active",
              stripe_customer_id: typeof s.customer === "string" ? s.customer : (s.customer?.id ?? null),
              stripe_subscription_id: subscription?.id ?? null,
              paid_until: paidUntil,
            });
            break;
          }
          case "invoice.paid":
          case "invoice.payment_failed": {
            const subId = invoiceSubscription(event.data.object);
            const m = subId ? await lockBy(trx, { stripe_subscription_id: subId }) : undefined;
            if (!m) break;
            membershipId = m.id;
            if (event.type === "invoice.paid") {
              const line = (event.data.object as unknown as { lines?: { data?: Array<{ period?: { end?: number } }> } }).lines?.data?.[0];
              const end = line?.period?.end ? new Date(line.period.end * 1000) : null;
              await update(trx, m.id, { status: "active", ...(end ? { paid_until: end } : {}) });
            } else if (m.status === "active") {
              await update(trx, m.id, { status: "past_due" });
            }
            break;
          }
          case "customer.subscription.deleted": {
            const m = await lockBy(trx, { stripe_subscription_id: event.data.object.id });
            if (!m) break;
            membershipId = m.id;
            await update(trx, m.id, { status: "canceled" });
            break;
          }
          default:
            log.debug({ type: event.type }, "stripe event ignored");
        }
        return { received: true, duplicate: false, membership_id: membershipId };
      });
    },

    /** One-off memberships past their paid period expire (the daily rules run). */
    async expireLapsed(): Promise<number> {
      return db("memberships").where({ status: "active" }).whereNull("stripe_subscription_id").whereNotNull("paid_until").andWhere("paid_until", "<=", clock.now()).update({ status: "expired", updated_at: clock.now() });
    },
  };
}

export type MembershipService = ReturnType<typeof createMembershipService>;
