import { createHash } from "node:crypto";
import type { Db } from "../../gateway/src/infra/db.ts";
import type { Clock } from "../../gateway/src/infra/clock.ts";
import { buildPain001, validBic, validIban, type BankAccount } from "./pain001.ts";
import { settlementErrors } from "./settlement.errors.ts";
import type { RunRow } from "./clearing.service.ts";

export interface PayeeAccountInput {
  account_holder: string;
  iban: string;
  bic: string;
}

const normalise = (v: string) => v.replace(/\s+/g, "").toUpperCase();

/** `at` is where the account sits in the body (`body`, `body/debtor`): the problem names the field, as a validation error does. */
function checkAccount(a: { iban: string; bic: string }, who: string, at: string): void {
  if (!validIban(a.iban)) throw settlementErrors.make("invalid-bank-account", `The IBAN of ${who} fails its check digits or format.`, { errors: [{ field: `${at}/iban`, reason: "fails its check digits or format" }] });
  if (!validBic(a.bic)) throw settlementErrors.make("invalid-bank-account", `The BIC of ${who} is not 8 or 11 characters of the BIC format.`, { errors: [{ field: `${at}/bic`, reason: "is not 8 or 11 characters of the BIC format" }] });
}

/**
 * Paying net creditors by bank: the operator keeps each partner's payee account, and once a month is
 * closed asks for the month's pain.001 file — one transfer per statement whose net is owed to the
 * partner. The file is built from the closed statements only, so it is the same every time.
 */
export function createCreditTransfers(deps: { db: Db; clock: Clock }) {
  const { db, clock } = deps;
  return {
    async setPayeeAccount(partnerId: string, input: PayeeAccountInput) {
      const partner = await db("partners").where({ id: partnerId }).first("id");
      if (!partner) throw settlementErrors.make("partner-not-found", `No partner ${partnerId}.`);
      const row = { partner_id: partnerId, account_holder: input.account_holder.trim(), iban: normalise(input.iban), bic: normalise(input.bic), updated_at: clock.now() };
      checkAccount(row, partnerId, "body");
      await db("settlement_payee_accounts").insert(row).onConflict("partner_id").merge();
      return { partner_id: partnerId, account_holder: row.account_holder, iban: row.iban, bic: row.bic, updated_at: row.updated_at.toISOString() };
    },

    async creditTransferFile(runId: string, debtorInput: BankAccount): Promise<{ xml: string; sha256: string }> {
      const run: RunRow | undefined = await db("settlement_runs").where({ id: runId }).first("*");
      if (!run) throw settlementErrors.make("run-not-found", `No settlement run ${runId}.`);
      if (run.status !== "closed") throw settlementErrors.make("run-not-closed", `Run ${runId} is ${run.status}; only a closed month is paid.`);
      const debtor = { name: debtorInput.name.trim(), iban: normalise(debtorInput.iban), bic: normalise(debtorInput.bic) };
      checkAccount(debtor, "the operator", "body/debtor");
      const rows: Array<{ id: string; partner_id: string; period: string; currency: string; net_amount_minor: bigint; due_date: string; account_holder: string | null; iban: string | null; bic: string | null }> =
        await db("settlement_statements as s")
          .leftJoin("settlement_payee_accounts as a", "a.partner_id", "s.partner_id")
          .where({ "s.run_id": runId, "s.status": "closed" })
          .andWhere("s.net_amount_minor", ">", 0)
          .orderBy("s.partner_id")
          .select("s.id", "s.partner_id", "s.period", "s.currency", "s.net_amount_minor", "s.due_date", "a.account_holder", "a.iban", "a.bic");
      if (rows.length === 0) throw settlementErrors.make("no-creditors", `No partner is owed money for ${run.period}.`);
      const missing = rows.filter((r) => !r.iban).map((r) => r.partner_id);
      if (missing.length > 0) throw settlementErrors.make("payee-account-missing", `No payee account for ${missing.join(", ")}.`, { partner_ids: missing });
      const xml = buildPain001({
        messageId: `LOYSET-${run.period}`,
        createdAt: new Date(run.closed_at!),
        executionDate: rows[0]!.due_date,
        debtor,
        transfers: rows.map((r) => ({
          endToEndId: `${r.period.replace("-", "")}${r.partner_id.replace(/^ptn_/, "")}`.slice(0, 35),
          creditor: { name: r.account_holder!, iban: r.iban!, bic: r.bic! },
          amountMinor: BigInt(r.net_amount_minor),
          currency: r.currency,
          remittance: `Loyalty settlement ${r.period} ${r.id}`,
        })),
      });
      return { xml, sha256: createHash("sha256").update(xml, "utf8").digest("hex") };
    },
  };
}

export type CreditTransfers = ReturnType<typeof createCreditTransfers>;
