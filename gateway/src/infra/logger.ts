import { pino, type Logger } from "pino";

export type { Logger };

/**
 * Structured JSON logs. Secrets and personal data never reach a log line: the paths below are
 * redacted wherever they appear, and request bodies are not logged at all.
 */
export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { service: "loyalty-hub", ...base },
    redact: {
      paths: [
        "req.headers.authorization",
        "req.headers.cookie",
        "req.headers.dpop",
        'res.headers["set-cookie"]',
        "*.client_secret",
        "*.password",
        "*.privateKey",
        "*.private_jwk",
      ],
      censor: "[redacted]",
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
