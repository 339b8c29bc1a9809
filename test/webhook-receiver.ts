import http from "node:http";
import type { AddressInfo } from "node:net";

export interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  at: number;
}

export type Answer = (req: Received, n: number) => { status: number; body?: string; headers?: Record<string, string> } | "hang";

/**
 * A partner's webhook receiver on 127.0.0.1: records what it got and answers as the test says.
 * It can go down (connections refused) and come back on the same port.
 */
export async function startReceiver(answer: Answer = () => ({ status: 200, body: "ok" })) {
  const received: Received[] = [];
  const hanging = new Set<http.ServerResponse>();
  let respond = answer;
  let port = 0;
  let server: http.Server | undefined;

  async function open() {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const r: Received = { headers: req.headers, body: Buffer.concat(chunks).toString("utf8"), at: Date.now() };
        received.push(r);
        const a = respond(r, received.length);
        if (a === "hang") {
          hanging.add(res);
          return;
        }
        res.writeHead(a.status, { "content-type": "text/plain", ...a.headers });
        res.end(a.body ?? "");
      });
    });
    await new Promise<void>((r) => server!.listen(port, "127.0.0.1", () => r()));
    port = (server.address() as AddressInfo).port;
  }

  async function shut() {
    for (const res of hanging) res.destroy();
    hanging.clear();
    if (!server) return;
    const s = server;
    server = undefined;
    await new Promise<void>((r) => {
      s.close(() => r());
      s.closeAllConnections();
    });
  }

  await open();
  return {
    received,
    get url() {
      return `http://127.0.0.1:${port}/hooks`;
    },
    get port() {
      return port;
    },
    answer(a: Answer) {
      respond = a;
    },
    /** Down: the port refuses connections. */
    down: shut,
    /** Up again on the same port. */
    up: open,
    close: shut,
    /** How many messages arrived per webhook-id. */
    countsById(): Map<string, number> {
      const m = new Map<string, number>();
      for (const r of received) {
        const id = String(r.headers["webhook-id"]);
        m.set(id, (m.get(id) ?? 0) + 1);
      }
      return m;
    },
  };
}

export type Receiver = Awaited<ReturnType<typeof startReceiver>>;

export async function until<T>(probe: () => Promise<T> | T, opts: { timeoutMs?: number; what?: string } = {}): Promise<NonNullable<T>> {
  const end = Date.now() + (opts.timeoutMs ?? 15_000);
  for (;;) {
    const v = await probe();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${opts.what ?? "a condition"}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
