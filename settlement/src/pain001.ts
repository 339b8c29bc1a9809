import { decimal, minorExponent } from "./money.ts";

/**
 * ISO 20022 pain.001.001.09 (customer credit transfer initiation), written by hand: the operator
 * pays its net creditors from its bank. One payment information block per currency; every transfer
 * names the statement it pays. Identifiers are deterministic, so the same run gives the same file.
 */

export interface BankAccount {
  name: string;
  iban: string;
  bic: string;
}

export interface CreditTransfer {
  /** Max 35 characters: the end-to-end id the partner's bank reports back. */
  endToEndId: string;
  creditor: BankAccount;
  amountMinor: bigint;
  currency: string;
  /** Free text remittance information, max 140 characters. */
  remittance: string;
}

export interface Pain001Input {
  messageId: string;
  createdAt: Date;
  executionDate: string;
  debtor: BankAccount;
  transfers: CreditTransfer[];
}

/** XML text and attribute escaping (the five predefined entities); control characters dropped. */
export function xmlEscape(v: string): string {
  return (
    v
      // eslint-disable-next-line no-control-regex
      .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F]/g, "")
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
      .replace(/'/g, "&apos;")
  );
}

/** IBAN check digits (ISO 13616, mod 97 = 1). */
export function validIban(iban: string): boolean {
  const s = iban.replace(/\s+/g, "").toUpperCase();
  if (!/^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$/.test(s)) return false;
  const moved = s.slice(4) + s.slice(0, 4);
  let rem = 0;
  for (const ch of moved) {
    const code = ch >= "A" && ch <= "Z" ? String(ch.charCodeAt(0) - 55) : ch;
    for (const d of code) rem = (rem * 10 + Number(d)) % 97;
  }
  return rem === 1;
}

export function validBic(bic: string): boolean {
  return /^[A-Z]{6}[A-Z2-9][A-NP-Z0-9]([A-Z0-9]{3})?$/.test(bic);
}

const cut = (v: string, n: number) => [...v].slice(0, n).join("");

function amount(minor: bigint, currency: string): string {
  return decimal(minor, minorExponent(currency));
}

function sum(ts: CreditTransfer[]): bigint {
  return ts.reduce((s, t) => s + t.amountMinor, 0n);
}

/** The group's control sum adds the decimal amounts of every currency, as the standard defines it. */
function controlSum(ts: CreditTransfer[]): string {
  const scale = Math.max(...ts.map((t) => minorExponent(t.currency)));
  const total = ts.reduce((s, t) => s + t.amountMinor * 10n ** BigInt(scale - minorExponent(t.currency)), 0n);
  return decimal(total, scale);
}

export function buildPain001(input: Pain001Input): string {
  if (input.transfers.length === 0) throw new Error("a credit transfer file needs at least one transfer");
  for (const t of input.transfers) if (t.amountMinor <= 0n) throw new Error(`transfer ${t.endToEndId} is not positive`);
  const byCurrency = new Map<string, CreditTransfer[]>();
  for (const t of input.transfers) byCurrency.set(t.currency, [...(byCurrency.get(t.currency) ?? []), t]);
  const e = xmlEscape;
  const out: string[] = [];
  out.push('<?xml version="1.0" encoding="UTF-8"?>');
  out.push('<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">');
  out.push("  <CstmrCdtTrfInitn>");
  out.push("    <GrpHdr>");
  out.push(`      <MsgId>${e(cut(input.messageId, 35))}</MsgId>`);
  out.push(`      <CreDtTm>${input.createdAt.toISOString().slice(0, 19)}Z</CreDtTm>`);
  out.push(`      <NbOfTxs>${input.transfers.length}</NbOfTxs>`);
  out.push(`      <CtrlSum>${controlSum(input.transfers)}</CtrlSum>`);
  out.push(`      <InitgPty><Nm>${e(cut(input.debtor.name, 140))}</Nm></InitgPty>`);
  out.push("    </GrpHdr>");
  for (const [currency, ts] of [...byCurrency.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    out.push("    <PmtInf>");
    out.push(`      <PmtInfId>${e(cut(`${input.messageId}-${currency}`, 35))}</PmtInfId>`);
    out.push("      <PmtMtd>TRF</PmtMtd>");
    out.push(`      <NbOfTxs>${ts.length}</NbOfTxs>`);
    out.push(`      <CtrlSum>${amount(sum(ts), currency)}</CtrlSum>`);
    if (currency === "EUR") out.push("      <PmtTpInf><SvcLvl><Cd>SEPA</Cd></SvcLvl></PmtTpInf>");
    out.push(`      <ReqdExctnDt><Dt>${e(input.executionDate)}</Dt></ReqdExctnDt>`);
    out.push(`      <Dbtr><Nm>${e(cut(input.debtor.name, 140))}</Nm></Dbtr>`);
    out.push(`      <DbtrAcct><Id><IBAN>${e(input.debtor.iban)}</IBAN></Id><Ccy>${e(currency)}</Ccy></DbtrAcct>`);
    out.push(`      <DbtrAgt><FinInstnId><BICFI>${e(input.debtor.bic)}</BICFI></FinInstnId></DbtrAgt>`);
    out.push("      <ChrgBr>SLEV</ChrgBr>");
    for (const t of ts) {
      out.push("      <CdtTrfTxInf>");
      out.push(`        <PmtId><InstrId>${e(cut(t.endToEndId, 35))}</InstrId><EndToEndId>${e(cut(t.endToEndId, 35))}</EndToEndId></PmtId>`);
      out.push(`        <Amt><InstdAmt Ccy="${e(currency)}">${amount(t.amountMinor, currency)}</InstdAmt></Amt>`);
      out.push(`        <CdtrAgt><FinInstnId><BICFI>${e(t.creditor.bic)}</BICFI></FinInstnId></CdtrAgt>`);
      out.push(`        <Cdtr><Nm>${e(cut(t.creditor.name, 140))}</Nm></Cdtr>`);
      out.push(`        <CdtrAcct><Id><IBAN>${e(t.creditor.iban)}</IBAN></Id></CdtrAcct>`);
      out.push(`        <RmtInf><Ustrd>${e(cut(t.remittance, 140))}</Ustrd></RmtInf>`);
      out.push("      </CdtTrfTxInf>");
    }
    out.push("    </PmtInf>");
  }
  out.push("  </CstmrCdtTrfInitn>");
  out.push("</Document>");
  return `${out.join("\n")}\n`;
}
