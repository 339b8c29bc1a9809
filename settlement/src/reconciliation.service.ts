import { createHash } from "node:crypto";
import type { Db, DbOrTrx, Trx } from "../../gateway/src/infra/db.ts";
import type { Clock } from "../../gateway/src/infra/clock.ts";
import type { Logger } from "../../gateway/src/infra/logger.ts";
import { newId } from "../../gateway/src/infra/ids.ts";
import { parseCamt053, StatementFileError } from "./camt053.ts";
import { parseBankCsv } from "./bank-csv.ts";
import { classify, referenceCandidates, type StatementEntry } from "./reconciliation.match.ts";
import { paymentErrors } from "./payments.errors.ts";
import type { ObligationRow, PaymentSource, PaymentsService } from "./payments.service.ts";
import type { StripeRail } from "./stripe-rail.ts";

export type ImportSource = "camt053" | "bank_csv" | "stripe_balance";
export interface PreparedImport {
  source: ImportSource;
  fileSha: string;
  meta: { account: string | null; statementRef: string | null };
  entries: StatementEntry[];
}
type ItemOutcome = "matched" | "short" | "over" | "unexpected" | "duplicate" | "ignored";

interface ImportRow {
  id: string;
  source: ImportSource;
  file_sha256: string;
  account: string | null;
  statement_ref: string | null;
  entry_count: number;
  summary: Record<ItemOutcome, number> | string;
  created_at: Date;
}

interface ItemRow {
  id: string;
  import_id: string;
  seq: number;
  direction: "credit" | "debit";
  amount_minor: bigint;
  currency: string;
  booking_date: string;
  reference: string | null;
  remittance: string | null;
  counterparty: string | null;
  entry_ref: string | null;
  outcome: ItemOutcome;
  obligation_id: string | null;
  payment_id: string | null;
  difference_minor: bigint | null;
}

const day = (d: Date | string) => (typeof d === "string" ? d.slice(0, 10) : d.toISOString().slice(0, 10));
const OUTCOMES: ItemOutcome[] = ["matched", "short", "over", "unexpected", "duplicate", "ignored"];

function itemView(i: ItemRow & { statement_id?: string | null; partner_id?: string | null }) {
  return {
    id: i.id,
    import_id: i.import_id,
    seq: i.seq,
    direction: i.direction,
    amount_minor: Number(i.amount_minor),
    currency: i.currency,
    booking_date: day(i.booking_date),
    reference: i.reference,
    remittance: i.remittance,
    counterparty: i.counterparty,
    entry_ref: i.entry_ref,
    outcome: i.outcome,
    obligation_id: i.obligation_id,
    statement_id: i.statement_id ?? null,
    partner_id: i.partner_id ?? null,
    payment_id: i.payment_id,
    difference_minor: i.difference_minor === null ? null : Number(i.difference_minor),
  };
}

function importView(row: ImportRow, items: ItemRow[], replayed: boolean) {
  return {
    id: row.id,
    source: row.source,
    file_sha256: row.file_sha256,
    account: row.account,
    statement_ref: row.statement_ref,
    entry_count: row.entry_count,
    summary: typeof row.summary === "string" ? (JSON.parse(row.summary) as Record<ItemOutcome, number>) : row.summary,
    created_at: new Date(row.created_at).toISOString(),
    replayed,
    items: items.map(itemView),
  };
}

const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

/**
 * Reconciliation: bank statements (camt.053, CSV) and Stripe's balance transactions are imported
 * once each (the file's SHA-256 is unique per source), every entry is matched to the obligation
 * whose reference it quotes, and matched, short and over entries record a payment — keyed by the
 * bank's or Stripe's id of the movement, so an entry seen in two files, or a transfer already
 * reported by Stripe's webhook, is recorded once.
 */
export function createReconciliationService(deps: { db: Db; clock: Clock; log: Logger; payments: PaymentsService; stripeRail: StripeRail }) {
  const { db, clock, log, payments } = deps;

  async function itemsOf(conn: DbOrTrx, importId: string): Promise<ItemRow[]> {
    return conn("reconciliation_items as i")
      .leftJoin("payment_obligations as o", "o.id", "i.obligation_id")
      .where("i.import_id", importId)
      .orderBy("i.seq")
      .select("i.*", "o.statement_id", "o.partner_id");
  }

  async function findObligation(trx: Trx, e: StatementEntry): Promise<ObligationRow | undefined> {
    const { references, statementIds } = referenceCandidates(e);
    if (references.length === 0 && statementIds.length === 0) return undefined;
    const rows: ObligationRow[] = await trx("payment_obligations").where((w) => {
      if (references.length) w.orWhereIn("reference", references);
      if (statementIds.length) w.orWhereIn("statement_id", statementIds);
    });
    // The end-to-end id first, then what the remittance text quotes, in its order.
    const order = [...references, ...statementIds];
    rows.sort((a, b) => Math.min(...[order.indexOf(a.reference), order.indexOf(a.statement_id)].filter((n) => n >= 0)) - Math.min(...[order.indexOf(b.reference), order.indexOf(b.statement_id)].filter((n) => n >= 0)));
    return rows[0] ? trx("payment_obligations").where({ id: rows[0].id }).forUpdate().first() : undefined;
  }

  /** Records a prepared import in the caller's transaction (the admin request's idempotency transaction). */
  async function ingest(trx: Trx, prepared: PreparedImport) {
    const { source, fileSha, meta, entries } = prepared;
    const id = newId("rci");
    const now = clock.now();
    const inserted = (await trx("reconciliation_imports")
      .insert({ id, source, file_sha256: fileSha, account: meta.account, statement_ref: meta.statementRef, entry_count: entries.length, summary: JSON.stringify({}), created_at: now })
      .onConflict(["source", "file_sha256"])
      .ignore()
      .returning("id")) as unknown[];
    if (inserted.length === 0) {
      const row: ImportRow = await trx("reconciliation_imports").where({ source, file_sha256: fileSha }).first();
      return importView(row, await itemsOf(trx, row.id), true);
    }
    const summary = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<ItemOutcome, number>;
    const paymentSource: PaymentSource = source === "stripe_balance" ? "stripe_balance" : source;
    for (const e of entries) {
      const itemId = newId("rce");
      let outcome: ItemOutcome;
      let obligationId: string | null = null;
      let paymentId: string | null = null;
      let difference: bigint | null = null;
      // A bank's entry reference names the entry whatever the file's format; Stripe's ids are Stripe's.
      const sameRail: ImportSource[] = source === "stripe_balance" ? ["stripe_balance"] : ["camt053", "bank_csv"];
      const seenBefore = e.entryRef
        ? await trx("reconciliation_items as i").join("reconciliation_imports as m", "m.id", "i.import_id").whereIn("m.source", sameRail).where({ "i.entry_ref": e.entryRef }).whereNot("i.outcome", "duplicate").first("i.id")
        : undefined;
      if (e.ignored) {
        outcome = "ignored";
      } else if (seenBefore) {
        // The same bank entry in an overlapping statement: it was reconciled when first seen.
        outcome = "duplicate";
      } else {
        const ob = await findObligation(trx, e);
        if (!ob) {
          outcome = "unexpected";
        } else {
          obligationId = ob.id;
          const rail = source === "stripe_balance" ? "stripe" : "bank";
          const externalKey = e.externalKey ?? (e.entryRef ? `${rail}:${e.entryRef}` : `${source}:${fileSha}:${e.seq}`);
          // What other movements paid: reversals are their own movements and do not make this
          // one short (a reversed transfer was still paid in full when it was made).
          const others = await trx("payments").where({ obligation_id: ob.id }).andWhere("amount_minor", ">", 0).whereNot({ external_key: externalKey }).sum({ s: "amount_minor" }).first();
          const verdict = classify(e, {
            direction: ob.direction,
            currency: ob.currency,
            amountDueMinor: BigInt(ob.amount_due_minor),
            paidByOthersMinor: BigInt((others?.s as string | bigint | null) ?? 0),
          });
          outcome = verdict.outcome;
          difference = verdict.differenceMinor;
          if (outcome !== "unexpected") {
            const signed = e.amountMinor;
            const rec = await payments.record(trx, {
              obligationId: ob.id,
              amountMinor: signed,
              currency: e.currency,
              rail: source === "stripe_balance" ? "stripe" : "bank",
              source: paymentSource,
              reference: e.entryRef ?? e.reference ?? `${fileSha.slice(0, 12)}:${e.seq}`,
              externalKey,
              valueDate: e.bookingDate,
              reconciliationItemId: itemId,
            });
            paymentId = rec.payment.id;
          }
        }
      }
      summary[outcome]++;
      await trx("reconciliation_items").insert({
        id: itemId,
        import_id: id,
        seq: e.seq,
        direction: e.direction,
        amount_minor: String(e.amountMinor),
        currency: e.currency,
        booking_date: e.bookingDate,
        reference: e.reference?.slice(0, 200) ?? null,
        remittance: e.remittance?.slice(0, 500) ?? null,
        counterparty: e.counterparty?.slice(0, 200) ?? null,
        entry_ref: e.entryRef?.slice(0, 200) ?? null,
        outcome,
        obligation_id: obligationId,
        payment_id: paymentId,
        difference_minor: difference === null ? null : String(difference),
      });
    }
    await trx("reconciliation_imports").where({ id }).update({ summary: JSON.stringify(summary) });
    log.info({ importId: id, source, ...summary }, "reconciliation import");
    const row: ImportRow = await trx("reconciliation_imports").where({ id }).first();
    return importView(row, await itemsOf(trx, id), false);
  }

  function parse(source: "camt053" | "bank_csv", raw: Buffer) {
    try {
      const textBody = raw.toString("utf8");
      if (source === "camt053") return parseCamt053(textBody);
      return { account: null, statementRef: null, ...parseBankCsv(textBody) };
    } catch (err) {
      if (err instanceof StatementFileError) throw paymentErrors.make("invalid-statement-file", `The ${source === "camt053" ? "camt.053" : "CSV"} file cannot be read: ${err.message}.`, { errors: [{ field: "body", reason: err.message }] });
      throw err;
    }
  }

  return {
    ingest,

    /**
     * A bank statement file, as its bytes, read and hashed (a file that cannot be read is a 422 and
     * changes nothing). Ingesting the same bytes twice changes nothing and answers the first import.
     */
    prepareFile(source: "camt053" | "bank_csv", raw: Buffer): PreparedImport {
      const parsed = parse(source, raw);
      return { source, fileSha: sha256(raw), meta: { account: parsed.account, statementRef: parsed.statementRef }, entries: parsed.entries };
    },

    /** Stripe's balance transactions created in [from, to), fetched before any transaction opens. */
    async prepareStripe(window: { from: Date; to: Date }): Promise<PreparedImport> {
      const entries = await deps.stripeRail.balanceEntries(window);
      const canonical = JSON.stringify(entries.map((e) => [e.entryRef, e.direction, String(e.amountMinor), e.currency, e.bookingDate, e.externalKey ?? null, e.ignored ?? null]));
      return { source: "stripe_balance", fileSha: sha256(canonical), meta: { account: "stripe", statementRef: `${window.from.toISOString()}/${window.to.toISOString()}` }, entries };
    },

    async getImport(id: string) {
      const row: ImportRow | undefined = await db("reconciliation_imports").where({ id }).first();
      if (!row) throw paymentErrors.make("import-not-found", `No reconciliation import ${id}.`);
      return importView(row, await itemsOf(db, id), false);
    },

    /**
     * A closed month's reconciliation: entries matched to its statements (exactly, short, over),
     * statements nothing was received or paid for (missing), and entries since the month began that
     * match no statement at all (unexpected).
     */
    async report(runId: string) {
      const run: { id: string; period: string; status: string; period_start: Date } | undefined = await db("settlement_runs").where({ id: runId }).first("id", "period", "status", "period_start");
      if (!run) throw paymentErrors.make("run-not-found", `No settlement run ${runId}.`);
      if (run.status !== "closed") throw paymentErrors.make("run-not-closed", `Run ${runId} is ${run.status}.`);
      const obligations: ObligationRow[] = await db("payment_obligations").where({ run_id: runId }).orderBy("partner_id");
      const views = await payments.views(db, obligations);
      const items: ItemRow[] = await db("reconciliation_items as i")
        .join("payment_obligations as o", "o.id", "i.obligation_id")
        .where("o.run_id", runId)
        .whereIn("i.outcome", ["matched", "short", "over"])
        .orderBy([{ column: "i.booking_date" }, { column: "i.id" }])
        .select("i.*", "o.statement_id", "o.partner_id");
      const unexpected: ItemRow[] = await db("reconciliation_items")
        .where({ outcome: "unexpected" })
        .andWhere("booking_date", ">=", day(run.period_start))
        .orderBy([{ column: "booking_date" }, { column: "id" }]);
      const currencies = [...new Set(views.map((v) => v.currency))].sort();
      const sum = (currency: string, dir: string, f: (v: (typeof views)[number]) => number) =>
        views.filter((v) => v.currency === currency && v.direction === dir).reduce((a, v) => a + f(v), 0);
      return {
        run_id: run.id,
        period: run.period,
        matched: items.filter((i) => i.outcome === "matched").map(itemView),
        short: items.filter((i) => i.outcome === "short").map(itemView),
        over: items.filter((i) => i.outcome === "over").map(itemView),
        missing: views.filter((v) => v.amount_paid_minor <= 0),
        unexpected: unexpected.map(itemView),
        obligations: views,
        totals: currencies.map((c) => ({
          currency: c,
          receivable_due_minor: sum(c, "receivable_from_partner", (v) => v.amount_due_minor),
          receivable_received_minor: sum(c, "receivable_from_partner", (v) => v.amount_paid_minor),
          payable_due_minor: sum(c, "payable_to_partner", (v) => v.amount_due_minor),
          payable_paid_minor: sum(c, "payable_to_partner", (v) => v.amount_paid_minor),
        })),
      };
    },
  };
}

export type ReconciliationService = ReturnType<typeof createReconciliationService>;
