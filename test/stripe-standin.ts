import http from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A local HTTP stand-in for the few Stripe API calls the hub makes (products, prices, Checkout
 * Sessions, subscriptions; for settlement transfers, invoices, invoice items, balance transactions
 * and invoice payments), so tests run the real `stripe` SDK without the internet. It records every
 * request (form-encoded body decoded into a flat map, as Stripe receives it) and, like Stripe,
 * answers a POST repeated with the same Idempotency-Key with the first answer.
 */
export interface StripeStandIn {
  url: string;
  requests: Array<{ method: string; path: string; body: Record<string, string>; authorization: string | undefined }>;
  /** What GET /v1/subscriptions/:id answers: the period end (unix seconds) per subscription id. */
  subscriptionPeriodEnd: Map<string, number>;
  /** Transfers created, by id. */
  transfers: Map<string, Record<string, unknown>>;
  /** Invoices created, by id (status draft → open once finalized). */
  invoices: Map<string, Record<string, unknown> & { amount_due: number; status: string }>;
  /** Connected accounts that refuse transfers (Stripe answers 400, as for an unknown destination). */
  refusedDestinations: Set<string>;
  /** What GET /v1/balance_transactions lists (newest first, as Stripe does); `source` is kept expanded. */
  balanceTransactions: Array<Record<string, unknown> & { created: number }>;
  /** What GET /v1/invoice_payments answers, by payment intent id. */
  invoicePayments: Map<string, { invoice: string; amount_paid: number }>;
  /** The subscription a completed subscription Checkout creates (set per test). */
  close(): Promise<void>;
}

export async function startStripeStandIn(): Promise<StripeStandIn> {
  let n = 0;
  const requests: StripeStandIn["requests"] = [];
  const subscriptionPeriodEnd = new Map<string, number>();
  const transfers: StripeStandIn["transfers"] = new Map();
  const invoices: StripeStandIn["invoices"] = new Map();
  const refusedDestinations = new Set<string>();
  const balanceTransactions: StripeStandIn["balanceTransactions"] = [];
  const invoicePayments: StripeStandIn["invoicePayments"] = new Map();
  const idempotent = new Map<string, { status: number; body: unknown }>();
  const server = http.createServer((req, res) => {
    let raw = "";
    req.on("data", (c: Buffer) => (raw += c.toString("utf8")));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://standin");
      const body = Object.fromEntries(new URLSearchParams(raw));
      requests.push({ method: req.method ?? "", path: url.pathname, body, authorization: req.headers.authorization });
      const key = req.method === "POST" ? req.headers["idempotency-key"] : undefined;
      const replay = typeof key === "string" ? idempotent.get(`${url.pathname} ${key}`) : undefined;
      const send = (status: number, obj: unknown) => {
        if (typeof key === "string" && !replay) idempotent.set(`${url.pathname} ${key}`, { status, body: obj });
        res.writeHead(status, { "content-type": "application/json", "request-id": `req_standin_${++n}`, ...(replay ? { "idempotent-replayed": "true" } : {}) });
        res.end(JSON.stringify(obj));
      };
      if (replay) return send(replay.status, replay.body);
      const id = ++n;
      const metadata = Object.fromEntries(Object.entries(body).filter(([k]) => k.startsWith("metadata[")).map(([k, v]) => [k.slice(9, -1), v]));
      if (req.method === "POST" && url.pathname === "/v1/transfers") {
        if (refusedDestinations.has(body.destination ?? "")) return send(400, { error: { type: "invalid_request_error", message: `No such destination: '${body.destination}'` } });
        const t = { id: `tr_${id}`, object: "transfer", amount: Number(body.amount), amount_reversed: 0, currency: body.currency, destination: body.destination, transfer_group: body.transfer_group ?? null, metadata, created: Math.floor(Date.now() / 1000), reversed: false };
        transfers.set(t.id, t);
        return send(200, t);
      }
      if (req.method === "POST" && url.pathname === "/v1/invoices") {
        const inv = { id: `in_${id}`, object: "invoice", customer: body.customer, currency: body.currency, collection_method: body.collection_method, due_date: Number(body.due_date), amount_due: 0, amount_paid: 0, status: "draft", metadata, description: body.description ?? null };
        invoices.set(inv.id, inv);
        return send(200, inv);
      }
      const inv = /^\/v1\/invoices\/([^/]+)(\/finalize)?$/.exec(url.pathname);
      if (inv && invoices.has(inv[1]!)) {
        const row = invoices.get(inv[1]!)!;
        if (req.method === "GET" && !inv[2]) return send(200, row);
        if (req.method === "POST" && inv[2]) {
          if (row.status !== "draft") return send(400, { error: { type: "invalid_request_error", message: "This invoice is already finalized" } });
          row.status = "open";
          return send(200, row);
        }
      }
      if (req.method === "POST" && url.pathname === "/v1/invoiceitems") {
        const target = invoices.get(body.invoice ?? "");
        if (!target) return send(400, { error: { type: "invalid_request_error", message: "No such invoice" } });
        target.amount_due += Number(body.amount);
        return send(200, { id: `ii_${id}`, object: "invoiceitem", amount: Number(body.amount), currency: body.currency, invoice: target.id, customer: body.customer });
      }
      if (req.method === "GET" && url.pathname === "/v1/balance_transactions") {
        const q = url.searchParams;
        const gte = Number(q.get("created[gte]") ?? "0");
        const lt = Number(q.get("created[lt]") ?? String(Number.MAX_SAFE_INTEGER));
        const expand = [...q.entries()].some(([k, v]) => k.startsWith("expand") && v === "data.source");
        const data = balanceTransactions
          .filter((b) => b.created >= gte && b.created < lt)
          .map((b) => ({ ...b, source: expand ? b.source : typeof b.source === "object" && b.source ? (b.source as { id: string }).id : b.source }));
        return send(200, { object: "list", url: "/v1/balance_transactions", has_more: false, data });
      }
      if (req.method === "GET" && url.pathname === "/v1/invoice_payments") {
        const pi = url.searchParams.get("payment[payment_intent]") ?? "";
        const found = invoicePayments.get(pi);
        const data = found ? [{ id: `inpay_${id}`, object: "invoice_payment", invoice: found.invoice, amount_paid: found.amount_paid, payment: { type: "payment_intent", payment_intent: pi }, status: "paid" }] : [];
        return send(200, { object: "list", url: "/v1/invoice_payments", has_more: false, data });
      }
      if (req.method === "POST" && url.pathname === "/v1/products") return send(200, { id: `prod_${id}`, object: "product", name: body.name, metadata: {} });
      if (req.method === "POST" && url.pathname === "/v1/prices") {
        return send(200, {
          id: `price_${id}`,
          object: "price",
          product: body.product,
          unit_amount: Number(body.unit_amount),
          currency: body.currency,
          recurring: body["recurring[interval]"] ? { interval: body["recurring[interval]"] } : null,
        });
      }
      if (req.method === "POST" && url.pathname === "/v1/checkout/sessions") {
        return send(200, {
          id: `cs_test_${id}`,
          object: "checkout.session",
          mode: body.mode,
          client_reference_id: body.client_reference_id,
          status: "open",
          payment_status: "unpaid",
          url: `https://checkout.stripe.test/c/pay/cs_test_${id}`,
        });
      }
      const sub = /^\/v1\/subscriptions\/([^/]+)$/.exec(url.pathname);
      if (req.method === "GET" && sub) {
        const end = subscriptionPeriodEnd.get(sub[1]!);
        if (end === undefined) return send(404, { error: { type: "invalid_request_error", message: `No such subscription: '${sub[1]}'` } });
        return send(200, { id: sub[1], object: "subscription", status: "active", items: { object: "list", data: [{ id: "si_1", object: "subscription_item", current_period_end: end }] } });
      }
      return send(404, { error: { type: "invalid_request_error", message: `Unrecognized request URL (${req.method}: ${url.pathname})` } });
    });
  });
  server.listen(0, "127.0.0.1");
  await new Promise<void>((r) => server.once("listening", () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    subscriptionPeriodEnd,
    transfers,
    invoices,
    refusedDestinations,
    balanceTransactions,
    invoicePayments,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
