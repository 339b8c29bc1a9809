/**
 * The bench's HTTP clients, in a thread of their own: CONCURRENCY keep-alive connections, each
 * sending its next request as soon as the previous answer arrived (a closed loop, as pgbench's
 * clients). Off the server's event loop, so the server is measured, not the client — pgbench's
 * clients are a separate program too.
 */
import http from "node:http";
import { parentPort, workerData } from "node:worker_threads";

export interface LoadSpec {
  /** The API processes; client c talks to bases[c % bases.length]. */
  bases: string[];
  phase: "health" | "earn" | "burn";
  tokens: string[];
  members: string[];
  concurrency: number;
  durationS: number;
}

export interface LoadResult {
  latencies: number[];
  statuses: Record<number, number>;
  firstErrors: Record<number, string>;
  seconds: number;
}

const spec = workerData as LoadSpec;
const urls = spec.bases.map((b) => new URL(b));
const agent = new http.Agent({ keepAlive: true, maxSockets: spec.concurrency });

function request(c: number, method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; text: string }> {
  const url = urls[c % urls.length]!;
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, method, path, agent, headers: body ? { ...headers, "content-length": Buffer.byteLength(body) } : headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

async function main(): Promise<LoadResult> {
  const latencies: number[] = [];
  const statuses: Record<number, number> = {};
  const firstErrors: Record<number, string> = {};
  let seq = 0;
  const until = Date.now() + spec.durationS * 1000;
  const client = async (c: number) => {
    while (Date.now() < until) {
      const i = ++seq;
      const member = spec.members[(i * 7919) % spec.members.length]!;
      const t0 = performance.now();
      let res: { status: number; text: string };
      if (spec.phase === "health") {
        res = await request(c, "GET", "/healthz", {});
      } else {
        const body =
          spec.phase === "earn"
            ? { member_id: member, partner_transaction_id: `e-${i}`, amount_minor: 12_345, currency: "EUR" }
            : { member_id: member, partner_transaction_id: `b-${i}`, points: 1, amount_minor: 10, currency: "EUR" };
        res = await request(
          c,
          "POST",
          `/v1/${spec.phase}`,
          { authorization: `Bearer ${spec.tokens[c % spec.tokens.length]}`, "content-type": "application/json", "idempotency-key": `${spec.phase}-${i}` },
          JSON.stringify(body),
        );
      }
      latencies.push(performance.now() - t0);
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      if (res.status >= 300 && !(res.status in firstErrors)) firstErrors[res.status] = res.text.slice(0, 300);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: spec.concurrency }, (_, c) => client(c)));
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  return { latencies, statuses, firstErrors, seconds };
}

main().then(
  (r) => parentPort!.postMessage(r),
  (err: unknown) => {
    throw err;
  },
);
