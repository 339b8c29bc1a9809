import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { applicant, PortalClient } from "../../../test/portal.ts";
import { createPartnersService } from "../../../gateway/src/partners/partners.service.ts";
import { createPortalUsers, type PortalUser } from "../users/users.service.ts";
import { createCardsService } from "../../../gateway/src/cards/cards.service.ts";
import { ledgerScenario } from "../../../test/factories/ledger.ts";

let t: TestHub;
const staff = { type: "system", id: "test" } as const;

beforeAll(async () => {
  t = await startTestHub({ workers: false });
  const partners = createPartnersService(t.deps);
  for (const code of ["grocery", "fuel"]) await partners.createSector(staff, { code, name: code });
});
afterAll(async () => t?.close());

async function developer(over: Record<string, string> = {}): Promise<{ c: PortalClient; user: PortalUser; form: ReturnType<typeof applicant> }> {
  const form = applicant(over);
  const c = new PortalClient(t.url);
  const res = await c.submit("/portal/signup", "/portal/signup", form);
  expect(res.status).toBe(303);
  const user = (await createPortalUsers(t.deps).findByEmail(form.email))!;
  return { c, user, form };
}

const SECRET = /<code class="secret" id="shown-secret">([^<]+)<\/code>/;

async function createClient(c: PortalClient, env: "sandbox" | "live", scopes = ["members:read", "earn:write", "burn:write"]) {
  const res = await c.submit("/portal/dev/credentials", "/portal/dev/credentials", { environment: env, name: `${env} test`, scopes, auth_method: "client_secret_basic", jwks: "" });
  const secret = SECRET.exec(res.text)?.[1];
  const clientId = /Client (cli_[a-z0-9_]+) created/.exec(res.text)?.[1];
  return { res, secret, clientId };
}

async function token(clientId: string, secret: string): Promise<{ status: number; access_token?: string }> {
  const res = await t.fetch("/oauth/token", { method: "POST", headers: { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString("base64")}`, "content-type": "application/x-www-form-urlencoded" }, body: "grant_type=client_credentials" });
  return { status: res.status, ...((await res.json()) as { access_token?: string }) };
}

async function earn(accessToken: string, body: Record<string, unknown>) {
  const res = await t.fetch("/v1/earn", { method: "POST", headers: { authorization: `Bearer ${accessToken}`, "content-type": "application/json", "idempotency-key": randomUUID() }, body: JSON.stringify({ partner_transaction_id: randomUUID(), amount_minor: 12_345, currency: "EUR", ...body }) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function sandboxCards(user: PortalUser): Promise<string[]> {
  return (await t.db("portal_sandbox_members").where({ partner_id: user.sandbox_partner_id }).select("card_number")).map((r: { card_number: string }) => r.card_number);
}

describe("credentials and the sandbox", () => {
  it("gives a sandbox at once: an active sandbox partner with test members; a sandbox client's token earns on a test card", async () => {
    const { c, user } = await developer();
    expect(user.sandbox_partner_id).toMatch(/^ptn_/);
    const sandbox = await t.db("partners").where({ id: user.sandbox_partner_id }).first("status", "sandbox", "sector");
    expect(sandbox).toMatchObject({ status: "active", sandbox: true, sector: "grocery" });
    const page = await c.get("/portal/dev/credentials");
    expect(page.text).toContain("Test members");
    expect(page.text).toContain("Live credentials come when the operator approves");

    const { res, secret, clientId } = await createClient(c, "sandbox");
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(clientId).toMatch(/^cli_test_/);
    expect(secret).toMatch(/^hcs_sandbox_/);
    // The secret is shown once: the credentials page never shows it again.
    expect((await c.get("/portal/dev/credentials")).text).not.toContain(secret!);

    const tok = await token(clientId!, secret!);
    expect(tok.status).toBe(200);
    await new Promise((r) => setTimeout(r, 1_100)); // the sandbox contract starts a second after sign-up
    const [card] = await sandboxCards(user);
    const e = await earn(tok.access_token!, { card_number: card });
    expect(e.status).toBe(201);
    expect(e.body.points_earned).toBe(12);
  });

  it("keeps the sandbox apart: a sandbox token cannot earn on a live card, nor a live token on a sandbox card (404)", async () => {
    const { c, user } = await developer();
    const live = await ledgerScenario(t);
    const liveCard = (await createCardsService(t.deps).issue(live.partner.id, live.member.id, { form: "virtual" })) as { number: string };
    const sandboxClient = await createClient(c, "sandbox");
    const sandboxToken = (await token(sandboxClient.clientId!, sandboxClient.secret!)).access_token!;
    await new Promise((r) => setTimeout(r, 1_100));
    const [sandboxCard] = await sandboxCards(user);

    // In the coalition any partner earns on any member's card; across networks there is no member.
    expect((await earn(sandboxToken, { card_number: liveCard.number })).body).toMatchObject({ status: 404, code: "member-not-found" });
    expect((await earn(live.token, { card_number: sandboxCard })).body).toMatchObject({ status: 404, code: "member-not-found" });
    // Within each network the same call works.
    expect((await earn(live.token, { card_number: liveCard.number })).status).toBe(201);
    expect((await earn(sandboxToken, { card_number: sandboxCard })).status).toBe(201);
  });

  it("never lets a sandbox partner stand in the way of a live admission (non-compete counts live partners only)", async () => {
    const first = await developer({ sector: "fuel" });
    const second = await developer({ sector: "fuel" });
    // Two sandbox partners are active in fuel already; the first live admission needs no override.
    const partners = createPartnersService(t.deps);
    await expect(partners.changeStatus(staff, first.user.partner_id!, { status: "approved" })).resolves.toMatchObject({ status: "approved" });
    // The second live one is refused, naming the first — and only it.
    const refusal = await partners.changeStatus(staff, second.user.partner_id!, { status: "approved" }).catch((e: { extensions: { conflicting_partners: Array<{ id: string }> } }) => e);
    expect((refusal as { extensions: { conflicting_partners: Array<{ id: string }> } }).extensions.conflicting_partners.map((p) => p.id)).toEqual([first.user.partner_id]);
    // The live list leaves sandbox partners out.
    const listed = await partners.listPartners({ sector: "fuel" });
    expect(listed.map((p) => p.id).sort()).toEqual([first.user.partner_id, second.user.partner_id].sort());
  });

  it("creates live clients only once approved; rotates with overlap; revokes (the token fails at once)", async () => {
    const { c, user } = await developer();
    const refused = await createClient(c, "live");
    expect(refused.clientId).toBeUndefined();
    expect((await c.get("/portal/dev/credentials")).text).toContain("Live credentials come when");
    expect(Number((await t.db("oauth_clients").where({ partner_id: user.partner_id }).count("* as count"))[0]!.count)).toBe(0);

    await createPartnersService(t.deps).changeStatus(staff, user.partner_id!, { status: "approved", override: { reason: "test" } });
    const live = await createClient(c, "live", ["members:read", "earn:write"]);
    expect(live.clientId).toMatch(/^cli_[0-9a-z]{26}$/);
    expect(live.secret).toMatch(/^hcs_live_/);
    const first = await token(live.clientId!, live.secret!);
    expect(first.status).toBe(200);

    await c.get("/portal/dev/credentials");
    const rotated = await c.request("POST", `/portal/dev/credentials/${live.clientId}/rotate`, { form: { overlap_seconds: "0" } });
    const newSecret = SECRET.exec(rotated.text)?.[1];
    expect(newSecret).toMatch(/^hcs_live_/);
    expect(newSecret).not.toBe(live.secret);
    expect((await token(live.clientId!, live.secret!)).status).toBe(401);
    const second = await token(live.clientId!, newSecret!);
    expect(second.status).toBe(200);

    await c.request("POST", `/portal/dev/credentials/${live.clientId}/status`, { form: { status: "disabled" } });
    const call = await t.fetch("/v1/events", { headers: { authorization: `Bearer ${second.access_token}` } });
    expect(call.status).toBe(401);
    expect((await c.get("/portal/dev/credentials")).text).toContain("revoked");
  });

  it("registers a public JWKS and refuses a private one", async () => {
    const { c } = await developer();
    const { clientId } = await createClient(c, "sandbox");
    const pub = { keys: [{ kty: "EC", crv: "P-256", x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", kid: "k1" }] };
    await c.get("/portal/dev/credentials");
    await c.request("POST", `/portal/dev/credentials/${clientId}/jwks`, { form: { jwks: JSON.stringify(pub) } });
    expect((await c.get("/portal/dev/credentials")).text).toContain("JWKS saved");
    const priv = { keys: [{ ...pub.keys[0], d: "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI" }] };
    await c.request("POST", `/portal/dev/credentials/${clientId}/jwks`, { form: { jwks: JSON.stringify(priv) } });
    expect((await c.get("/portal/dev/credentials")).text).toContain("public keys only");
  });

  it("answers 404 for another partner's client, and changes nothing", async () => {
    const a = await developer();
    const b = await developer();
    const { clientId } = await createClient(a.c, "sandbox");
    await b.c.get("/portal/dev/credentials");
    for (const [path, form] of [
      ["rotate", { overlap_seconds: "0" }],
      ["status", { status: "disabled" }],
      ["jwks", { jwks: "{}" }],
    ] as const) {
      const res = await b.c.request("POST", `/portal/dev/credentials/${clientId}/${path}`, { form });
      expect(res.status, path).toBe(404);
    }
    expect(await t.db("oauth_clients").where({ id: clientId }).first("status")).toEqual({ status: "active" });
  });
});
