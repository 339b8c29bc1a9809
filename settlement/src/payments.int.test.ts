import fs from "node:fs";
import Stripe from "stripe";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixedClock, startTestHub, type TestHub } from "../../test/harness.ts";
import { json } from "../../test/http.ts";
import { adminToken, bearer, partnerToken } from "../../test/factories/auth.ts";
import { expectRouteSecurity } from "../../test/security.ts";
import { createMember, createPartner } from "../../test/factories/network.ts";
import { createSettlementContract } from "../../test/factories/settlement.ts";
import { startStripeStandIn, type StripeStandIn } from "../../test/stripe-standin.ts";
import { createLogger } from "../../gateway/src/infra/logger.ts";
import { createLedger } from "../../gateway/src/ledger/ledger.service.ts";
import { createMemberAccess } from "../../gateway/src/members/member-access.ts";
import { createEarnService } from "../../gateway/src/earn/earn.service.ts";
import { createPaymentsService } from "./payments.service.ts";
import { createStripeRail } from "./stripe-rail.ts";

/**
 * The whole path of a closed month's money, through HTTP, the outbox, the queue, the real stripe
 * SDK against the local stand-in, Stripe's signed webhooks and an imported camt.053 statement.
 *
 * April 2026, hand-computed (EUR, minor units, signed from the partner's side):
 *   X issues 1,000 points at 0.01           → −1,000   (nobody pays it: missing)
 *   D redeems 300 points at 0.01            →    +300   (Stripe transfer)
 *   K redeems 200 points at 0.01            →    +200   (bank: pain.001; its debit in the camt.053)
 *   L redeems 100 points at 0.01            →    +100   (Stripe refuses the first account; paid on a second instruction)
 *   A monthly fee 50.00                     →  −5,000   (Stripe invoice)
 *   E, F, G, H, J monthly fees 100/200/300/400/400.00 → bank transfers in the camt.053:
 *   E pays 100.00 (matched), F 150.00 (short 50.00), G 350.00 (over 50.00), H nothing (missing),
 *   J 400.00 inside a batch entry (matched).
 */
const SECRET = "whsec_settlement_standin";
const signer = new Stripe("sk_test_signer");
const trafficClock = fixedClock("2026-04-01T00:00:00Z");

let hub: TestHub;
let standin: StripeStandIn;
let admin: string;
const P: Record<string, string> = {};
const stm = (k: string) => `stm_202604_${P[k]}`;
const ref = (k: string) => `202604${P[k]!.replace(/^ptn_/, "")}`;

const send = (method: string, path: string, token: string, body?: unknown, headers: Record<string, string> = {}) =>
  hub.fetch(path, { method, headers: { ...bearer(token), "content-type": "application/json", ...headers }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });

let evt = 0;
function stripeEvent(type: string, object: Record<string, unknown>) {
  return JSON.stringify({ id: `evt_stl_${++evt}`, object: "event", type, api_version: "2026-10-28", created: Math.floor(Date.parse("2026-05-10T12:00:00Z") / 1000), data: { object } });
}
const deliver = (payload: string, header = signer.webhooks.generateTestHeaderString({ payload, secret: SECRET })) =>
  hub.fetch("/webhooks/stripe", { method: "POST", headers: { "content-type": "application/json", "stripe-signature": header }, body: payload });

const obligation = async (k: string) => hub.db("payment_obligations").where({ statement_id: stm(k) }).first();
const paymentCount = async () => Number((await hub.db("payments").count("* as n").first())!.n);

async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const v = await probe();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  const outbox = await hub.db("outbox").whereNull("relayed_at").select("queue", "job_id", "attempts", "last_error");
  throw new Error(`${what} did not happen: ${JSON.stringify(outbox)}`);
}

beforeAll(async () => {
  standin = await startStripeStandIn();
  hub = await startTestHub({ config: { OUTBOX_POLL_MS: "20", STRIPE_SECRET_KEY: "sk_test_standin", STRIPE_WEBHOOK_SECRET: SECRET, STRIPE_API_URL: standin.url } });
  admin = await adminToken(hub);
  for (const k of ["X", "D", "K", "L", "A", "E", "F", "G", "H", "J"]) P[k] = (await createPartner(hub.db, { name: `Partner ${k}` })).id;
  await createSettlementContract(hub.db, P.X!, { issuance: 10_000n, redemption: 10_000n });
  await createSettlementContract(hub.db, P.D!, { issuance: 10_000n, redemption: 10_000n });
  await createSettlementContract(hub.db, P.K!, { issuance: 10_000n, redemption: 10_000n });
  await createSettlementContract(hub.db, P.L!, { issuance: 10_000n, redemption: 10_000n });
  await createSettlementContract(hub.db, P.A!, { issuance: 10_000n, redemption: 10_000n, monthlyFee: 5_000n });
  for (const [k, fee] of [["E", 10_000n], ["F", 20_000n], ["G", 30_000n], ["H", 40_000n], ["J", 40_000n]] as const) {
    await createSettlementContract(hub.db, P[k]!, { issuance: 10_000n, redemption: 10_000n, monthlyFee: fee });
  }
  const log = createLogger("silent");
  const earn = createEarnService({ db: hub.db, clock: trafficClock, log, ledger: createLedger({ db: hub.db, log }), members: createMemberAccess() });
  const m = (await createMember(hub.db, P.X!)).id;
  await hub.db("member_partner_links").insert([
    { member_id: m, partner_id: P.D, relation: "used" },
    { member_id: m, partner_id: P.K, relation: "used" },
    { member_id: m, partner_id: P.L, relation: "used" },
  ]);
  trafficClock.set("2026-04-03T10:00:00Z");
  await hub.db.transaction((trx) => earn.earn(trx, P.X!, { member_id: m, partner_transaction_id: "X-1", amount_minor: 1_000_000, currency: "EUR" }));
  trafficClock.set("2026-04-10T10:00:00Z");
  await hub.db.transaction((trx) => earn.burn(trx, P.D!, { member_id: m, partner_transaction_id: "D-1", points: 300, amount_minor: 3_000, currency: "EUR" }));
  trafficClock.set("2026-04-11T10:00:00Z");
  await hub.db.transaction((trx) => earn.burn(trx, P.K!, { member_id: m, partner_transaction_id: "K-1", points: 200, amount_minor: 2_000, currency: "EUR" }));
  trafficClock.set("2026-04-12T10:00:00Z");
  await hub.db.transaction((trx) => earn.burn(trx, P.L!, { member_id: m, partner_transaction_id: "L-1", points: 100, amount_minor: 1_000, currency: "EUR" }));

  const start = await send("POST", "/admin/v1/settlement-runs", admin, { period: "2026-04" });
  expect(start.status).toBe(202);
  // Polled over HTTP, as a client would: it also keeps the client's pooled connection from idling
  // into the server's keep-alive timeout while the run works.
  await waitFor("the April run", async () => (await json(await send("GET", "/admin/v1/settlement-runs/run_2026-04", admin))).status === "closed");
});
afterAll(async () => {
  await hub?.close();
  await standin?.close();
});

describe("payment obligations", () => {
  it("are born with the month's close, one per statement that does not net to zero, exactly", async () => {
    const res = await send("GET", "/admin/v1/settlement-runs/run_2026-04/payments", admin);
    expect(res.status).toBe(200);
    const items = (await json(res)).items as Array<Record<string, unknown>>;
    const by = (k: string) => items.find((i) => i.partner_id === P[k]);
    expect(items).toHaveLength(10);
    expect(by("X")).toMatchObject({ direction: "receivable_from_partner", amount_due_minor: 1_000, amount_paid_minor: 0, status: "pending", due_date: "2026-05-15", reference: ref("X"), currency: "EUR", payments: [] });
    expect(by("D")).toMatchObject({ direction: "payable_to_partner", amount_due_minor: 300, status: "pending" });
    expect(by("K")).toMatchObject({ direction: "payable_to_partner", amount_due_minor: 200 });
    expect(by("A")).toMatchObject({ direction: "receivable_from_partner", amount_due_minor: 5_000 });
    expect(by("H")).toMatchObject({ amount_due_minor: 40_000 });
    // The reference is the pain.001 EndToEndId of the same statement.
    await send("PUT", `/admin/v1/settlement-payee-accounts/${P.K}`, admin, { account_holder: "K Kino", iban: "DE89370400440532013000", bic: "COBADEFFXXX" });
    await send("PUT", `/admin/v1/settlement-payee-accounts/${P.D}`, admin, { account_holder: "D Books", iban: "DE89370400440532013000", bic: "COBADEFFXXX" });
    await send("PUT", `/admin/v1/settlement-payee-accounts/${P.L}`, admin, { account_holder: "L Lido", iban: "DE89370400440532013000", bic: "COBADEFFXXX" });
    const file = await send("POST", "/admin/v1/settlement-runs/run_2026-04/credit-transfers", admin, { debtor: { name: "Operator", iban: "DE89370400440532013000", bic: "COBADEFFXXX" } });
    const xml = await file.text();
    expect(xml).toContain(`<EndToEndId>${ref("K")}</EndToEndId>`);
  });

  it("show a partner its own statement's payment, and another partner's is 404", async () => {
    const token = await partnerToken(hub, P.A!, ["settlements:read"]);
    const res = await send("GET", `/v1/settlements/${stm("A")}/payment`, token);
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toMatchObject({ statement_id: stm("A"), direction: "receivable_from_partner", amount_due_minor: 5_000, status: "pending", reference: ref("A") });
    expect(body.run_id).toBeUndefined();
    expect((await send("GET", `/v1/settlements/${stm("E")}/payment`, token)).status).toBe(404);
    expect((await send("GET", `/v1/settlements/stm_nope/payment`, token)).status).toBe(404);
  });
});

describe("the Stripe rail", () => {
  it("refuses to instruct partners without Stripe accounts, changing nothing", async () => {
    const res = await send("POST", "/admin/v1/settlement-runs/run_2026-04/payments", admin, { rail: "stripe", partner_ids: [P.D, P.A] }, { "idempotency-key": "no-accounts" });
    expect(res.status).toBe(422);
    expect(await json(res)).toMatchObject({ code: "stripe-account-missing", partner_ids: expect.arrayContaining([P.D, P.A]) });
    expect((await obligation("D")).status).toBe("pending");
    expect(await hub.db("outbox").where("queue", "settlement.stripe-pay").first()).toBeUndefined();
  });

  it("pays the creditor by transfer and invoices the debtor, once, through the outbox and queue", async () => {
    expect((await send("PUT", `/admin/v1/settlement-stripe-accounts/${P.D}`, admin, { connected_account_id: "acct_D1" })).status).toBe(200);
    expect((await send("PUT", `/admin/v1/settlement-stripe-accounts/${P.A}`, admin, { customer_id: "cus_A1" })).status).toBe(200);
    expect((await send("PUT", `/admin/v1/settlement-stripe-accounts/${P.A}`, admin, { customer_id: "not-a-customer" })).status).toBe(422);
    const body = { rail: "stripe", partner_ids: [P.D, P.A] };
    const first = await send("POST", "/admin/v1/settlement-runs/run_2026-04/payments", admin, body, { "idempotency-key": "pay-april-stripe" });
    expect(first.status).toBe(202);
    const items = (await json(first)).items as Array<{ partner_id: string; status: string; rail: string }>;
    expect(items.map((i) => [i.status, i.rail])).toEqual([["instructed", "stripe"], ["instructed", "stripe"]]);
    // The same request again answers the same; a new one finds nothing left to instruct.
    const replay = await send("POST", "/admin/v1/settlement-runs/run_2026-04/payments", admin, body, { "idempotency-key": "pay-april-stripe" });
    expect(replay.status).toBe(202);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect((await send("POST", "/admin/v1/settlement-runs/run_2026-04/payments", admin, body, { "idempotency-key": "pay-april-stripe-2" })).status).toBe(409);

    const d = await waitFor("the transfer", async () => {
      const o = await obligation("D");
      return o.stripe_transfer_id ? o : undefined;
    });
    const transfer = standin.transfers.get(d.stripe_transfer_id)!;
    expect(transfer).toMatchObject({ amount: 300, currency: "eur", destination: "acct_D1", transfer_group: ref("D"), metadata: { payment_obligation_id: d.id, statement_id: stm("D") } });
    const transferReq = standin.requests.filter((r) => r.path === "/v1/transfers");
    expect(transferReq).toHaveLength(1);
    const a = await waitFor("the invoice", async () => {
      const o = await obligation("A");
      return o.stripe_invoice_id && standin.invoices.get(o.stripe_invoice_id)?.status === "open" ? o : undefined;
    });
    expect(standin.invoices.get(a.stripe_invoice_id)).toMatchObject({ customer: "cus_A1", amount_due: 5_000, currency: "eur", collection_method: "send_invoice", metadata: { payment_obligation_id: a.id } });
    expect(await hub.db("outbox").where("queue", "settlement.stripe-pay").orderBy("job_id").pluck("job_id")).toEqual([`stp:${a.id}:1`, `stp:${d.id}:1`].sort());
  });

  it("never pays twice when a job runs again, even after losing the transfer id (same idempotency key)", async () => {
    const before = standin.transfers.size;
    const log = createLogger("silent");
    const stripe = new Stripe("sk_test_standin", { host: new URL(standin.url).hostname, port: Number(new URL(standin.url).port), protocol: "http" });
    const rail = createStripeRail({ db: hub.db, clock: hub.clock, log, stripe, payments: createPaymentsService({ db: hub.db, clock: hub.clock, log }) });
    const d = await obligation("D");
    await rail.pay(d.id, 1); // the row says it is done: no call
    // A worker that died after Stripe answered but before it saved the transfer id.
    await hub.db("payment_obligations").where({ id: d.id }).update({ stripe_transfer_id: null });
    await rail.pay(d.id, 1);
    expect(standin.transfers.size).toBe(before);
    expect((await obligation("D")).stripe_transfer_id).toBe(d.stripe_transfer_id);
    const keys = standin.requests.filter((r) => r.path === "/v1/transfers");
    expect(keys).toHaveLength(2);
    // A job of an older instruction does nothing.
    await rail.pay(d.id, 0);
    expect(standin.requests.filter((r) => r.path === "/v1/transfers")).toHaveLength(2);
  });

  it("marks a refused transfer failed; instructing it again makes a new transfer under a new key", async () => {
    standin.refusedDestinations.add("acct_Lrefused");
    await send("PUT", `/admin/v1/settlement-stripe-accounts/${P.L}`, admin, { connected_account_id: "acct_Lrefused" });
    expect((await send("POST", "/admin/v1/settlement-runs/run_2026-04/payments", admin, { rail: "stripe", partner_ids: [P.L] }, { "idempotency-key": "pay-L-1" })).status).toBe(202);
    const failed = await waitFor("the refusal", async () => {
      const o = await obligation("L");
      return o.status === "failed" ? o : undefined;
    });
    expect(failed.failure).toMatch(/Stripe refused: No such destination/);
    expect(failed.stripe_transfer_id).toBeNull();
    const token = await partnerToken(hub, P.L!, ["settlements:read"]);
    expect(await json(await send("GET", `/v1/settlements/${stm("L")}/payment`, token))).toMatchObject({ status: "failed", amount_paid_minor: 0 });

    await send("PUT", `/admin/v1/settlement-stripe-accounts/${P.L}`, admin, { connected_account_id: "acct_Lgood" });
    expect((await send("POST", "/admin/v1/settlement-runs/run_2026-04/payments", admin, { rail: "stripe", partner_ids: [P.L] }, { "idempotency-key": "pay-L-2" })).status).toBe(202);
    const l = await waitFor("the second transfer", async () => {
      const o = await obligation("L");
      return o.stripe_transfer_id ? o : undefined;
    });
    expect(l).toMatchObject({ status: "instructed", instructions: 2, failure: null });
    expect(standin.transfers.get(l.stripe_transfer_id)).toMatchObject({ amount: 100, destination: "acct_Lgood" });
    expect(await hub.db("outbox").where("queue", "settlement.stripe-pay").where("job_id", "like", `stp:${l.id}:%`).orderBy("job_id").pluck("job_id")).toEqual([`stp:${l.id}:1`, `stp:${l.id}:2`]);
  });

  it("records payments from signed webhooks; a bad signature is 400 and changes nothing", async () => {
    const d = await obligation("D");
    const a = await obligation("A");
    const paid = stripeEvent("transfer.created", { id: d.stripe_transfer_id, object: "transfer", amount: 300, amount_reversed: 0, currency: "eur", metadata: { payment_obligation_id: d.id } });
    const count = await paymentCount();

    const forged = await deliver(paid, signer.webhooks.generateTestHeaderString({ payload: paid, secret: "whsec_someone_else" }));
    expect(forged.status).toBe(400);
    expect((await json(forged)).code).toBe("invalid-signature");
    const tampered = await deliver(paid.replace('"amount":300', '"amount":3000'), signer.webhooks.generateTestHeaderString({ payload: paid, secret: SECRET }));
    expect(tampered.status).toBe(400);
    const unsigned = await hub.fetch("/webhooks/stripe", { method: "POST", headers: { "content-type": "application/json", "stripe-signature": "t=1,v1=00" }, body: paid });
    expect(unsigned.status).toBe(400);
    expect(await paymentCount()).toBe(count);
    expect((await obligation("D")).status).toBe("instructed");
    expect(await hub.db("stripe_events").where({ id: JSON.parse(paid).id }).first()).toBeUndefined();

    const ok = await deliver(paid);
    expect(ok.status).toBe(200);
    expect(await json(ok)).toEqual({ received: true, duplicate: false, membership_id: null, payment_obligation_id: d.id });
    expect(await json(await deliver(paid))).toMatchObject({ duplicate: true });
    expect(await obligation("D")).toMatchObject({ status: "paid", amount_paid_minor: 300n });

    // The invoice is paid; Stripe says so once, and the partner is told.
    const invPaid = stripeEvent("invoice.paid", { id: a.stripe_invoice_id, object: "invoice", amount_paid: 5_000, currency: "eur", metadata: { payment_obligation_id: a.id }, status_transitions: { paid_at: Math.floor(Date.parse("2026-05-09T08:00:00Z") / 1000) } });
    expect((await deliver(invPaid)).status).toBe(200);
    expect(await obligation("A")).toMatchObject({ status: "paid", amount_paid_minor: 5_000n });
    const ev = await hub.db("events").where({ type: "payment.received", partner_id: P.A }).first();
    expect(ev.data).toMatchObject({ statement_id: stm("A"), amount_minor: 5_000, rail: "stripe", status: "paid" });
    expect(await paymentCount()).toBe(count + 2);

    const token = await partnerToken(hub, P.A!, ["settlements:read"]);
    const view = await json(await send("GET", `/v1/settlements/${stm("A")}/payment`, token));
    expect(view).toMatchObject({ status: "paid", amount_paid_minor: 5_000, amount_outstanding_minor: 0, rail: "stripe", payments: [{ amount_minor: 5_000, rail: "stripe", source: "stripe_webhook", reference: a.stripe_invoice_id, value_date: "2026-05-09" }] });
  });

  it("a partly reversed transfer leaves the creditor partly paid; membership events still reach memberships", async () => {
    const d = await obligation("D");
    const reversed = stripeEvent("transfer.reversed", { id: d.stripe_transfer_id, object: "transfer", amount: 300, amount_reversed: 100, currency: "eur", metadata: { payment_obligation_id: d.id } });
    expect((await deliver(reversed)).status).toBe(200);
    const o = await obligation("D");
    expect(o).toMatchObject({ status: "partially_paid", amount_paid_minor: 200n });
    expect(o.failure).toMatch(/reversed/);
    const sub = stripeEvent("customer.subscription.deleted", { id: "sub_nobody", object: "subscription" });
    const res = await deliver(sub);
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ received: true, membership_id: null });
    expect(await hub.db("stripe_events").where({ id: JSON.parse(sub).id }).first()).toBeDefined();
  });

  it("reconciles Stripe's balance transactions without recording a payment twice; the same list twice changes nothing", async () => {
    const d = await obligation("D");
    const a = await obligation("A");
    const t = Math.floor(Date.parse("2026-05-10T00:00:00Z") / 1000);
    standin.balanceTransactions.push(
      { id: "txn_tr_d", object: "balance_transaction", amount: -300, currency: "eur", created: t, description: "Loyalty settlement", type: "transfer", source: { id: d.stripe_transfer_id, object: "transfer" }, fee: 0, net: -300, status: "available", reporting_category: "transfer" },
      { id: "txn_ch_a", object: "balance_transaction", amount: 5_000, currency: "eur", created: t + 60, description: "Payment for Invoice", type: "charge", source: { id: "ch_a", object: "charge", payment_intent: "pi_a" }, fee: 95, net: 4_905, status: "available", reporting_category: "charge" },
      { id: "txn_ch_x", object: "balance_transaction", amount: 777, currency: "eur", created: t + 120, description: "Someone", type: "charge", source: { id: "ch_x", object: "charge", payment_intent: "pi_x" }, fee: 0, net: 777, status: "available", reporting_category: "charge" },
      { id: "txn_po", object: "balance_transaction", amount: -4_000, currency: "eur", created: t + 180, description: "STRIPE PAYOUT", type: "payout", source: { id: "po_1", object: "payout" }, fee: 0, net: -4_000, status: "available", reporting_category: "payout" },
    );
    standin.invoicePayments.set("pi_a", { invoice: a.stripe_invoice_id, amount_paid: 5_000 });
    const count = await paymentCount();
    const window = { created_from: "2026-05-01T00:00:00Z", created_to: "2026-06-01T00:00:00Z" };
    const res = await send("POST", "/admin/v1/reconciliation/stripe-balance-transactions", admin, window, { "idempotency-key": "stripe-may" });
    expect(res.status, await res.clone().text()).toBe(201);
    const imp = await json(res);
    expect(imp.summary).toEqual({ matched: 2, short: 0, over: 0, unexpected: 1, duplicate: 0, ignored: 1 });
    const by = (ref: string) => imp.items.find((i: { entry_ref: string }) => i.entry_ref === ref);
    // The transfer out is the one the webhook recorded: matched, not recorded again (its later
    // reversal is a movement of its own).
    expect(by("txn_tr_d")).toMatchObject({ outcome: "matched", direction: "debit", amount_minor: 300, statement_id: stm("D"), difference_minor: 0 });
    expect(by("txn_ch_a")).toMatchObject({ outcome: "matched", direction: "credit", amount_minor: 5_000, statement_id: stm("A"), difference_minor: 0 });
    expect(by("txn_ch_x")).toMatchObject({ outcome: "unexpected", obligation_id: null });
    expect(by("txn_po")).toMatchObject({ outcome: "ignored" });
    expect(await paymentCount()).toBe(count);
    const again = await send("POST", "/admin/v1/reconciliation/stripe-balance-transactions", admin, window, { "idempotency-key": "stripe-may-again" });
    expect(again.status).toBe(200);
    expect((await json(again)).id).toBe(imp.id);
    expect(await paymentCount()).toBe(count);
  });
});

describe("bank reconciliation", () => {
  const camt = () =>
    fs
      .readFileSync(new URL("./fixtures/camt053-2026-05.xml", import.meta.url), "utf8")
      .replace(/\{\{REF_(\w)\}\}/g, (_m, k: string) => ref(k))
      .replace("{{STM_K}}", stm("K"))
      .replace("{{AMOUNT_K}}", "2.00");
  const upload = (body: string, type: string, key: string) =>
    hub.fetch("/admin/v1/reconciliation/bank-statements", { method: "POST", headers: { ...bearer(admin), "content-type": type, "idempotency-key": key }, body });

  it("matches a camt.053: matched, short, over, unexpected, a batch, a pending entry skipped — and records the payments", async () => {
    await send("POST", "/admin/v1/settlement-runs/run_2026-04/payments", admin, { rail: "bank", partner_ids: [P.K, P.E, P.F, P.G, P.H, P.J] }, { "idempotency-key": "bank-april" });
    const count = await paymentCount();
    const res = await upload(camt(), "application/xml", "camt-may");
    expect(res.status, await res.clone().text()).toBe(201);
    const imp = await json(res);
    expect(imp).toMatchObject({ source: "camt053", account: "DE89370400440532013000", statement_ref: "LOYOPS-2026-05", entry_count: 7, replayed: false });
    expect(imp.summary).toEqual({ matched: 3, short: 1, over: 1, unexpected: 2, duplicate: 0, ignored: 0 });
    const out = imp.items.map((i: Record<string, unknown>) => [i.entry_ref, i.outcome, i.partner_id, i.difference_minor]);
    expect(out).toEqual([
      ["BANKREF-0001", "matched", P.E, 0],
      ["BANKREF-0002", "short", P.F, -5_000],
      ["BANKREF-0003", "over", P.G, 5_000],
      ["BANKREF-0004", "unexpected", null, null],
      ["BANKREF-0005", "matched", P.K, 0],
      ["BANKREF-0006-1", "matched", P.J, 0],
      ["BANKREF-0006-2", "unexpected", null, null],
    ]);
    expect(await paymentCount()).toBe(count + 5);
    expect(await obligation("E")).toMatchObject({ status: "paid", amount_paid_minor: 10_000n });
    expect(await obligation("F")).toMatchObject({ status: "partially_paid", amount_paid_minor: 15_000n });
    expect(await obligation("G")).toMatchObject({ status: "paid", amount_paid_minor: 35_000n });
    expect(await obligation("K")).toMatchObject({ status: "paid", amount_paid_minor: 200n, rail: "bank" });
    expect(await obligation("H")).toMatchObject({ status: "instructed", amount_paid_minor: 0n });

    const report = await json(await send("GET", "/admin/v1/settlement-runs/run_2026-04/reconciliation", admin));
    expect(report.short.map((i: { partner_id: string }) => i.partner_id)).toEqual([P.F]);
    expect(report.over.map((i: { partner_id: string }) => i.partner_id)).toEqual([P.G]);
    expect(report.missing.map((o: { partner_id: string }) => o.partner_id).sort()).toEqual([P.H, P.L, P.X].sort());
    expect(report.unexpected.map((i: { entry_ref: string }) => i.entry_ref)).toEqual(["txn_ch_x", "BANKREF-0004", "BANKREF-0006-2"]);
    expect(report.matched.map((i: { partner_id: string }) => i.partner_id).sort()).toEqual([P.A, P.D, P.E, P.K, P.J].sort());
    expect(report.totals).toEqual([{ currency: "EUR", receivable_due_minor: 146_000, receivable_received_minor: 105_000, payable_due_minor: 600, payable_paid_minor: 400 }]);

    const fView = await json(await send("GET", `/v1/settlements/${stm("F")}/payment`, await partnerToken(hub, P.F!, ["settlements:read"])));
    expect(fView).toMatchObject({ status: "partially_paid", amount_outstanding_minor: 5_000, rail: "bank", payments: [{ amount_minor: 15_000, source: "camt053", reference: "BANKREF-0002", value_date: "2026-05-14" }] });
  });

  it("importing the same file twice changes nothing; the same entries in a CSV are duplicates; H pays by CSV", async () => {
    const count = await paymentCount();
    const again = await upload(camt(), "application/xml", "camt-may-again");
    expect(again.status).toBe(200);
    expect(await json(again)).toMatchObject({ replayed: true, summary: { matched: 3 } });
    expect(await paymentCount()).toBe(count);
    expect(Number((await hub.db("reconciliation_imports").count("* as n").first())!.n)).toBe(2);

    const csv = [
      "booking_date,amount,currency,reference,remittance,counterparty,entry_ref",
      `2026-05-12,100.00,EUR,${ref("E")},"Loyalty settlement, April",Partner E GmbH,BANKREF-0001`,
      `2026-05-28,400.00,EUR,,"settling ${stm("H")}",H AG,BANKREF-0101`,
      `2026-05-29,-9.99,EUR,,Bank fee,,BANKREF-0102`,
      "",
    ].join("\r\n");
    const res = await upload(csv, "text/csv", "csv-may");
    expect(res.status, await res.clone().text()).toBe(201);
    const imp = await json(res);
    expect(imp.items.map((i: { outcome: string }) => i.outcome)).toEqual(["duplicate", "matched", "unexpected"]);
    expect(await paymentCount()).toBe(count + 1);
    expect(await obligation("H")).toMatchObject({ status: "paid", amount_paid_minor: 40_000n });
    expect(await obligation("E")).toMatchObject({ amount_paid_minor: 10_000n });
    expect((await upload(csv, "text/csv", "csv-may-2")).status).toBe(200);
    expect(await paymentCount()).toBe(count + 1);
    const got = await json(await send("GET", `/admin/v1/reconciliation/imports/${imp.id}`, admin));
    expect(got).toMatchObject({ id: imp.id, source: "bank_csv", entry_count: 3 });
    const unknown = await send("GET", "/admin/v1/reconciliation/imports/rci_nope", admin);
    expect(unknown.status).toBe(404);
    // It answered statement-not-found ("Settlement statement not found") for an import.
    expect(await unknown.json()).toMatchObject({ code: "import-not-found", title: "Reconciliation import not found" });
  });

  it("refuses a file it cannot read with a 422 that names the place, changing nothing", async () => {
    const count = await paymentCount();
    const bad = await upload("<Document><BkToCstmrStmt><Stmt><Ntry><Amt Ccy=\"EUR\">1.234</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2026-05-01</Dt></BookgDt></Ntry></Stmt></BkToCstmrStmt></Document>", "application/xml", "bad-1");
    expect(bad.status).toBe(422);
    expect(await json(bad)).toMatchObject({ code: "invalid-statement-file", errors: [{ field: "body", reason: expect.stringContaining("Stmt[1]/Ntry[1]") }] });
    expect((await upload("<Document><oops></Document>", "application/xml", "bad-2")).status).toBe(422);
    expect((await upload("date,amount\n2026-05-01,1.00\n", "text/csv", "bad-3")).status).toBe(422);
    expect((await hub.fetch("/admin/v1/reconciliation/bank-statements", { method: "POST", headers: { ...bearer(admin), "content-type": "application/pdf", "idempotency-key": "bad-4" }, body: "%PDF" })).status).toBe(415);
    expect(await paymentCount()).toBe(count);
    expect(Number((await hub.db("reconciliation_imports").count("* as n").first())!.n)).toBe(3);
  });
});

describe("security of every payments route", () => {
  // One test per route: the shared set makes some thirty calls each, slow on a loaded machine.
  const routes = () => [
    { method: "GET", path: `/v1/settlements/${stm("A")}/payment`, scopes: ["settlements:read"], audience: "partner" as const, partnerId: P.A! },
    { method: "GET", path: "/admin/v1/settlement-runs/run_2026-04/payments", scopes: ["admin"], audience: "admin" as const },
    { method: "POST", path: "/admin/v1/settlement-runs/run_2026-04/payments", body: { rail: "bank" }, scopes: ["admin"], audience: "admin" as const },
    { method: "GET", path: "/admin/v1/settlement-runs/run_2026-04/reconciliation", scopes: ["admin"], audience: "admin" as const },
    { method: "PUT", path: `/admin/v1/settlement-stripe-accounts/${P.A}`, body: { customer_id: "cus_x" }, scopes: ["admin"], audience: "admin" as const },
    { method: "POST", path: "/admin/v1/reconciliation/bank-statements", body: "x", scopes: ["admin"], audience: "admin" as const },
    { method: "POST", path: "/admin/v1/reconciliation/stripe-balance-transactions", body: { created_from: "2026-05-01T00:00:00Z", created_to: "2026-06-01T00:00:00Z" }, scopes: ["admin"], audience: "admin" as const },
    { method: "GET", path: "/admin/v1/reconciliation/imports/rci_x", scopes: ["admin"], audience: "admin" as const },
  ];
  for (let i = 0; i < 8; i++) {
    it(`refuses bad tokens, missing scopes and the wrong audience (route ${i + 1})`, async () => {
      await expectRouteSecurity(hub, routes()[i]!);
      expect((await obligation("A")).status).toBe("paid");
      expect((await hub.db("partner_stripe_accounts").where({ partner_id: P.A }).first()).customer_id).toBe("cus_A1");
    });
  }
});
