import { describe, expect, it } from "vitest";
import { Webhook } from "standardwebhooks";
import { generateSecret, sign, signatureHeader } from "./signing.ts";

describe("Standard Webhooks signing", () => {
  it("matches the specification's published example", () => {
    // The example from the Standard Webhooks specification (and its reference libraries' tests).
    const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const body = '{"test": 2432232314}';
    expect(sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)).toBe("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  });

  it("is verified by the reference library, with either secret during a rotation", () => {
    const oldSecret = generateSecret();
    const newSecret = generateSecret();
    const ts = Math.floor(Date.now() / 1000);
    const body = JSON.stringify({ type: "earn.posted", timestamp: new Date().toISOString(), data: { earn_id: "ern_1" } });
    const header = signatureHeader([newSecret, oldSecret], "evt_1", ts, body);
    expect(header.split(" ")).toHaveLength(2);
    const headers = { "webhook-id": "evt_1", "webhook-timestamp": String(ts), "webhook-signature": header };
    for (const s of [oldSecret, newSecret]) expect(new Webhook(s).verify(body, headers)).toEqual(JSON.parse(body));
    expect(() => new Webhook(generateSecret()).verify(body, headers)).toThrow();
    expect(() => new Webhook(newSecret).verify(body.replace("ern_1", "ern_2"), headers)).toThrow();
  });

  it("generates secrets of 32 random bytes", () => {
    const s = generateSecret();
    expect(s).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(s.slice(6), "base64")).toHaveLength(32);
    expect(generateSecret()).not.toBe(s);
  });
});
