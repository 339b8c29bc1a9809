import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { generateSecret, signatureHeader } from "./signing.ts";

type Verify = (secrets: string | string[], body: string | Buffer, headers: Record<string, string>, now?: number) => Record<string, unknown>;

/** The verification code partners paste from docs/webhooks.md, loaded exactly as written there. */
async function loadDocsVerifier(): Promise<Verify> {
  const md = fs.readFileSync(path.resolve(import.meta.dirname, "../../../docs/webhooks.md"), "utf8");
  const block = /```js\n(\/\/ verify-webhook\.js[\s\S]*?)```/.exec(md)?.[1];
  if (!block) throw new Error("docs/webhooks.md lost its verify-webhook.js block");
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "verify-")), "verify-webhook.mjs");
  fs.writeFileSync(file, block);
  return ((await import(pathToFileURL(file).href)) as { verifyWebhook: Verify }).verifyWebhook;
}

describe("the verification code in docs/webhooks.md", () => {
  it("accepts the hub's messages, with either secret during a rotation, and rejects forgeries", async () => {
    const verify = await loadDocsVerifier();
    const [oldS, newS] = [generateSecret(), generateSecret()];
    const now = Math.floor(Date.now() / 1000);
    const body = JSON.stringify({ type: "earn.posted", timestamp: new Date().toISOString(), data: { earn_id: "ern_1", points: 5 } });
    const headers = { "webhook-id": "evt_1", "webhook-timestamp": String(now), "webhook-signature": signatureHeader([newS, oldS], "evt_1", now, body) };
    expect(verify(newS, body, headers)).toMatchObject({ id: "evt_1", type: "earn.posted", data: { earn_id: "ern_1", points: 5 } });
    expect(verify(oldS, Buffer.from(body), headers)).toMatchObject({ id: "evt_1" });
    expect(verify([generateSecret(), newS], body, headers)).toMatchObject({ id: "evt_1" });
    expect(() => verify(generateSecret(), body, headers)).toThrow(/signature/);
    expect(() => verify(newS, body.replace("5", "6"), headers)).toThrow(/signature/);
    expect(() => verify(newS, body, { ...headers, "webhook-id": "evt_2" })).toThrow(/signature/);
    expect(() => verify(newS, body, headers, now + 600)).toThrow(/timestamp/);
    expect(() => verify(newS, body, { ...headers, "webhook-signature": "v2,abc" })).toThrow(/signature/);
    const { "webhook-id": _drop, ...noId } = headers;
    expect(() => verify(newS, body, noId)).toThrow(/missing/);
  });
});
