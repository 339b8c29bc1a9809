/**
 * npm run bench:http — the API's own CPU for one `POST /v1/earn` through the HTTP stack: the real
 * contract router (routing, body parsing, validation, the scope check, the answer), the request id,
 * the log line at info (to /dev/null; `LOG_LEVEL=warn` leaves it out) — with a stub token check and a stub handler, so no database
 * and no other process's noise is in the figure. A quick A/B for API-side work; `npm run bench`
 * measures the whole path.
 *
 * The server runs in a child process; this one drives it with CONCURRENCY (16) keep-alive clients
 * for DURATION_S (8) seconds after a 2 s warm-up and prints the child's CPU µs per request (from
 * /proc: Linux). Extra node flags for the server after the command, e.g. `-- --cpu-prof`.
 * `BARE=1` serves the same call from a bare `node:http` handler instead (read the body, parse it,
 * answer the same JSON): the floor that any HTTP stack on Node adds to. `EXPRESS=1` serves it
 * through the Express app alone, without the hot path (hot-path.ts) the hub puts in front of it.
 * Wrap it in `flock /tmp/bench.lock` on a shared machine.
 */
import { fork } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import { createApiRouter, type Handlers, type Principal } from "../../gateway/src/http/router.ts";
import { loadSpec, METHODS } from "../../gateway/src/http/openapi.ts";
import { baseMiddleware, createBaseApp } from "../../gateway/src/http/base-app.ts";
import { createHotPath } from "../../gateway/src/http/hot-path.ts";
import { notFound, problemHandler } from "../../gateway/src/http/errors.middleware.ts";
import { createLogger } from "../../gateway/src/infra/logger.ts";

const CONCURRENCY = Number(process.env.CONCURRENCY ?? 16);
const DURATION_S = Number(process.env.DURATION_S ?? 8);

if (process.argv[2] === "serve" && process.env.BARE) {
  // The floor: node:http alone, no routing, validation, auth or log line.
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { member_id: string };
      const out = JSON.stringify({ transaction_id: "txn_bench", member_id: body.member_id, points: 12, balance: { available: 100, held: 0, owed: 0 } });
      res.writeHead(201, { "content-type": "application/json", "content-length": Buffer.byteLength(out) });
      res.end(out);
    });
  });
  server.listen(0, "127.0.0.1", () => process.send?.({ port: (server.address() as { port: number }).port }));
  process.on("message", (m) => {
    if (m === "exit") process.exit(0);
  });
} else if (process.argv[2] === "serve") {
  // The child: the hub's middleware order (hub.ts), the contract router, stubs behind it.
  const spec = loadSpec();
  const log = createLogger(process.env.LOG_LEVEL ?? "info", { role: "api" }, { buffered: true });
  const handlers: Handlers = {};
  for (const item of Object.values<Record<string, { operationId?: string }>>(spec.paths)) {
    for (const m of METHODS) if (item[m]?.operationId) handlers[item[m].operationId] = async () => ({ status: 200, body: {} });
  }
  handlers.earnPoints = async (ctx) => ({
    status: 201,
    body: { transaction_id: "txn_bench", member_id: (ctx.body as { member_id: string }).member_id, points: 12, balance: { available: 100, held: 0, owed: 0 } },
  });
  const principal: Principal = { audience: "partner", clientId: "cli_bench", partnerId: "ptn_bench", scopes: new Set(["earn:write"]), tokenId: "t" };
  const { router, hot } = createApiRouter({ spec, handlers, authenticate: async () => principal, validateResponses: false, log, hotOperations: ["earnPoints"] });
  const app = createBaseApp(log);
  app.use(router);
  app.use(notFound());
  app.use(problemHandler(log));
  // As the hub serves it (hub.ts): the hot path first, the app for the rest; EXPRESS=1: the app alone.
  const handler = process.env.EXPRESS
    ? app
    : createHotPath({ routes: hot, before: baseMiddleware(log), onError: problemHandler(log), bodyLimit: "1mb", fallback: (req, res) => void app(req as Parameters<typeof app>[0], res as Parameters<typeof app>[1]) });
  const server = http.createServer(handler).listen(0, "127.0.0.1", () => process.send?.({ port: (server.address() as { port: number }).port }));
  process.on("message", (m) => {
    if (m === "exit") process.exit(0);
  });
} else {
  const child = fork(new URL(import.meta.url).pathname, ["serve"], { execArgv: [...process.argv.slice(2), "--import", "tsx"], stdio: ["ignore", "ignore", "inherit", "ipc"] });
  const { port } = await new Promise<{ port: number }>((resolve) => child.once("message", (m) => resolve(m as { port: number })));
  const cpuMs = () => {
    const f = fs.readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  };
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  let seq = 0;
  let refused = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const i = seq++;
      const body = JSON.stringify({ member_id: `mem_bench${String(i % 2000).padStart(6, "0")}`, partner_transaction_id: `e-${i}`, amount_minor: 12_345, currency: "EUR" });
      const req = http.request(
        {
          host: "127.0.0.1",
          port,
          method: "POST",
          path: "/v1/earn",
          agent,
          headers: { authorization: "Bearer stub", "content-type": "application/json", "idempotency-key": `k-${i}`, "content-length": Buffer.byteLength(body) },
        },
        (res) => {
          if (res.statusCode !== 201) refused++;
          res.resume();
          res.on("end", () => resolve());
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  const drive = async (seconds: number) => {
    const until = Date.now() + seconds * 1000;
    let n = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (Date.now() < until) {
          await one();
          n++;
        }
      }),
    );
    return n;
  };
  await drive(2);
  const before = cpuMs();
  const n = await drive(DURATION_S);
  const used = cpuMs() - before;
  child.send("exit");
  await new Promise((r) => child.once("exit", r));
  const what = process.env.BARE
    ? "a bare node:http handler (no stack)"
    : process.env.EXPRESS
      ? "the Express app alone (stub token check and handler)"
      : "the hub's HTTP stack: hot path (stub token check and handler)";
  process.stdout.write(`POST /v1/earn through ${what}: ${n} requests, ${refused} not 201, server CPU ${((used / n) * 1000).toFixed(1)} µs per request\n`);
  if (refused > 0) process.exit(1);
}
