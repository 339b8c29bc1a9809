import { describe, expect, it } from "vitest";
import { canonicalJson, requestHash } from "./idempotency.service.ts";

describe("the request fingerprint of an idempotency key", () => {
  it("ignores key order and absent fields, not values", () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}');
    expect(canonicalJson({ a: 1, b: undefined })).toBe('{"a":1}');
    const a = requestHash({ method: "post", path: "/v1/earn", body: { amount_minor: 100, currency: "EUR" } });
    expect(requestHash({ method: "POST", path: "/v1/earn", body: { currency: "EUR", amount_minor: 100 } })).toBe(a);
    expect(requestHash({ method: "POST", path: "/v1/earn", body: { currency: "EUR", amount_minor: 101 } })).not.toBe(a);
    expect(requestHash({ method: "POST", path: "/v1/earn?dry_run=true", body: { currency: "EUR", amount_minor: 100 } })).not.toBe(a);
    expect(requestHash({ method: "POST", path: "/v1/burn", body: { currency: "EUR", amount_minor: 100 } })).not.toBe(a);
  });
});
