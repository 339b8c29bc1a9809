import { XMLParser, XMLValidator } from "fast-xml-parser";
import { isCalendarDate, parseAmountMinor, type StatementEntry } from "./reconciliation.match.ts";

/**
 * Reads an ISO 20022 bank-to-customer statement (camt.053, versions .001.02 to .001.13) into
 * statement entries. Only booked entries count (Sts BOOK, or no status as in .02); pending and
 * information-only entries are skipped. An entry that batches several transactions gives one
 * statement entry per TxDtls with that transaction's amount and end-to-end id.
 *
 * fast-xml-parser does the XML: it is pure JavaScript, well kept, does not resolve external
 * entities or fetch DTDs, and with `parseTagValue: false` leaves every value a string, so amounts
 * reach our exact decimal parser untouched (never a float).
 */
export interface Camt053 {
  account: string | null;
  statementRef: string | null;
  entries: StatementEntry[];
}

export class StatementFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StatementFileError";
  }
}

type Node = Record<string, unknown>;

const ARRAYS = new Set(["Stmt", "Ntry", "NtryDtls", "TxDtls", "Ustrd", "Strd"]);

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@",
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true,
  isArray: (name) => ARRAYS.has(name),
});

function node(v: unknown): Node | undefined {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Node) : undefined;
}

function text(v: unknown): string | null {
  if (typeof v === "string") return v;
  const n = node(v);
  if (n && typeof n["#text"] === "string") return n["#text"];
  return null;
}

function path(v: unknown, ...keys: string[]): unknown {
  let cur: unknown = v;
  for (const k of keys) {
    const n = node(Array.isArray(cur) ? cur[0] : cur);
    if (!n) return undefined;
    cur = n[k];
  }
  return cur;
}

function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : v === undefined ? [] : [v];
}

function amount(v: unknown, where: string): { minor: bigint; currency: string } {
  const value = text(v);
  const currency = node(v)?.["@Ccy"];
  if (!value || typeof currency !== "string" || !/^[A-Z]{3}$/.test(currency)) throw new StatementFileError(`${where}: Amt needs a value and a Ccy attribute`);
  const minor = parseAmountMinor(value, currency);
  if (minor === null || minor <= 0n) throw new StatementFileError(`${where}: amount "${value}" is not a positive amount in ${currency}`);
  return { minor, currency };
}

function date(v: unknown): string | null {
  const d = text(path(v, "Dt")) ?? text(path(v, "DtTm"));
  return d && /^\d{4}-\d{2}-\d{2}/.test(d) ? d.slice(0, 10) : null;
}

function party(tx: unknown, role: "Dbtr" | "Cdtr"): string | null {
  return text(path(tx, "RltdPties", role, "Nm")) ?? text(path(tx, "RltdPties", role, "Pty", "Nm"));
}

function remittance(tx: unknown): string | null {
  const parts: string[] = [];
  for (const u of list(path(tx, "RmtInf", "Ustrd"))) {
    const t = text(u);
    if (t) parts.push(t);
  }
  for (const s of list(path(tx, "RmtInf", "Strd"))) {
    const t = text(path(s, "CdtrRefInf", "Ref"));
    if (t) parts.push(t);
  }
  return parts.length ? parts.join(" ") : null;
}

export function parseCamt053(xml: string): Camt053 {
  const valid = XMLValidator.validate(xml);
  if (valid !== true) throw new StatementFileError(`not well-formed XML: ${valid.err.msg} (line ${valid.err.line})`);
  const doc = node(parser.parse(xml));
  const root = node(path(doc, "Document", "BkToCstmrStmt"));
  if (!root) throw new StatementFileError("not a camt.053 document: no Document/BkToCstmrStmt");
  const statements = list(root.Stmt);
  if (statements.length === 0) throw new StatementFileError("the document has no Stmt");
  const entries: StatementEntry[] = [];
  let account: string | null = null;
  const refs: string[] = [];
  let seq = 0;
  for (const [si, st] of statements.entries()) {
    account ??= text(path(st, "Acct", "Id", "IBAN")) ?? text(path(st, "Acct", "Id", "Othr", "Id"));
    const id = text(path(st, "Id"));
    if (id) refs.push(id);
    for (const [ei, entry] of list(node(st)?.Ntry).entries()) {
      const where = `Stmt[${si + 1}]/Ntry[${ei + 1}]`;
      const status = text(path(entry, "Sts", "Cd")) ?? text(path(entry, "Sts"));
      if (status && status !== "BOOK") continue;
      const ind = text(path(entry, "CdtDbtInd"));
      if (ind !== "CRDT" && ind !== "DBIT") throw new StatementFileError(`${where}: CdtDbtInd must be CRDT or DBIT`);
      if (text(path(entry, "RvslInd")) === "true") continue;
      const total = amount(path(entry, "Amt"), where);
      const bookingDate = date(path(entry, "BookgDt")) ?? date(path(entry, "ValDt"));
      if (!bookingDate) throw new StatementFileError(`${where}: no BookgDt or ValDt`);
      if (!isCalendarDate(bookingDate)) throw new StatementFileError(`${where}: booking date ${bookingDate} is not a calendar day`);
      const entryRef = text(path(entry, "AcctSvcrRef")) ?? text(path(entry, "NtryRef"));
      const txs = list(path(entry, "NtryDtls")).flatMap((d) => list(node(d)?.TxDtls));
      const direction = ind === "CRDT" ? "credit" : "debit";
      const counterpartyRole = ind === "CRDT" ? "Dbtr" : "Cdtr";
      if (txs.length <= 1) {
        const tx = txs[0];
        entries.push({
          seq: ++seq,
          direction,
          amountMinor: total.minor,
          currency: total.currency,
          bookingDate,
          reference: text(path(tx, "Refs", "EndToEndId")),
          remittance: remittance(tx) ?? text(path(entry, "AddtlNtryInf")),
          counterparty: party(tx, counterpartyRole),
          entryRef,
        });
        continue;
      }
      // A batch: each transaction stands alone; together they must make the entry's amount.
      let sum = 0n;
      for (const [ti, tx] of txs.entries()) {
        const amt = path(tx, "Amt") !== undefined ? amount(path(tx, "Amt"), `${where}/TxDtls[${ti + 1}]`) : null;
        if (!amt) throw new StatementFileError(`${where}/TxDtls[${ti + 1}]: a batched transaction needs its own Amt`);
        if (amt.currency !== total.currency) throw new StatementFileError(`${where}/TxDtls[${ti + 1}]: currency differs from the entry's`);
        sum += amt.minor;
        entries.push({
          seq: ++seq,
          direction,
          amountMinor: amt.minor,
          currency: amt.currency,
          bookingDate,
          reference: text(path(tx, "Refs", "EndToEndId")),
          remittance: remittance(tx),
          counterparty: party(tx, counterpartyRole),
          entryRef: text(path(tx, "Refs", "AcctSvcrRef")) ?? (entryRef ? `${entryRef}/${ti + 1}` : null),
        });
      }
      if (sum !== total.minor) throw new StatementFileError(`${where}: the batched transactions sum to ${sum}, the entry says ${total.minor}`);
    }
  }
  return { account, statementRef: refs.length ? refs.join(",") : null, entries };
}
