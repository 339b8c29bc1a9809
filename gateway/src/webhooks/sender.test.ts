import { describe, expect, it } from "vitest";
import { outcomeOf, parseRetryAfter } from "./sender.ts";

describe("reading a receiver's answer", () => {
  it("classifies statuses: 2xx delivered, 410 gone, 3xx a refused redirect, anything else an error", () => {
    expect([200, 201, 204, 299].map(outcomeOf)).toEqual(["delivered", "delivered", "delivered", "delivered"]);
    expect(outcomeOf(410)).toBe("gone");
    expect([301, 302, 307, 308].map(outcomeOf)).toEqual(["redirect", "redirect", "redirect", "redirect"]);
    expect([400, 401, 404, 409, 429, 500, 502, 503].map(outcomeOf).every((o) => o === "http-error")).toBe(true);
  });

  it("reads Retry-After as seconds or as a date", () => {
    const now = Date.parse("2026-11-22T08:00:00Z");
    expect(parseRetryAfter("120", now)).toBe(120_000);
    expect(parseRetryAfter("Sun, 22 Nov 2026 08:05:00 GMT", now)).toBe(300_000);
    expect(parseRetryAfter("Sun, 22 Nov 2026 07:00:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeNull();
    expect(parseRetryAfter(undefined, now)).toBeNull();
  });
});
