import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { parseCamt053, StatementFileError } from "./camt053.ts";
import { csvRecords, parseBankCsv } from "./bank-csv.ts";
import { classify, parseAmountMinor, referenceCandidates } from "./reconciliation.match.ts";
import { deriveStatus } from "./payments.service.ts";

const REF = "202604" + "01jd5k8w3x9y2z4a6b8c0d2e4f";
const doc = (entries: string) => `<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><Stmt><Id>S1</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>${entries}</Stmt></BkToCstmrStmt></Document>`;

describe("camt.053", () => {
  it("reads booked entries exactly, skips pending ones, and splits a batch", () => {
    const out = parseCamt053(
      doc(`
      <Ntry><Amt Ccy="EUR">1234.5</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts><BookgDt><DtTm>2026-05-02T10:00:00+02:00</DtTm></BookgDt><AcctSvcrRef>R1</AcctSvcrRef>
        <NtryDtls><TxDtls><Refs><EndToEndId>${REF}</EndToEndId></Refs><RltdPties><Dbtr><Nm>A &amp; B</Nm></Dbtr></RltdPties><RmtInf><Ustrd>one</Ustrd><Ustrd>two</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>
      <Ntry><Amt Ccy="JPY">500</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>PDNG</Cd></Sts><BookgDt><Dt>2026-05-03</Dt></BookgDt></Ntry>
      <Ntry><Amt Ccy="EUR">0.30</Amt><CdtDbtInd>DBIT</CdtDbtInd><BookgDt><Dt>2026-05-04</Dt></BookgDt><NtryRef>N3</NtryRef>
        <NtryDtls><TxDtls><Amt Ccy="EUR">0.10</Amt></TxDtls><TxDtls><Amt Ccy="EUR">0.20</Amt><Refs><AcctSvcrRef>R3b</AcctSvcrRef></Refs></TxDtls></NtryDtls></Ntry>`),
    );
    expect(out.account).toBe("DE89370400440532013000");
    expect(out.statementRef).toBe("S1");
    expect(out.entries).toEqual([
      { seq: 1, direction: "credit", amountMinor: 123_450n, currency: "EUR", bookingDate: "2026-05-02", reference: REF, remittance: "one two", counterparty: "A & B", entryRef: "R1" },
      { seq: 2, direction: "debit", amountMinor: 10n, currency: "EUR", bookingDate: "2026-05-04", reference: null, remittance: null, counterparty: null, entryRef: "N3/1" },
      { seq: 3, direction: "debit", amountMinor: 20n, currency: "EUR", bookingDate: "2026-05-04", reference: null, remittance: null, counterparty: null, entryRef: "R3b" },
    ]);
  });

  it("refuses what it cannot read, naming the place", () => {
    const bad = (x: string) => () => parseCamt053(x);
    expect(bad("<Document>")).toThrow(StatementFileError);
    expect(bad("<Document><Other/></Document>")).toThrow(/BkToCstmrStmt/);
    expect(bad(doc(`<Ntry><Amt Ccy="EUR">1.001</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2026-05-01</Dt></BookgDt></Ntry>`))).toThrow(/Stmt\[1\]\/Ntry\[1\]: amount/);
    expect(bad(doc(`<Ntry><Amt>1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2026-05-01</Dt></BookgDt></Ntry>`))).toThrow(/Ccy/);
    expect(bad(doc(`<Ntry><Amt Ccy="EUR">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2026-02-30</Dt></BookgDt></Ntry>`))).toThrow(/Stmt\[1\]\/Ntry\[1\]: booking date 2026-02-30/);
    expect(bad(doc(`<Ntry><Amt Ccy="EUR">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><DtTm>2026-13-01T10:00:00Z</DtTm></BookgDt></Ntry>`))).toThrow(/booking date 2026-13-01/);
    expect(bad(doc(`<Ntry><Amt Ccy="EUR">1.00</Amt><CdtDbtInd>X</CdtDbtInd><BookgDt><Dt>2026-05-01</Dt></BookgDt></Ntry>`))).toThrow(/CdtDbtInd/);
    expect(bad(doc(`<Ntry><Amt Ccy="EUR">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2026-05-01</Dt></BookgDt><NtryDtls><TxDtls><Amt Ccy="EUR">0.40</Amt></TxDtls><TxDtls><Amt Ccy="EUR">0.50</Amt></TxDtls></NtryDtls></Ntry>`))).toThrow(/sum to 90/);
  });

  it("does not expand entities from a DOCTYPE into the values it reads", () => {
    const xml = `<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>` + doc(`<Ntry><Amt Ccy="EUR">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2026-05-01</Dt></BookgDt><NtryDtls><TxDtls><RmtInf><Ustrd>&x;</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>`);
    let remittance: string | null = null;
    try {
      remittance = parseCamt053(xml).entries[0]!.remittance;
    } catch (err) {
      expect(err).toBeInstanceOf(Error);
    }
    expect(remittance ?? "").not.toContain("root:");
  });
});

describe("bank CSV", () => {
  it("reads RFC 4180 with quoted commas, quotes and line breaks, any column order", () => {
    const csv = `\uFEFFentry_ref,booking_date,amount,currency,reference,remittance,counterparty,extra\r\nB1,2026-05-02,-12.5,eur,,"fee, ""monthly""\nsecond line",Bank,x\r\nB2,2026-05-03,7,JPY,${REF},,,\r\n`;
    expect(parseBankCsv(csv).entries).toEqual([
      { seq: 1, direction: "debit", amountMinor: 1_250n, currency: "EUR", bookingDate: "2026-05-02", reference: null, remittance: 'fee, "monthly"\nsecond line', counterparty: "Bank", entryRef: "B1" },
      { seq: 2, direction: "credit", amountMinor: 7n, currency: "JPY", bookingDate: "2026-05-03", reference: REF, remittance: null, counterparty: null, entryRef: "B2" },
    ]);
    expect(csvRecords('a,"b\r\nc"\r\n')).toEqual([["a", "b\r\nc"]]);
  });

  it("refuses a missing column, a bad date, a zero or over-precise amount", () => {
    const head = "booking_date,amount,currency,reference,remittance,counterparty,entry_ref\n";
    expect(() => parseBankCsv("booking_date,amount\n")).toThrow(/lacks currency/);
    expect(() => parseBankCsv(head + "2026-13-01,1.00,EUR,,,,\n")).toThrow(/line 2: booking_date/);
    // A day the calendar does not have reached the database and answered 500.
    expect(() => parseBankCsv(head + "2026-02-30,1.00,EUR,,,,\n")).toThrow(/line 2: booking_date/);
    expect(() => parseBankCsv(head + "2026-04-31,1.00,EUR,,,,\n")).toThrow(/line 2: booking_date/);
    expect(parseBankCsv(head + "2028-02-29,1.00,EUR,,,,\n").entries[0]!.bookingDate).toBe("2028-02-29");
    expect(() => parseBankCsv(head + "2026-05-01,0.00,EUR,,,,\n")).toThrow(/line 2: amount/);
    expect(() => parseBankCsv(head + "2026-05-01,1.005,EUR,,,,\n")).toThrow(/amount/);
    expect(() => parseBankCsv(head + '2026-05-01,"1.00,EUR\n')).toThrow(/not closed/);
  });
});

describe("matching rules", () => {
  it("finds references in the end-to-end id and the remittance text", () => {
    expect(referenceCandidates({ reference: "NOTPROVIDED", remittance: `pay ${REF.toUpperCase()} and stm_202604_ptn_01jd5k8w3x9y2z4a6b8c0d2e4f` })).toEqual({
      references: [REF],
      statementIds: ["stm_202604_ptn_01jd5k8w3x9y2z4a6b8c0d2e4f"],
    });
    expect(referenceCandidates({ reference: null, remittance: null })).toEqual({ references: [], statementIds: [] });
  });

  it("classifies by direction, currency and amount still due", () => {
    const x = { direction: "receivable_from_partner" as const, currency: "EUR", amountDueMinor: 10_000n, paidByOthersMinor: 4_000n };
    expect(classify({ direction: "credit", currency: "EUR", amountMinor: 6_000n }, x)).toEqual({ outcome: "matched", differenceMinor: 0n });
    expect(classify({ direction: "credit", currency: "EUR", amountMinor: 5_999n }, x)).toEqual({ outcome: "short", differenceMinor: -1n });
    expect(classify({ direction: "credit", currency: "EUR", amountMinor: 6_001n }, x)).toEqual({ outcome: "over", differenceMinor: 1n });
    expect(classify({ direction: "debit", currency: "EUR", amountMinor: 6_000n }, x).outcome).toBe("unexpected");
    expect(classify({ direction: "credit", currency: "USD", amountMinor: 6_000n }, x).outcome).toBe("unexpected");
  });

  it("parses decimal amounts exactly for every exponent (property)", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 15n), max: 10n ** 15n }), fc.constantFrom("EUR", "JPY", "KWD"), (minor, ccy) => {
        const exp = ccy === "JPY" ? 0 : ccy === "KWD" ? 3 : 2;
        const abs = minor < 0n ? -minor : minor;
        const s = abs.toString().padStart(exp + 1, "0");
        const text = (minor < 0n ? "-" : "") + (exp ? `${s.slice(0, -exp)}.${s.slice(-exp)}` : s);
        expect(parseAmountMinor(text, ccy)).toBe(minor);
      }),
    );
    expect(parseAmountMinor("1e3", "EUR")).toBeNull();
    expect(parseAmountMinor("12.340", "EUR")).toBe(1_234n);
    expect(parseAmountMinor("0.5", "JPY")).toBeNull();
  });

  it("derives an obligation's status from what was paid", () => {
    const o = { amount_due_minor: 100n, amount_paid_minor: 0n, failure: null, instructed_at: null };
    expect(deriveStatus(o)).toBe("pending");
    expect(deriveStatus({ ...o, instructed_at: new Date() })).toBe("instructed");
    expect(deriveStatus({ ...o, failure: "x", instructed_at: new Date() })).toBe("failed");
    expect(deriveStatus({ ...o, amount_paid_minor: 1n, failure: "x" })).toBe("partially_paid");
    expect(deriveStatus({ ...o, amount_paid_minor: 100n })).toBe("paid");
    expect(deriveStatus({ ...o, amount_paid_minor: 150n })).toBe("paid");
  });
});
