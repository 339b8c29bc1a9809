import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Webhook } from "standardwebhooks";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { startReceiver, until, type Receiver } from "../../../test/webhook-receiver.ts";
import { createPartner } from "../../../test/factories/network.ts";
import { bearer, partnerToken } from "../../../test/factories/auth.ts";
import { json } from "../../../test/http.ts";

/** A partner's whole journey through the public API: register, enrol a member, hear about it twice. */
let t: TestHub;
let rx: Receiver;
beforeAll(async () => {
  t = await startTestHub({ config: { WEBHOOK_ALLOW_LOOPBACK: "true", OUTBOX_POLL_MS: "20" } });
  rx = await startReceiver();
});
afterAll(async () => {
  await t.close();
  await rx.close();
});

describe("a partner hears about what it did, by webhook and in the feed", () => {
  it("gets member.enrolled signed, with ids only, and finds the same event in GET /v1/events", async () => {
    const partnerId = (await createPartner(t.db, { name: "Bookshop" })).id;
    const headers = { ...bearer(await partnerToken(t, partnerId, ["members:write", "webhooks:manage", "events:read"])), "content-type": "application/json" };
    const created = await json(await t.fetch("/v1/webhook-endpoints", { method: "POST", headers, body: JSON.stringify({ url: rx.url, event_types: ["member.enrolled"] }) }));

    const enrol = await t.fetch("/v1/members", {
      method: "POST",
      headers,
      body: JSON.stringify({ customer_ref: "BK-1", email: "anna.berzina@example.com", email_verified: true, given_name: "Anna", phone: "+371 2000 0042" }),
    });
    expect(enrol.status).toBe(201);
    const memberId = (await json(enrol)).member.id as string;

    await until(() => rx.received.length === 1, { what: "the member.enrolled webhook" });
    const msg = rx.received[0]!;
    const payload = new Webhook(created.secret).verify(msg.body, {
      "webhook-id": String(msg.headers["webhook-id"]),
      "webhook-timestamp": String(msg.headers["webhook-timestamp"]),
      "webhook-signature": String(msg.headers["webhook-signature"]),
    }) as { type: string; data: Record<string, unknown> };
    expect(payload).toMatchObject({ type: "member.enrolled", data: { member_id: memberId } });
    expect(msg.body).not.toMatch(/anna|berzina|example\.com|2000 0042/i);

    // The feed shows it once every older transaction on the server has finished.
    const feed = await until(async () => {
      const page = await json(await t.fetch("/v1/events?type=member.enrolled", { headers }));
      return page.items.length > 0 ? page : undefined;
    });
    expect(feed.items).toEqual([{ id: msg.headers["webhook-id"], type: "member.enrolled", occurred_at: expect.any(String), data: payload.data }]);
  });
});
