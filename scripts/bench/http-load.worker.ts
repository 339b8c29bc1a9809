/**
 * The bench's HTTP clients, in a thread of their own: CONCURRENCY keep-alive connections, each
 * sending its next request as soon as the previous answer arrived (a closed loop, as pgbench's
 * clients). Off the server's event loop, so the server is measured, not the client — pgbench's
 * clients are a separate program too.
 *
 * Raw HTTP/1.1 over node:net sockets rather than node:http's client: on a 2-core machine the load
 * generator's CPU is taken from the API and PostgreSQL being measured, and pgbench's client is lean
 * C. With node:http's client (request and response objects, header maps, streams) the bench's "load
 * generator" CPU for earn was 0.14-0.19 ms per request; with this one (one string written per
 * request; the status line and a Content-Length or chunked body read per answer) it is 0.05-0.06 ms,
 * of which ~0.013 is this thread's start (~190 ms, tsx included). It speaks only what the bench
 * needs: one request in flight per connection, no pipelining, no redirects, no Expect.
 *
 * A connection that fails or closes before its answer is complete counts as status 0 (its message
 * in firstErrors[0]); the client reconnects for its next request. Answers still missing 10 s after
 * the run's end are failed that way too, so a stuck server cannot hang the bench.
 */
import net from "node:net";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parentPort, workerData } from "node:worker_threads";

export interface LoadSpec {
  /** The API processes; client c talks to bases[c % bases.length]. */
  bases: string[];
  phase: "health" | "earn" | "burn";
  tokens: string[];
  members: string[];
  concurrency: number;
  durationS: number;
  /** Seconds of the same load first, not counted (the API's JIT warms up); "measuring" is posted when they end. */
  warmupS: number;
  /** Requests are numbered from here (Idempotency-Keys and transaction ids): a later round of the same phase never replays an earlier one's. */
  seqFrom?: number;
}

export interface LoadResult {
  latencies: number[];
  /** Answers by HTTP status; 0 counts requests that got no answer (connection failed or closed). */
  statuses: Record<number, number>;
  /** The first answer's body (up to 300 characters) for each status >= 300, and the first failure's message under 0. */
  firstErrors: Record<number, string>;
  seconds: number;
  /** The answers slower than 40 ms: when each was sent (ms after the measured run began) and how long it took. */
  slow: Array<[number, number]>;
  /** The measured part's start and end (epoch ms): after the warm-up's last answer, and after the run's. */
  window: [number, number];
  /** This thread's own event-loop delay over the measured run, ms (p99, max): a stall here would stretch every answer's time at once. */
  loopDelay: [number, number];
}

/** An answer: its status and body bytes (status 0: no answer, body the reason). */
interface Answer {
  status: number;
  body: Buffer;
}

const CRLF = Buffer.from("\r\n");
const CRLFCRLF = Buffer.from("\r\n\r\n");
const EMPTY = Buffer.alloc(0);

/** One keep-alive HTTP/1.1 connection with at most one request in flight. */
class Connection {
  private socket: net.Socket | null = null;
  private buf: Buffer = EMPTY;
  private done: ((a: Answer) => void) | null = null;
  private error: Error | null = null;
  // The answer being read: -1 until its head is complete.
  private status = -1;
  private bodyStart = 0;
  /** Content-Length; -1 when chunked or read until close. */
  private length = -1;
  private chunked = false;
  /** Chunked: where the next chunk-size line starts, and the body's chunks so far. */
  private chunkPos = 0;
  private chunks: Buffer[] = [];
  /** The server said Connection: close: open a new socket for the next request. */
  private closing = false;

  private readonly host: string;
  private readonly port: number;

  constructor(host: string, port: number) {
    this.host = host;
    this.port = port;
  }

  /** Sends one request (the whole of it, head and body, as one string) and resolves with its answer. */
  send(request: string): Promise<Answer> {
    if (this.socket === null || this.socket.destroyed || this.closing) this.connect();
    return new Promise((resolve) => {
      this.done = resolve;
      this.socket!.write(request);
    });
  }

  /** Fails the answer in flight, if any, and closes the socket. */
  destroy(reason?: Error): void {
    if (reason) this.error ??= reason;
    this.socket?.destroy();
  }

  private connect(): void {
    this.socket?.destroy();
    const socket = net.connect({ host: this.host, port: this.port, noDelay: true });
    this.socket = socket;
    this.buf = EMPTY;
    this.error = null;
    this.closing = false;
    this.reset();
    socket.on("data", (d: Buffer) => {
      if (this.socket !== socket) return;
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      this.parse();
    });
    socket.on("error", (err) => {
      if (this.socket === socket) this.error ??= err;
    });
    socket.on("close", () => {
      if (this.socket !== socket) return;
      this.socket = null;
      // An answer without a length ends with its connection.
      if (this.done && this.status >= 0 && this.length < 0 && !this.chunked && this.error === null) {
        return this.finish(this.status, this.buf.subarray(this.bodyStart), this.buf.length);
      }
      const why = this.error ? `${this.error.message}` : "connection closed before the answer was complete";
      this.buf = EMPTY;
      this.reset();
      const done = this.done;
      this.done = null;
      done?.({ status: 0, body: Buffer.from(why) });
    });
  }

  private reset(): void {
    this.status = -1;
    this.length = -1;
    this.chunked = false;
    this.chunks = [];
  }

  private parse(): void {
    const buf = this.buf;
    if (this.status < 0) {
      const end = buf.indexOf(CRLFCRLF);
      if (end < 0) return;
      // "HTTP/1.1 201 Created": the status is bytes 9-11.
      this.status = (buf[9]! - 48) * 100 + (buf[10]! - 48) * 10 + (buf[11]! - 48);
      this.bodyStart = end + 4;
      const head = buf.toString("latin1", 0, end).toLowerCase();
      const cl = head.indexOf("\r\ncontent-length:");
      const te = head.indexOf("\r\ntransfer-encoding:");
      this.closing = head.includes("\r\nconnection: close");
      if (te >= 0 && head.slice(te, head.indexOf("\r\n", te + 2) >>> 0).includes("chunked")) {
        this.chunked = true;
        this.chunkPos = this.bodyStart;
      } else if (cl >= 0) {
        this.length = parseInt(head.slice(cl + 17), 10);
      } else if (this.status === 204 || this.status === 304 || this.status < 200) {
        this.length = 0;
      }
    }
    if (this.length >= 0) {
      const end = this.bodyStart + this.length;
      if (buf.length >= end) this.finish(this.status, buf.subarray(this.bodyStart, end), end);
    } else if (this.chunked) {
      for (;;) {
        const lineEnd = buf.indexOf(CRLF, this.chunkPos);
        if (lineEnd < 0) return;
        const size = parseInt(buf.toString("latin1", this.chunkPos, lineEnd), 16);
        if (size === 0) {
          // The last chunk, then (optional) trailers and an empty line: "0\r\n\r\n".
          const end = buf[lineEnd + 2] === 13 && buf[lineEnd + 3] === 10 ? lineEnd + 4 : buf.indexOf(CRLFCRLF, lineEnd) + 4;
          if (end < 4 || buf.length < end) return;
          return this.finish(this.status, this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks), end);
        }
        if (!(size > 0)) return this.destroy(new Error(`bad chunk size ${buf.toString("latin1", this.chunkPos, lineEnd)}`));
        if (buf.length < lineEnd + 2 + size + 2) return;
        this.chunks.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        this.chunkPos = lineEnd + 2 + size + 2;
      }
    }
  }

  private finish(status: number, body: Buffer, end: number): void {
    // Closed loop: nothing should follow the answer, but keep what did for the next one.
    this.buf = end >= this.buf.length ? EMPTY : this.buf.subarray(end);
    this.reset();
    const done = this.done;
    this.done = null;
    done?.({ status, body });
  }
}

const spec = workerData as LoadSpec;

async function main(): Promise<LoadResult> {
  let latencies: number[] = [];
  let statuses: Record<number, number> = {};
  let firstErrors: Record<number, string> = {};
  let slow: Array<[number, number]> = [];
  let origin = performance.now();
  const connections = Array.from({ length: spec.concurrency }, (_, c) => {
    const url = new URL(spec.bases[c % spec.bases.length]!);
    return new Connection(url.hostname, Number(url.port || 80));
  });
  // One sequence for warm-up and run: every request has its own Idempotency-Key and transaction id.
  let seq = spec.seqFrom ?? 0;
  let until = 0;
  const client = async (c: number) => {
    const conn = connections[c]!;
    const url = new URL(spec.bases[c % spec.bases.length]!);
    const head = spec.phase === "health" ? "" : `POST /v1/${spec.phase} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: keep-alive\r\nauthorization: Bearer ${spec.tokens[c % spec.tokens.length]}\r\ncontent-type: application/json\r\n`;
    const health = `GET /healthz HTTP/1.1\r\nHost: ${url.host}\r\nConnection: keep-alive\r\n\r\n`;
    while (Date.now() < until) {
      const i = ++seq;
      const member = spec.members[(i * 7919) % spec.members.length]!;
      const t0 = performance.now();
      let request: string;
      if (spec.phase === "health") {
        request = health;
      } else {
        const body = JSON.stringify(
          spec.phase === "earn"
            ? { member_id: member, partner_transaction_id: `e-${i}`, amount_minor: 12_345, currency: "EUR" }
            : { member_id: member, partner_transaction_id: `b-${i}`, points: 1, amount_minor: 10, currency: "EUR" },
        );
        request = `${head}idempotency-key: ${spec.phase}-${i}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      }
      const res = await conn.send(request);
      const took = performance.now() - t0;
      latencies.push(took);
      if (took > 40) slow.push([Math.round(t0 - origin), Math.round(took)]);
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      if ((res.status >= 300 || res.status === 0) && !(res.status in firstErrors)) firstErrors[res.status] = res.body.toString("utf8").slice(0, 300);
      // A failed connection: don't spin on a server that refuses them.
      if (res.status === 0) await new Promise((r) => setTimeout(r, 50));
    }
  };
  const watchdog = setTimeout(() => {
    for (const conn of connections) conn.destroy(new Error("no answer 10 s after the run's end"));
  }, (spec.warmupS + spec.durationS) * 1000 + 10_000);
  if (spec.warmupS > 0) {
    until = Date.now() + spec.warmupS * 1000;
    await Promise.all(Array.from({ length: spec.concurrency }, (_, c) => client(c)));
    latencies = [];
    statuses = {};
    firstErrors = {};
    slow = [];
  }
  const from = Date.now();
  parentPort!.postMessage("measuring");
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  until = Date.now() + spec.durationS * 1000;
  const started = performance.now();
  origin = started;
  await Promise.all(Array.from({ length: spec.concurrency }, (_, c) => client(c)));
  const seconds = (performance.now() - started) / 1000;
  loop.disable();
  const loopDelay: [number, number] = [loop.percentile(99) / 1e6, loop.max / 1e6];
  clearTimeout(watchdog);
  for (const conn of connections) conn.destroy();
  return { latencies, statuses, firstErrors, seconds, slow, loopDelay, window: [from, Date.now()] };
}

main().then(
  (r) => parentPort!.postMessage(r),
  (err: unknown) => {
    throw err;
  },
);
