import { describe, expect, it } from "vitest";
import { buildPain001, validBic, validIban, xmlEscape } from "./pain001.ts";

/** Every tag closes in order (a well-formedness check without a parser dependency). */
function balanced(xml: string): boolean {
  const stack: string[] = [];
  for (const m of xml.replace(/<\?xml[^>]*\?>/, "").matchAll(/<(\/?)([A-Za-z][\w:]*)[^>]*?(\/?)>/g)) {
    if (m[3]) continue;
    if (m[1]) {
      if (stack.pop() !== m[2]) return false;
    } else stack.push(m[2]!);
  }
  return stack.length === 0;
}

const text = (xml: string, tag: string) => [...xml.matchAll(new RegExp(`<${tag}(?: [^>]*)?>([^<]*)</${tag}>`, "g"))].map((m) => m[1]);

describe("pain.001.001.09", () => {
  const file = buildPain001({
    messageId: "LOYSET-2026-04",
    createdAt: new Date("2026-05-01T01:00:00.123Z"),
    executionDate: "2026-05-15",
    debtor: { name: "Coalition Operator & Co", iban: "DE89370400440532013000", bic: "COBADEFFXXX" },
    transfers: [
      { endToEndId: "202604ABC", creditor: { name: "Café <Ünïcode> \"Fuel\" 'D'", iban: "FR1420041010050500013M02606", bic: "PSSTFRPPXXX" }, amountMinor: 16n, currency: "EUR", remittance: "Loyalty settlement 2026-04 stm_x" },
      { endToEndId: "202604DEF", creditor: { name: "Cinema", iban: "GB29NWBK60161331926819", bic: "NWBKGB2L" }, amountMinor: 123_456n, currency: "EUR", remittance: "Loyalty settlement 2026-04 stm_y" },
      { endToEndId: "202604JPY", creditor: { name: "Air", iban: "GB29NWBK60161331926819", bic: "NWBKGB2L" }, amountMinor: 500n, currency: "JPY", remittance: "r" },
    ],
  });

  it("is well-formed, in the pain.001.001.09 namespace, with one payment block per currency", () => {
    expect(file.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"')).toBe(true);
    expect(balanced(file)).toBe(true);
    expect(text(file, "NbOfTxs")).toEqual(["3", "2", "1"]);
    // Blocks sorted by currency: EUR then JPY; the group's control sum adds decimal amounts.
    expect(text(file, "CtrlSum")).toEqual(["1734.72", "1234.72", "500"]);
    expect(text(file, "InstdAmt")).toEqual(["0.16", "1234.56", "500"]);
    expect(file).toContain('<InstdAmt Ccy="JPY">500</InstdAmt>');
    expect(text(file, "CreDtTm")).toEqual(["2026-05-01T01:00:00Z"]);
    expect(text(file, "ReqdExctnDt")).toEqual([]);
    expect(file).toContain("<ReqdExctnDt><Dt>2026-05-15</Dt></ReqdExctnDt>");
    expect(file.match(/<SvcLvl><Cd>SEPA<\/Cd><\/SvcLvl>/g)).toHaveLength(1);
    expect(text(file, "EndToEndId")).toEqual(["202604ABC", "202604DEF", "202604JPY"]);
  });

  it("escapes names and text", () => {
    expect(text(file, "Nm")).toContain("Café &lt;Ünïcode&gt; &quot;Fuel&quot; &apos;D&apos;");
    expect(text(file, "Nm")).toContain("Coalition Operator &amp; Co");
    expect(xmlEscape("a\u0001b")).toBe("ab");
  });

  it("checks account identifiers", () => {
    expect(validIban("DE89370400440532013000")).toBe(true);
    expect(validIban("DE89370400440532013001")).toBe(false);
    expect(validBic("COBADEFFXXX")).toBe(true);
    expect(validBic("NWBKGB2L")).toBe(true);
    expect(validBic("nwbkgb2l")).toBe(false);
  });

  it("refuses an empty file or a non-positive transfer", () => {
    expect(() => buildPain001({ messageId: "m", createdAt: new Date(0), executionDate: "2026-01-01", debtor: { name: "d", iban: "x", bic: "y" }, transfers: [] })).toThrow();
  });
});
