import type Stripe from "stripe";
import type { Db } from "../../gateway/src/infra/db.ts";
import type { Clock } from "../../gateway/src/infra/clock.ts";
import type { HandlerContext, Handlers } from "../../gateway/src/http/router.ts";
import { httpErrors } from "../../gateway/src/http/problem.ts";
import type { createIdempotency } from "../../gateway/src/idempotency/idempotency.service.ts";
import type { PaymentsService, Rail } from "./payments.service.ts";
import type { ReconciliationService } from "./reconciliation.service.ts";
import type { StripeRail } from "./stripe-rail.ts";
import { isSettlementEvent } from "./stripe-rail.ts";
import { paymentErrors } from "./payments.errors.ts";

type Idempotency = ReturnType<typeof createIdempotency>;

function partnerOf(ctx: HandlerContext): string {
  const id = ctx.principal?.partnerId;
  if (!id) throw httpErrors.make("forbidden", "Only a partner's token reads statements.");
  return id;
}

/** The operator's value-moving requests are idempotent per admin client, like a partner's. */
function adminKey(ctx: HandlerContext) {
  return {
    principal: `admin:${ctx.principal.clientId}`,
    key: ctx.headers["idempotency-key"]!,
    method: ctx.req.method,
    path: ctx.req.originalUrl,
    body: ctx.body ?? null,
    requestId: ctx.requestId,
  };
}

/** Raw upload bytes as the client sent them (the router keeps them for hashing and signatures). */
function rawBytes(ctx: HandlerContext): Buffer {
  const raw = (ctx.req as unknown as { rawBody?: Buffer }).rawBody;
  return raw ?? Buffer.from(typeof ctx.body === "string" ? ctx.body : "", "utf8");
}

const ACCOUNT = /^acct_[A-Za-z0-9]{1,64}$/;
const CUSTOMER = /^cus_[A-Za-z0-9]{1,64}$/;

/** Paying and reconciling statements: thin handlers over the payments, Stripe and reconciliation services. */
export function paymentsRoutes(deps: { db: Db; clock: Clock; idempotency: Idempotency; payments: PaymentsService; reconciliation: ReconciliationService }): Handlers {
  const { db, clock, idempotency, payments, reconciliation } = deps;
  return {
    async getSettlementPayment(ctx) {
      return { status: 200, body: await payments.forPartner(partnerOf(ctx), String(ctx.params.statementId)) };
    },

    async listSettlementPayments(ctx) {
      return { status: 200, body: await payments.listForRun(String(ctx.params.runId)) };
    },

    async instructSettlementPayments(ctx) {
      const input = ctx.body as { rail: Rail; partner_ids?: string[] };
      return idempotency.run(adminKey(ctx), async (trx) => ({ status: 202, body: await payments.instruct(trx, String(ctx.params.runId), input) }));
    },

    async setSettlementStripeAccount(ctx) {
      const partnerId = String(ctx.params.partnerId);
      const input = ctx.body as { connected_account_id?: string | null; customer_id?: string | null };
      const partner = await db("partners").where({ id: partnerId }).first("id");
      if (!partner) throw paymentErrors.make("partner-not-found", `No partner ${partnerId}.`);
      if (input.connected_account_id && !ACCOUNT.test(input.connected_account_id)) throw paymentErrors.make("invalid-stripe-account", "connected_account_id must look like acct_….");
      if (input.customer_id && !CUSTOMER.test(input.customer_id)) throw paymentErrors.make("invalid-stripe-account", "customer_id must look like cus_….");
      const now = clock.now();
      const row = {
        partner_id: partnerId,
        ...(input.connected_account_id !== undefined ? { connected_account_id: input.connected_account_id } : {}),
        ...(input.customer_id !== undefined ? { customer_id: input.customer_id } : {}),
        updated_at: now,
      };
      await db("partner_stripe_accounts").insert(row).onConflict("partner_id").merge();
      const saved: { partner_id: string; connected_account_id: string | null; customer_id: string | null; updated_at: Date } = await db("partner_stripe_accounts").where({ partner_id: partnerId }).first();
      return { status: 200, body: { partner_id: saved.partner_id, connected_account_id: saved.connected_account_id, customer_id: saved.customer_id, updated_at: new Date(saved.updated_at).toISOString() } };
    },

    async importBankStatement(ctx) {
      const type = (ctx.req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
      const bytes = rawBytes(ctx);
      const prepared = reconciliation.prepareFile(type === "text/csv" ? "bank_csv" : "camt053", bytes);
      // The key's request hash covers the file's hash, not the whole file.
      return idempotency.run({ ...adminKey(ctx), body: { sha256: prepared.fileSha, type } }, async (trx) => {
        const result = await reconciliation.ingest(trx, prepared);
        return { status: result.replayed ? 200 : 201, body: result };
      });
    },

    async importStripeBalanceTransactions(ctx) {
      const input = ctx.body as { created_from: string; created_to: string };
      const from = new Date(input.created_from);
      const to = new Date(input.created_to);
      if (!(to > from)) throw httpErrors.make("validation-error", "created_to must be after created_from.", { errors: [{ field: "body/created_to", reason: "must be after created_from" }] });
      // Stripe is asked before the transaction opens: no network call holds a database transaction.
      const prepared = await reconciliation.prepareStripe({ from, to });
      return idempotency.run(adminKey(ctx), async (trx) => {
        const result = await reconciliation.ingest(trx, prepared);
        return { status: result.replayed ? 200 : 201, body: result };
      });
    },

    async getReconciliationImport(ctx) {
      return { status: 200, body: await reconciliation.getImport(String(ctx.params.importId)) };
    },

    async getSettlementReconciliation(ctx) {
      return { status: 200, body: await reconciliation.report(String(ctx.params.runId)) };
    },
  };
}

/**
 * The one Stripe webhook endpoint serves paid memberships and settlement. The signature is
 * verified here first (a bad one is 400 and changes nothing); settlement's events — transfers, and
 * invoices that carry a payment obligation in their metadata — are handled by the Stripe rail,
 * once per event id; every other event goes to memberships as before.
 */
export function stripeWebhookRoute(deps: {
  db: Db;
  stripe: Stripe | null;
  webhookSecret: string | null;
  stripeRail: StripeRail;
  memberships: { handleWebhook(raw: Buffer | undefined, signature: string | undefined): Promise<{ received: boolean; duplicate: boolean; membership_id: string | null }> };
}): Handlers {
  return {
    async receiveStripeWebhook(ctx) {
      const raw = (ctx.req as unknown as { rawBody?: Buffer }).rawBody;
      const signature = ctx.headers["stripe-signature"];
      if (!deps.webhookSecret || !deps.stripe) throw paymentErrors.make("payments-not-configured", "Stripe webhooks are not configured on this hub (STRIPE_WEBHOOK_SECRET).");
      let event: Stripe.Event;
      try {
        event = deps.stripe.webhooks.constructEvent(raw ?? Buffer.alloc(0), signature ?? "", deps.webhookSecret);
      } catch (err) {
        throw paymentErrors.make("invalid-signature", `The Stripe-Signature header does not verify: ${(err as Error).message}`);
      }
      if (!isSettlementEvent(event)) return { status: 200, body: await deps.memberships.handleWebhook(raw, signature) };
      const body = await deps.db.transaction(async (trx) => {
        const fresh = (await trx("stripe_events").insert({ id: event.id, type: event.type }).onConflict("id").ignore().returning("id")) as unknown[];
        if (fresh.length === 0) return { received: true, duplicate: true, membership_id: null, payment_obligation_id: null };
        const obligationId = await deps.stripeRail.handleEvent(trx, event);
        return { received: true, duplicate: false, membership_id: null, payment_obligation_id: obligationId };
      });
      return { status: 200, body };
    },
  };
}
