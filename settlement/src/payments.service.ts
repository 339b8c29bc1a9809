import type { Db, DbOrTrx, Trx } from "../../gateway/src/infra/db.ts";
import type { Clock } from "../../gateway/src/infra/clock.ts";
import type { Logger } from "../../gateway/src/infra/logger.ts";
import { newId } from "../../gateway/src/infra/ids.ts";
import { enqueueInTx } from "../../gateway/src/infra/outbox/outbox.ts";
import { recordEvent } from "../../gateway/src/events/events.service.ts";
import { paymentErrors } from "./payments.errors.ts";

export type Direction = "payable_to_partner" | "receivable_from_partner";
export type ObligationStatus = "pending" | "instructed" | "paid" | "partially_paid" | "failed";
export type Rail = "stripe" | "bank";
export type PaymentSource = "stripe_webhook" | "stripe_balance" | "camt053" | "bank_csv";

export interface ObligationRow {
  id: string;
  statement_id: string;
  run_id: string;
  partner_id: string;
  period: string;
  currency: string;
  direction: Direction;
  amount_due_minor: bigint;
  amount_paid_minor: bigint;
  due_date: string;
  reference: string;
  status: ObligationStatus;
  rail: Rail | null;
  instructed_at: Date | null;
  instructions: number;
  stripe_transfer_id: string | null;
  stripe_invoice_id: string | null;
  failure: string | null;
  created_at: Date;
  updated_at: Date;
}

export interface PaymentRow {
  id: string;
  obligation_id: string;
  amount_minor: bigint;
  currency: string;
  rail: Rail;
  source: PaymentSource;
  reference: string;
  external_key: string;
  value_date: string;
  reconciliation_item_id: string | null;
  recorded_at: Date;
}

export interface NewPayment {
  obligationId: string;
  /** Signed toward settling the obligation; a reversal is negative. Never zero. */
  amountMinor: bigint;
  currency: string;
  rail: Rail;
  source: PaymentSource;
  /** The movement's own id as its rail knows it (a transfer, an invoice, a bank entry). */
  reference: string;
  /**
   * Names the money movement once across every way the hub hears of it: a Stripe transfer seen by
   * its webhook and again in the balance transactions is one key, so it is recorded once.
   */
  externalKey: string;
  valueDate: string;
  reconciliationItemId?: string;
}

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());
const day = (d: Date | string) => (typeof d === "string" ? d.slice(0, 10) : d.toISOString().slice(0, 10));

/**
 * Where an obligation stands follows from what was paid: in full (or more) is paid, some is
 * partially paid; nothing (or everything reversed) is failed when the rail said so, else instructed
 * once the operator approved it, else pending.
 */
export function deriveStatus(o: Pick<ObligationRow, "amount_due_minor" | "amount_paid_minor" | "failure" | "instructed_at">): ObligationStatus {
  const due = BigInt(o.amount_due_minor);
  const paid = BigInt(o.amount_paid_minor);
  if (paid >= due) return "paid";
  if (paid > 0n) return "partially_paid";
  if (o.failure) return "failed";
  return o.instructed_at ? "instructed" : "pending";
}

export function paymentView(p: PaymentRow) {
  return {
    id: p.id,
    amount_minor: Number(p.amount_minor),
    currency: p.currency,
    rail: p.rail,
    source: p.source,
    reference: p.reference,
    value_date: day(p.value_date),
    recorded_at: iso(p.recorded_at)!,
  };
}

export function obligationView(o: ObligationRow, payments: PaymentRow[]) {
  const due = BigInt(o.amount_due_minor);
  const paid = BigInt(o.amount_paid_minor);
  return {
    id: o.id,
    statement_id: o.statement_id,
    run_id: o.run_id,
    partner_id: o.partner_id,
    period: o.period,
    currency: o.currency,
    direction: o.direction,
    amount_due_minor: Number(due),
    amount_paid_minor: Number(paid),
    // What is still to move; negative when more arrived than was due.
    amount_outstanding_minor: Number(due - paid),
    due_date: day(o.due_date),
    reference: o.reference,
    status: o.status,
    rail: o.rail,
    instructed_at: iso(o.instructed_at),
    failure: o.failure,
    stripe_transfer_id: o.stripe_transfer_id,
    stripe_invoice_id: o.stripe_invoice_id,
    payments: payments.map(paymentView),
  };
}

export type ObligationView = ReturnType<typeof obligationView>;

/**
 * Payment obligations and the payments recorded against them. An obligation is born with its
 * statement's close (a trigger, same transaction); the operator instructs a rail; what the rails
 * report — Stripe's webhooks, Stripe's balance transactions, the bank's statements — is recorded
 * here once per money movement, and the obligation's status follows from the sum.
 */
export function createPaymentsService(deps: { db: Db; clock: Clock; log: Logger }) {
  const { db, clock, log } = deps;

  async function paymentsOf(conn: DbOrTrx, ids: string[]): Promise<Map<string, PaymentRow[]>> {
    const out = new Map<string, PaymentRow[]>();
    if (ids.length === 0) return out;
    const rows: PaymentRow[] = await conn("payments").whereIn("obligation_id", ids).orderBy([{ column: "recorded_at" }, { column: "id" }]);
    for (const r of rows) out.set(r.obligation_id, [...(out.get(r.obligation_id) ?? []), r]);
    return out;
  }

  async function views(conn: DbOrTrx, rows: ObligationRow[]): Promise<ObligationView[]> {
    const pays = await paymentsOf(conn, rows.map((r) => r.id));
    return rows.map((r) => obligationView(r, pays.get(r.id) ?? []));
  }

  async function closedRun(conn: DbOrTrx, runId: string): Promise<{ id: string; period: string; status: string }> {
    const run: { id: string; period: string; status: string } | undefined = await conn("settlement_runs").where({ id: runId }).first("id", "period", "status");
    if (!run) throw paymentErrors.make("run-not-found", `No settlement run ${runId}.`);
    if (run.status !== "closed") throw paymentErrors.make("run-not-closed", `Run ${runId} is ${run.status}; only a closed month is paid.`);
    return run;
  }

  return {
    views,

    async listForRun(runId: string): Promise<{ items: ObligationView[] }> {
      await closedRun(db, runId);
      const rows: ObligationRow[] = await db("payment_obligations").where({ run_id: runId }).orderBy("partner_id");
      return { items: await views(db, rows) };
    },

    /** A partner's view of its own statement's payment; another partner's statement is 404. */
    async forPartner(partnerId: string, statementId: string) {
      const st: { id: string; partner_id: string; period: string; currency: string | null; due_date: string | null } | undefined =
        await db("settlement_statements").where({ id: statementId, partner_id: partnerId, status: "closed" }).first("id", "partner_id", "period", "currency", "due_date");
      if (!st) throw paymentErrors.make("statement-not-found", `No statement ${statementId}.`);
      const row: ObligationRow | undefined = await db("payment_obligations").where({ statement_id: st.id }).first();
      if (row) {
        const [view] = await views(db, [row]);
        const { run_id: _run, ...rest } = view!;
        return rest;
      }
      // A statement that nets to zero owes nothing either way.
      return {
        id: null,
        statement_id: st.id,
        partner_id: st.partner_id,
        period: st.period,
        currency: st.currency,
        direction: "nil" as const,
        amount_due_minor: 0,
        amount_paid_minor: 0,
        amount_outstanding_minor: 0,
        due_date: st.due_date ? day(st.due_date) : null,
        reference: null,
        status: "nothing_due" as const,
        rail: null,
        instructed_at: null,
        failure: null,
        stripe_transfer_id: null,
        stripe_invoice_id: null,
        payments: [],
      };
    },

    /**
     * The operator approves a closed month's obligations for a rail: each pending or failed one
     * (optionally only some partners') becomes instructed. On Stripe each gets an outbox job
     * `stp:{obligation}:{instruction}` in the same transaction; on the bank rail creditors are paid
     * by the month's pain.001 file and debtors pay by transfer quoting the reference.
     */
    async instruct(trx: Trx, runId: string, input: { rail: Rail; partner_ids?: string[] }): Promise<{ items: ObligationView[] }> {
      await closedRun(trx, runId);
      const q = trx("payment_obligations").where({ run_id: runId }).whereIn("status", ["pending", "failed"]).orderBy("partner_id").forUpdate();
      if (input.partner_ids) q.whereIn("partner_id", input.partner_ids);
      const rows: ObligationRow[] = await q;
      if (rows.length === 0) throw paymentErrors.make("nothing-to-instruct", `No pending or failed obligation of ${runId}${input.partner_ids ? " for these partners" : ""}.`);
      const partnerIds = rows.map((r) => r.partner_id);
      if (input.rail === "stripe") {
        const accounts: Array<{ partner_id: string; connected_account_id: string | null; customer_id: string | null }> = await trx("partner_stripe_accounts").whereIn("partner_id", partnerIds);
        const byPartner = new Map(accounts.map((a) => [a.partner_id, a]));
        const missing = rows
          .filter((r) => {
            const a = byPartner.get(r.partner_id);
            return r.direction === "payable_to_partner" ? !a?.connected_account_id : !a?.customer_id;
          })
          .map((r) => r.partner_id);
        if (missing.length > 0) {
          throw paymentErrors.make("stripe-account-missing", `No Stripe connected account (creditors) or customer (debtors) for ${missing.join(", ")}.`, { partner_ids: missing });
        }
      } else {
        const creditors = rows.filter((r) => r.direction === "payable_to_partner").map((r) => r.partner_id);
        const payees: Array<{ partner_id: string }> = creditors.length ? await trx("settlement_payee_accounts").whereIn("partner_id", creditors).select("partner_id") : [];
        const have = new Set(payees.map((p) => p.partner_id));
        const missing = creditors.filter((p) => !have.has(p));
        if (missing.length > 0) throw paymentErrors.make("payee-account-missing", `No payee account for ${missing.join(", ")}.`, { partner_ids: missing });
      }
      const now = clock.now();
      for (const r of rows) {
        const instructions = r.instructions + 1;
        // A creditor's failed transfer is history (its failure was recorded); the new instruction makes
        // a new one. A debtor's invoice is kept: Stripe goes on collecting an open invoice, and a second
        // one would bill the partner twice.
        const freshTransfer = r.status === "failed" && r.direction === "payable_to_partner" ? { stripe_transfer_id: null } : {};
        const patch = { rail: input.rail, instructed_at: now, instructions, failure: null, updated_at: now, ...freshTransfer };
        await trx("payment_obligations").where({ id: r.id }).update({ ...patch, status: deriveStatus({ ...r, ...patch }) });
        if (input.rail === "stripe") {
          await enqueueInTx(trx, "settlement.stripe-pay", { obligationId: r.id, instruction: instructions }, { jobId: `stp:${r.id}:${instructions}` });
        }
      }
      const fresh: ObligationRow[] = await trx("payment_obligations").whereIn("id", rows.map((r) => r.id)).orderBy("partner_id");
      return { items: await views(trx, fresh) };
    },

    /**
     * Records one payment, once: the money movement's `externalKey` is unique, so a second
     * report of the same movement returns the first payment and changes nothing. The obligation is
     * locked, its paid sum and status updated in the same transaction.
     */
    async record(trx: Trx, p: NewPayment): Promise<{ payment: PaymentRow; duplicate: boolean; obligation: ObligationRow }> {
      const ob: ObligationRow | undefined = await trx("payment_obligations").where({ id: p.obligationId }).forUpdate().first();
      if (!ob) throw new Error(`no obligation ${p.obligationId}`);
      const existing: PaymentRow | undefined = await trx("payments").where({ external_key: p.externalKey }).first();
      if (existing) return { payment: existing, duplicate: true, obligation: ob };
      if (p.amountMinor === 0n) throw new Error("a payment is never zero");
      if (p.currency !== ob.currency) throw new Error(`payment in ${p.currency} against an obligation in ${ob.currency}`);
      const now = clock.now();
      const payment: PaymentRow = {
        id: newId("pay"),
        obligation_id: ob.id,
        amount_minor: p.amountMinor,
        currency: p.currency,
        rail: p.rail,
        source: p.source,
        reference: p.reference,
        external_key: p.externalKey,
        value_date: p.valueDate,
        reconciliation_item_id: p.reconciliationItemId ?? null,
        recorded_at: now,
      };
      await trx("payments").insert({ ...payment, amount_minor: String(payment.amount_minor) });
      const paid = BigInt(ob.amount_paid_minor) + p.amountMinor;
      const next = { ...ob, amount_paid_minor: paid };
      const status = deriveStatus(next);
      await trx("payment_obligations").where({ id: ob.id }).update({ amount_paid_minor: String(paid), status, updated_at: now });
      if (ob.direction === "receivable_from_partner" && p.amountMinor > 0n) {
        await recordEvent(trx, {
          type: "payment.received",
          partnerId: ob.partner_id,
          occurredAt: now,
          data: { statement_id: ob.statement_id, payment_id: payment.id, amount_minor: Number(p.amountMinor), currency: p.currency, rail: p.rail, status },
        });
      }
      log.info({ obligationId: ob.id, paymentId: payment.id, amountMinor: String(p.amountMinor), source: p.source, status }, "settlement payment recorded");
      return { payment, duplicate: false, obligation: { ...next, status } };
    },

    /** The rail said the money did not move (a failed transfer or invoice payment). */
    async markFailed(trx: Trx, obligationId: string, reason: string): Promise<ObligationRow> {
      const ob: ObligationRow = await trx("payment_obligations").where({ id: obligationId }).forUpdate().first();
      const next = { ...ob, failure: reason.slice(0, 500) };
      const status = deriveStatus(next);
      await trx("payment_obligations").where({ id: obligationId }).update({ failure: next.failure, status, updated_at: clock.now() });
      return { ...next, status };
    },
  };
}

export type PaymentsService = ReturnType<typeof createPaymentsService>;
