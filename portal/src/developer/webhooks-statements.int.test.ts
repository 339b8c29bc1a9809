import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { applicant, PortalClient } from "../../../test/portal.ts";
import { createPartnersService } from "../../../gateway/src/partners/partners.service.ts";
import { createLogger } from "../../../gateway/src/infra/logger.ts";
import { logCall } from "../../../test/request-log.ts";
import { createRequestLog } from "../request-log/request-log.ts";
import { createPortalUsers } from "../users/users.service.ts";

let t: TestHub;

beforeAll(async () => {
  t = await startTestHub({ workers: false, config: { WEBHOOK_ALLOW_LOOPBACK: "true" } });
  await createPartnersService(t.deps).createSector({ type: "system", id: "test" }, { code: "grocery", name: "Grocery" });
});
afterAll(async () => t?.close());

async function developer() {
  const c = new PortalClient(t.url);
  expect((await c.submit("/portal/signup", "/portal/signup", applicant())).status).toBe(303);
  return c;
}

describe("webhooks, requests and statements pages", () => {
  it("adds a sandbox endpoint (secret shown once), and another partner's endpoint is 404", async () => {
    const a = await developer();
    const b = await developer();
    const res = await a.submit("/portal/dev/webhooks?env=sandbox", "/portal/dev/webhooks", { env: "sandbox", url: "http://127.0.0.1:9/loyalty-hook", description: "", event_types: ["earn.posted"] });
    expect(res.status).toBe(200);
    expect(res.text).toMatch(/<code class="secret" id="shown-secret">whsec_/);
    const id = /Endpoint (whe_[0-9a-z]+) added/.exec(res.text)![1]!;
    expect((await a.get(`/portal/dev/webhooks/${id}?env=sandbox`)).status).toBe(200);
    expect((await b.get(`/portal/dev/webhooks/${id}?env=sandbox`)).status).toBe(404);
    await b.get("/portal/dev/webhooks");
    expect((await b.request("POST", `/portal/dev/webhooks/${id}/rotate`, { form: { env: "sandbox" } })).status).toBe(404);
    expect((await b.request("POST", `/portal/dev/webhooks/${id}/delete`, { form: { env: "sandbox" } })).status).toBe(404);
    expect((await a.get("/portal/dev/webhooks?env=sandbox")).text).toContain("127.0.0.1:9/loyalty-hook");
  });

  it("lists statements (none yet) and answers 404 for a statement that is not the partner's", async () => {
    const a = await developer();
    const list = await a.get("/portal/dev/statements");
    expect(list.status).toBe(200);
    expect(list.text).toContain("No closed statement yet");
    expect((await a.get("/portal/dev/statements/stm_00000000000000000000000000")).status).toBe(404);
    expect((await a.get("/portal/dev/statements/stm_00000000000000000000000000/lines.csv")).status).toBe(404);
  });

  it("shows the latest 200 of the calls kept, and the failed ones among them", async () => {
    const c = new PortalClient(t.url);
    const form = applicant();
    expect((await c.submit("/portal/signup", "/portal/signup", form)).status).toBe(303);
    const partnerId = (await createPortalUsers(t.deps).findByEmail(form.email))!.sandbox_partner_id!;
    // Another API process's log, writing the same tables.
    const log = createRequestLog({ db: t.db, clock: t.clock, log: createLogger("silent"), flushMs: 60_000 });
    for (let i = 1; i <= 260; i++) logCall(log, partnerId, `rq-${i}`, i % 50 === 0 ? 500 : 201);
    await log.close();
    const shown = async (path: string) => [...(await c.get(path)).text.matchAll(/<code>(rq-\d+)<\/code>/g)].map((m) => m[1]);
    const all = await shown("/portal/dev/requests?env=sandbox");
    expect([all.length, all[0], all[199]]).toEqual([200, "rq-260", "rq-61"]);
    expect(await shown("/portal/dev/requests?env=sandbox&status=errors")).toEqual(["rq-250", "rq-200", "rq-150", "rq-100", "rq-50"]);
  });

  it("shows a partner's API calls in its request log (written off the hot path) and usage charts", async () => {
    const a = await developer();
    await a.get("/portal/dev/credentials");
    const created = await a.request("POST", "/portal/dev/credentials", { form: { environment: "sandbox", name: "t", scopes: ["events:read"], auth_method: "client_secret_basic", jwks: "" } });
    const secret = /id="shown-secret">([^<]+)</.exec(created.text)![1]!;
    const clientId = /Client (cli_test_[0-9a-z]+) created/.exec(created.text)![1]!;
    const tok = await t.fetch("/oauth/token", { method: "POST", headers: { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString("base64")}`, "content-type": "application/x-www-form-urlencoded" }, body: "grant_type=client_credentials" });
    const { access_token } = (await tok.json()) as { access_token: string };
    const rid = `req-${randomUUID()}`;
    expect((await t.fetch("/v1/events", { headers: { authorization: `Bearer ${access_token}`, "x-request-id": rid } })).status).toBe(200);
    let text = "";
    for (let i = 0; i < 40 && !text.includes(rid); i++) {
      await new Promise((r) => setTimeout(r, 250));
      text = (await a.get("/portal/dev/requests?env=sandbox")).text;
    }
    expect(text).toContain(rid);
    expect(text).toContain("/v1/events");
    const usage = await a.get("/portal/dev/usage?env=sandbox");
    expect(usage.status).toBe(200);
    expect(usage.text.match(/<svg class="chart"/g)?.length).toBe(2);
    // The axes step in whole calls and points: no tick repeats or rounds (a max of 1 once read 0, 1, 1).
    const ticks = [...usage.text.matchAll(/dominant-baseline="middle">([^<]+)</g)].map((m) => m[1]!);
    expect(ticks.length).toBeGreaterThanOrEqual(4);
    expect(ticks.every((t) => /^[0-9,]+$/.test(t))).toBe(true);
    expect(usage.text).toContain("<summary>The figures</summary>");
    // Another developer sees none of it.
    const b = await developer();
    expect((await b.get("/portal/dev/requests?env=sandbox")).text).not.toContain(rid);
  });
});
