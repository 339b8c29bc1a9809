import http from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A local HTTP stand-in for the few Stripe API calls the hub makes (products, prices, Checkout
 * Sessions, subscriptions), so tests run the real `stripe` SDK without the internet. It records
 * every request (form-encoded body decoded into a flat map, as Stripe receives it).
 */
export interface StripeStandIn {
  url: string;
  requests: Array<{ method: string; path: string; body: Record<string, string>; authorization: string | undefined }>;
  /** What GET /v1/subscriptions/:id answers: the period end (unix seconds) per subscription id. */
  subscriptionPeriodEnd: Map<string, number>;
  /** The subscription a completed subscription Checkout creates (set per test). */
  close(): Promise<void>;
}

export async function startStripeStandIn(): Promise<StripeStandIn> {
  let n = 0;
  const requests: StripeStandIn["requests"] = [];
  const subscriptionPeriodEnd = new Map<string, number>();
  const server = http.createServer((req, res) => {
    let raw = "";
    req.on("data", (c: Buffer) => (raw += c.toString("utf8")));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://standin");
      const body = Object.fromEntries(new URLSearchParams(raw));
      requests.push({ method: req.method ?? "", path: url.pathname, body, authorization: req.headers.authorization });
      const send = (status: number, obj: unknown) => {
        res.writeHead(status, { "content-type": "application/json", "request-id": `req_standin_${++n}` });
        res.end(JSON.stringify(obj));
      };
      const id = ++n;
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
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
