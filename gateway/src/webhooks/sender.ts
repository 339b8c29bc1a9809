import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import type { VettedDestination } from "./ssrf.ts";

export type AttemptOutcome = "delivered" | "gone" | "http-error" | "redirect" | "timeout" | "connection-error" | "refused";

export interface AttemptResult {
  outcome: AttemptOutcome;
  httpStatus: number | null;
  latencyMs: number;
  /** The start of the response body, for the delivery log. */
  excerpt: string | null;
  error: string | null;
  /** What a 429 or 503 asked for in Retry-After, in ms; null when absent or unreadable. */
  retryAfterMs?: number | null;
}

/** Retry-After: delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | null {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

export const EXCERPT_BYTES = 1024;

/** 2xx delivered; 410 gone; a 3xx is a failure (redirects are never followed); anything else an error. */
export function outcomeOf(status: number): AttemptOutcome {
  if (status >= 200 && status < 300) return "delivered";
  if (status === 410) return "gone";
  if (status >= 300 && status < 400) return "redirect";
  return "http-error";
}

/**
 * POSTs one signed message to a vetted destination. The connection goes to the vetted address (the
 * `lookup` below answers with it) while TLS still checks the certificate against the URL's host
 * name. Redirects are not followed; the whole exchange has one deadline; only the first
 * EXCERPT_BYTES of the answer are read.
 */
export function postWebhook(dest: VettedDestination, headers: Record<string, string>, body: string, timeoutMs: number): Promise<AttemptResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const pinned: LookupFunction = (_hostname, options, callback) => {
    const { address, family } = dest.address;
    if (options.all) (callback as unknown as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [{ address, family }]);
    else callback(null, address, family);
  };
  const client = dest.url.protocol === "https:" ? https : http;
  return new Promise<AttemptResult>((resolve) => {
    let settled = false;
    const finish = (r: Omit<AttemptResult, "latencyMs">) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...r, latencyMs: elapsed() });
    };
    const req = client.request(
      dest.url,
      {
        method: "POST",
        lookup: pinned,
        agent: false,
        headers: { ...headers, "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let size = 0;
        const done = () => {
          const excerpt = Buffer.concat(chunks).subarray(0, EXCERPT_BYTES).toString("utf8");
          const retryAfterMs = status === 429 || status === 503 ? parseRetryAfter(res.headers["retry-after"]) : null;
          finish({ outcome: outcomeOf(status), httpStatus: status, excerpt: excerpt || null, error: null, retryAfterMs });
          res.destroy();
        };
        res.on("data", (c: Buffer) => {
          chunks.push(c);
          size += c.length;
          if (size >= EXCERPT_BYTES) done();
        });
        res.on("end", done);
        res.on("error", done);
      },
    );
    const timer = setTimeout(() => {
      finish({ outcome: "timeout", httpStatus: null, excerpt: null, error: `no answer within ${timeoutMs} ms` });
      req.destroy();
    }, timeoutMs);
    req.on("error", (err: NodeJS.ErrnoException) => {
      finish({ outcome: "connection-error", httpStatus: null, excerpt: null, error: (err.code ? `${err.code}: ` : "") + err.message.slice(0, 300) });
    });
    req.end(body);
  });
}
