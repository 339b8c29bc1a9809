import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { json } from "../../../test/http.ts";
import { bearer, partnerToken } from "../../../test/factories/auth.ts";
import { createPartner } from "../../../test/factories/network.ts";
import { expectRouteSecurity } from "../../../test/security.ts";
import { createNetworkMemberAccess } from "./cards.service.ts";
import { luhnValid } from "./luhn.ts";

let hub: TestHub;
let bank: string;
let shop: string;
let stranger: string;
let asBank: Call;
let asShop: Call;
let asStranger: Call;
let bankAuth: string;
type Call = (method: string, path: string, body?: unknown) => Promise<Response>;
const ALL = ["members:read", "members:write", "cards:write"];

beforeAll(async () => {
  hub = await startTestHub();
  bank = (await createPartner(hub.db, { kind: "bank", name: "Bank" })).id;
  shop = (await createPartner(hub.db, { name: "Shop" })).id;
  stranger = (await createPartner(hub.db, { name: "Stranger" })).id;
  const as = async (p: string): Promise<Call> => {
    const headers = { ...bearer(await partnerToken(hub, p, ALL)), "content-type": "application/json" };
    return (method, path, body) => hub.fetch(path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  };
  asBank = await as(bank);
  bankAuth = bearer(await partnerToken(hub, bank, ALL)).authorization!;
  asShop = await as(shop);
  asStranger = await as(stranger);
});
afterAll(() => hub.close());

async function member(ref: string): Promise<string> {
  const res = await asBank("POST", "/v1/members", { customer_ref: ref });
  return (await json(res)).member.id;
}

async function issue(memberId: string, form = "physical") {
  const res = await asBank("POST", `/v1/members/${memberId}/cards`, { form });
  expect(res.status).toBe(201);
  return json(res);
}

describe("issue and list", () => {
  it("issues a co-branded card with the programme prefix and a Luhn digit, showing the number once", async () => {
    const m = await member("B-1");
    const card = await issue(m);
    expect(card).toMatchObject({ member_id: m, partner_id: bank, form: "physical", status: "active", replaces_card_id: null });
    expect(card.number).toMatch(/^6390\d{12}$/);
    expect(luhnValid(card.number)).toBe(true);
    expect(card.last4).toBe(card.number.slice(-4));
    const events = await hub.db("events").where({ type: "card.issued" }).whereRaw("data->>'card_id' = ?", [card.id]);
    expect(JSON.stringify(events[0].data)).not.toContain(card.number);
    const list = await json(await asBank("GET", `/v1/members/${m}/cards`));
    expect(list.items).toHaveLength(1);
    expect(list.items[0].number).toBeUndefined();
  });

  it("refuses another partner's member, an unknown member, a bad form, an erased member", async () => {
    const m = await member("B-2");
    expect((await asStranger("POST", `/v1/members/${m}/cards`, { form: "virtual" })).status).toBe(404);
    expect((await asStranger("GET", `/v1/members/${m}/cards`)).status).toBe(404);
    expect((await asBank("POST", "/v1/members/mem_nope/cards", { form: "virtual" })).status).toBe(404);
    expect((await asBank("POST", `/v1/members/${m}/cards`, { form: "plastic" })).status).toBe(422);
    await asBank("POST", `/v1/members/${m}/erasure`, {});
    const erased = await asBank("POST", `/v1/members/${m}/cards`, { form: "virtual" });
    expect(erased.status).toBe(422);
    expect((await json(erased)).code).toBe("member-erased");
  });
});

describe("lookup by number", () => {
  it("finds the member at another partner (number in the body) and links them there", async () => {
    const m = await member("B-3");
    const card = await issue(m, "virtual");
    expect((await asShop("GET", `/v1/members/${m}`)).status).toBe(404);
    const res = await asShop("POST", "/v1/cards/lookup", { card_number: card.number });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ member_id: m, card: { id: card.id, status: "active" } });
    expect((await asShop("GET", `/v1/members/${m}`)).status).toBe(200);
  });

  it("refuses an unknown number, a malformed one, and a blocked card with a clear problem", async () => {
    expect((await json(await asShop("POST", "/v1/cards/lookup", { card_number: "6390000000000001" }))).code).toBe("card-not-found");
    expect((await asShop("POST", "/v1/cards/lookup", { card_number: "63-90" })).status).toBe(422);
    const m = await member("B-4");
    const card = await issue(m);
    await asBank("POST", `/v1/cards/${card.id}/status`, { status: "blocked", reason: "fraud check" });
    const res = await asShop("POST", "/v1/cards/lookup", { card_number: card.number });
    expect(res.status).toBe(422);
    expect(await json(res)).toMatchObject({ code: "card-blocked", card_status: "blocked" });
  });
});

describe("block, lose, replace", () => {
  it("blocks and unblocks; a lost card is replaced, the new one inherits the member and the old one stops at once", async () => {
    const m = await member("B-5");
    const old = await issue(m);
    const blocked = await asBank("POST", `/v1/cards/${old.id}/status`, { status: "blocked" });
    expect(await json(blocked)).toMatchObject({ status: "blocked" });
    expect(await json(await asBank("POST", `/v1/cards/${old.id}/status`, { status: "active" }))).toMatchObject({ status: "active" });
    expect(await json(await asBank("POST", `/v1/cards/${old.id}/status`, { status: "lost" }))).toMatchObject({ status: "lost" });

    const res = await asBank("POST", `/v1/cards/${old.id}/replace`, { form: "virtual" });
    expect(res.status).toBe(201);
    const { card, replaced_card } = await json(res);
    expect(card).toMatchObject({ member_id: m, partner_id: bank, form: "virtual", status: "active", replaces_card_id: old.id });
    expect(replaced_card).toMatchObject({ id: old.id, status: "replaced", replaced_by_card_id: card.id });
    expect(card.number).not.toBe(old.number);

    const lookOld = await asShop("POST", "/v1/cards/lookup", { card_number: old.number });
    expect(await json(lookOld)).toMatchObject({ status: 422, code: "card-replaced" });
    expect((await json(await asShop("POST", "/v1/cards/lookup", { card_number: card.number }))).member_id).toBe(m);
    // What earn and burn use refuses the old card as well.
    await expect(createNetworkMemberAccess({ clock: hub.clock }).resolve(hub.db, bank, { card_number: old.number })).rejects.toMatchObject({ code: "card-replaced" });
    // The body is optional: a replacement of the same form needs none.
    const again = await hub.fetch(`/v1/cards/${card.id}/replace`, { method: "POST", headers: { authorization: bankAuth } });
    expect(again.status).toBe(201);
    expect((await json(again)).card).toMatchObject({ form: "virtual", member_id: m });
  });

  it("refuses moves that do not exist, and other partners' cards", async () => {
    const m = await member("B-6");
    const c = await issue(m);
    await asBank("POST", `/v1/cards/${c.id}/status`, { status: "lost" });
    const back = await asBank("POST", `/v1/cards/${c.id}/status`, { status: "active" });
    expect(back.status).toBe(409);
    expect((await json(back)).code).toBe("invalid-card-transition");
    await asBank("POST", `/v1/cards/${c.id}/replace`, {});
    expect((await json(await asBank("POST", `/v1/cards/${c.id}/replace`, {}))).code).toBe("invalid-card-transition");
    expect((await asBank("POST", `/v1/cards/${c.id}/status`, { status: "replaced" })).status).toBe(422);
    expect((await asStranger("POST", `/v1/cards/${c.id}/status`, { status: "blocked" })).status).toBe(404);
    // A partner that knows the member, but is not the card's co-brand, may not block or replace it.
    const live = await issue(m, "virtual");
    await asShop("POST", "/v1/cards/lookup", { card_number: live.number });
    const notMine = await asShop("POST", `/v1/cards/${live.id}/status`, { status: "blocked" });
    expect(notMine.status).toBe(403);
    expect((await json(notMine)).code).toBe("not-card-issuer");
    expect((await json(await asShop("POST", `/v1/cards/${live.id}/replace`, {}))).code).toBe("not-card-issuer");
    expect((await json(await asShop("GET", `/v1/members/${m}/cards`))).items.map((x: { id: string }) => x.id)).toContain(live.id);
    expect((await asStranger("POST", `/v1/cards/${c.id}/replace`, {})).status).toBe(404);
    expect((await asBank("POST", "/v1/cards/crd_nope/replace", {})).status).toBe(404);
  });
});

describe("security", () => {
  let memberId: string;
  let cardId: string;
  beforeAll(async () => {
    memberId = await member("B-sec");
    cardId = (await issue(memberId)).id;
  });
  const routes: Array<[string, string, string, unknown?]> = [
    ["GET", "/v1/members/{m}/cards", "members:read"],
    ["POST", "/v1/members/{m}/cards", "cards:write", { form: "virtual" }],
    ["POST", "/v1/cards/lookup", "members:read", { card_number: "6390000000000001" }],
    ["POST", "/v1/cards/{c}/status", "cards:write", { status: "blocked" }],
    ["POST", "/v1/cards/{c}/replace", "cards:write", {}],
  ];
  it.each(routes)("%s %s needs a partner token with %s", async (method, path, scope, body) => {
    await expectRouteSecurity(hub, { method, path: path.replace("{m}", memberId).replace("{c}", cardId), body, scopes: [scope], audience: "partner", partnerId: bank });
  });
});
