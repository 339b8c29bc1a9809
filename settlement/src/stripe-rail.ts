import type Stripe from "stripe";
import type { Db, Trx } from "../../gateway/src/infra/db.ts";
import type { Clock } from "../../gateway/src/infra/clock.ts";
import type { Logger } from "../../gateway/src/infra/logger.ts";
import { AppError } from "../../gateway/src/http/problem.ts";
import { paymentErrors } from "./payments.errors.ts";
import type { ObligationRow, PaymentsService } from "./payments.service.ts";
import type { StatementEntry } from "./reconciliation.match.ts";

/** Stripe's zero-decimal currencies take amounts in major units, as our minor units already are. */
const toStripeCurrency = (c: string) => c.toLowerCase();

/** Stripe's errors that no retry will change (a bad destination, a refused request). */
function permanent(err: unknown): boolean {
  const type = (err as { type?: string }).type;
  return type === "StripeInvalidRequestError" || type === "StripeCardError" || type === "StripePermissionError" || type === "StripeAuthenticationError" || type === "StripeIdempotencyError";
}

const unix = (d: string) => Math.floor(new Date(`${d}T00:00:00Z`).getTime() / 1000);
const dayOf = (unixSeconds: number) => new Date(unixSeconds * 1000).toISOString().slice(0, 10);

/** Is this Stripe event about settlement (rather than paid membership)? */
export function isSettlementEvent(event: Stripe.Event): boolean {
  if (event.type.startsWith("transfer.")) return true;
  if (event.type.startsWith("invoice.")) {
    const md = (event.data.object as { metadata?: Record<string, string> | null }).metadata;
    return Boolean(md?.payment_obligation_id);
  }
  return false;
}

/**
 * The Stripe rail: creditors are paid by a transfer to their connected account, debtors are sent
 * an invoice. Every call carries an idempotency key derived from the statement and the
 * instruction number, and the worker re-reads the obligation before acting, so a retried or
 * duplicated job never pays twice. Stripe's signed webhooks then say what became of the money.
 */
export function createStripeRail(deps: { db: Db; clock: Clock; log: Logger; stripe: Stripe | null; payments: PaymentsService }) {
  const { db, log, payments } = deps;

  function stripe(): Stripe {
    if (!deps.stripe) throw paymentErrors.make("payments-not-configured", "Stripe is not configured on this hub (STRIPE_SECRET_KEY).");
    return deps.stripe;
  }

  async function load(id: string): Promise<ObligationRow | undefined> {
    return db("payment_obligations").where({ id }).first();
  }

  async function fail(obligationId: string, reason: string): Promise<void> {
    await db.transaction((trx) => payments.markFailed(trx, obligationId, reason));
  }

  async function payCreditor(ob: ObligationRow, account: string): Promise<void> {
    const transfer = await stripe().transfers.create(
      {
        amount: Number(ob.amount_due_minor),
        currency: toStripeCurrency(ob.currency),
        destination: account,
        transfer_group: ob.reference,
        description: `Loyalty settlement ${ob.period} ${ob.statement_id}`,
        metadata: { payment_obligation_id: ob.id, statement_id: ob.statement_id, reference: ob.reference },
      },
      { idempotencyKey: `settlement-transfer:${ob.statement_id}:${ob.instructions}` },
    );
    await db("payment_obligations").where({ id: ob.id }).update({ stripe_transfer_id: transfer.id, updated_at: deps.clock.now() });
  }

  async function invoiceDebtor(ob: ObligationRow, customer: string): Promise<void> {
    const key = `${ob.statement_id}:${ob.instructions}`;
    let invoiceId = ob.stripe_invoice_id;
    if (!invoiceId) {
      const invoice = await stripe().invoices.create(
        {
          customer,
          currency: toStripeCurrency(ob.currency),
          collection_method: "send_invoice",
          due_date: Math.max(unix(ob.due_date), Math.floor(deps.clock.now().getTime() / 1000) + 86_400),
          auto_advance: true,
          description: `Loyalty settlement ${ob.period}, reference ${ob.reference}`,
          metadata: { payment_obligation_id: ob.id, statement_id: ob.statement_id, reference: ob.reference },
        },
        { idempotencyKey: `settlement-invoice:${key}` },
      );
      invoiceId = invoice.id;
      // Kept at once: a retry after this point works on this invoice and never opens a second.
      await db("payment_obligations").where({ id: ob.id }).update({ stripe_invoice_id: invoiceId, updated_at: deps.clock.now() });
    }
    const invoice = await stripe().invoices.retrieve(invoiceId);
    if (invoice.status !== "draft") return;
    if (invoice.amount_due === 0) {
      await stripe().invoiceItems.create(
        { customer, invoice: invoiceId, amount: Number(ob.amount_due_minor), currency: toStripeCurrency(ob.currency), description: `Net settlement ${ob.period} (${ob.statement_id})` },
        { idempotencyKey: `settlement-invoice-item:${key}` },
      );
    }
    await stripe().invoices.finalizeInvoice(invoiceId, { auto_advance: true }, { idempotencyKey: `settlement-invoice-finalize:${key}` });
  }

  return {
    /** The `settlement.stripe-pay` job: does the obligation's Stripe call if it is still to do. */
    async pay(obligationId: string, instruction: number): Promise<void> {
      const ob = await load(obligationId);
      if (!ob || ob.rail !== "stripe" || ob.status !== "instructed" || ob.instructions !== instruction) return;
      if (ob.direction === "payable_to_partner" && ob.stripe_transfer_id) return;
      const acct: { connected_account_id: string | null; customer_id: string | null } | undefined = await db("partner_stripe_accounts").where({ partner_id: ob.partner_id }).first();
      try {
        if (ob.direction === "payable_to_partner") {
          if (!acct?.connected_account_id) return fail(ob.id, "The partner has no Stripe connected account.");
          await payCreditor(ob, acct.connected_account_id);
        } else {
          if (!acct?.customer_id) return fail(ob.id, "The partner has no Stripe customer.");
          await invoiceDebtor(ob, acct.customer_id);
        }
      } catch (err) {
        if (err instanceof AppError) throw err;
        const e = err as { type?: string; message?: string; statusCode?: number };
        log.warn({ obligationId, type: e.type, statusCode: e.statusCode }, "stripe settlement call failed");
        if (permanent(err)) return fail(ob.id, `Stripe refused: ${e.message ?? e.type ?? "unknown error"}`);
        throw err;
      }
    },

    /**
     * A verified Stripe event about settlement (see isSettlementEvent), in the webhook's
     * transaction. Transfers: created or paid records the payment; failed marks it failed;
     * reversed records the reversed amount as a negative payment. Invoices: paid records the
     * amount paid; payment_failed marks it failed.
     */
    async handleEvent(trx: Trx, event: Stripe.Event): Promise<string | null> {
      const obj = event.data.object as unknown as { id: string; object: string; metadata?: Record<string, string> | null; amount?: number; amount_reversed?: number; amount_paid?: number; currency?: string; created?: number; status_transitions?: { paid_at?: number | null } | null };
      const byMeta = obj.metadata?.payment_obligation_id;
      const column = obj.object === "transfer" ? "stripe_transfer_id" : "stripe_invoice_id";
      const ob: ObligationRow | undefined = byMeta
        ? await trx("payment_obligations").where({ id: byMeta }).first()
        : await trx("payment_obligations").where({ [column]: obj.id }).first();
      if (!ob) {
        log.debug({ type: event.type, id: obj.id }, "stripe settlement event for no obligation");
        return null;
      }
      const valueDate = dayOf(event.created);
      const currency = (obj.currency ?? ob.currency).toUpperCase();
      if (currency !== ob.currency) {
        // Never recorded against a statement in another currency; acknowledged so Stripe stops retrying.
        log.warn({ type: event.type, id: obj.id, currency, expected: ob.currency }, "stripe settlement event in another currency");
        await payments.markFailed(trx, ob.id, `Stripe ${obj.object} ${obj.id} is in ${currency}, the statement in ${ob.currency}.`);
        return ob.id;
      }
      switch (event.type) {
        case "transfer.created":
        case "transfer.paid" as string:
          if (!ob.stripe_transfer_id) await trx("payment_obligations").where({ id: ob.id }).update({ stripe_transfer_id: obj.id });
          await payments.record(trx, { obligationId: ob.id, amountMinor: BigInt(obj.amount ?? 0), currency, rail: "stripe", source: "stripe_webhook", reference: obj.id, externalKey: `stripe:transfer:${obj.id}`, valueDate });
          break;
        case "transfer.failed" as string:
          await payments.markFailed(trx, ob.id, `Stripe transfer ${obj.id} failed.`);
          break;
        case "transfer.reversed": {
          // amount_reversed is cumulative: record only what was not recorded yet.
          const reversed = BigInt(obj.amount_reversed ?? 0);
          const before = await trx("payments").where({ obligation_id: ob.id }).andWhere("external_key", "like", `stripe:transfer-reversal:${obj.id}:%`).sum({ s: "amount_minor" }).first();
          const delta = reversed + BigInt((before?.s as string | bigint | null) ?? 0);
          if (delta > 0n) {
            await payments.record(trx, { obligationId: ob.id, amountMinor: -delta, currency, rail: "stripe", source: "stripe_webhook", reference: obj.id, externalKey: `stripe:transfer-reversal:${obj.id}:${reversed}`, valueDate });
            await payments.markFailed(trx, ob.id, `Stripe transfer ${obj.id} reversed (${reversed} minor units).`);
          }
          break;
        }
        case "invoice.paid": {
          if (!ob.stripe_invoice_id) await trx("payment_obligations").where({ id: ob.id }).update({ stripe_invoice_id: obj.id });
          const paidAt = obj.status_transitions?.paid_at;
          const amount = BigInt(obj.amount_paid ?? 0);
          if (amount > 0n) {
            await payments.record(trx, { obligationId: ob.id, amountMinor: amount, currency, rail: "stripe", source: "stripe_webhook", reference: obj.id, externalKey: `stripe:invoice:${obj.id}`, valueDate: paidAt ? dayOf(paidAt) : valueDate });
          }
          break;
        }
        case "invoice.payment_failed":
          await payments.markFailed(trx, ob.id, `Stripe invoice ${obj.id}: payment failed.`);
          break;
        default:
          log.debug({ type: event.type }, "stripe settlement event ignored");
      }
      return ob.id;
    },

    /**
     * Stripe's balance transactions in a window, as statement entries: transfers out (a debit,
     * referenced by the transfer's obligation) and charges in (a credit, traced charge → payment
     * intent → invoice payment → invoice → obligation). Anything else moves money inside Stripe
     * (payouts, fees) and is reported as ignored.
     */
    async balanceEntries(window: { from: Date; to: Date }): Promise<StatementEntry[]> {
      const out: StatementEntry[] = [];
      const s = stripe();
      let seq = 0;
      try {
        for await (const bt of s.balanceTransactions.list({ created: { gte: Math.floor(window.from.getTime() / 1000), lt: Math.floor(window.to.getTime() / 1000) }, limit: 100, expand: ["data.source"] })) {
          seq++;
          const src = bt.source as (Stripe.BalanceTransactionSource & { id: string; object: string; payment_intent?: string | { id: string } | null }) | string | null;
          const srcId = typeof src === "string" ? src : (src?.id ?? null);
          const base = {
            seq,
            direction: bt.amount < 0 ? ("debit" as const) : ("credit" as const),
            amountMinor: BigInt(Math.abs(bt.amount)),
            currency: bt.currency.toUpperCase(),
            bookingDate: dayOf(bt.created),
            remittance: bt.description,
            counterparty: null,
            entryRef: bt.id,
          };
          let reference: string | null = null;
          let externalKey: string | null = null;
          if (bt.type === "transfer" && srcId) {
            const ob: { reference: string } | undefined = await db("payment_obligations").where({ stripe_transfer_id: srcId }).first("reference");
            reference = ob?.reference ?? null;
            externalKey = `stripe:transfer:${srcId}`;
          } else if ((bt.type === "charge" || bt.type === "payment") && src && typeof src !== "string") {
            const pi = typeof src.payment_intent === "string" ? src.payment_intent : (src.payment_intent?.id ?? null);
            if (pi) {
              const ip = await s.invoicePayments.list({ payment: { type: "payment_intent", payment_intent: pi }, limit: 1 });
              const inv = ip.data[0]?.invoice;
              const invoiceId = typeof inv === "string" ? inv : (inv?.id ?? null);
              if (invoiceId) {
                const ob: { reference: string } | undefined = await db("payment_obligations").where({ stripe_invoice_id: invoiceId }).first("reference");
                reference = ob?.reference ?? null;
                externalKey = `stripe:invoice:${invoiceId}`;
              }
            }
          } else {
            out.push({ ...base, reference: null, externalKey: null, ignored: `balance transaction of type ${bt.type}` });
            continue;
          }
          out.push({ ...base, reference, externalKey });
        }
      } catch (err) {
        if (err instanceof AppError) throw err;
        const e = err as { message?: string; type?: string };
        throw paymentErrors.make("payment-provider-error", `Stripe refused or did not answer (balance transactions): ${e.message ?? e.type ?? "unknown error"}`);
      }
      return out;
    },
  };
}

export type StripeRail = ReturnType<typeof createStripeRail>;
