import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { applicant, PortalClient } from "../../../test/portal.ts";
import { operatorClient } from "../../../test/console.ts";
import { createSector } from "../../../test/factories/network.ts";
import { createPortalUsers } from "../users/users.service.ts";

let t: TestHub;

beforeAll(async () => {
  t = await startTestHub({ workers: false });
  await createSector(t.db, "grocery");
});
afterAll(async () => t?.close());

async function developer(over: Record<string, string> = {}) {
  const c = new PortalClient(t.url);
  const form = applicant(over);
  expect((await c.submit("/portal/signup", "/portal/signup", form)).status).toBe(303);
  const user = (await createPortalUsers(t.deps).findByEmail(form.email))!;
  const feed = await t.db("portal_sandbox_feeds").where({ sandbox_partner_id: user.sandbox_partner_id }).first();
  const cards: Array<{ member_id: string; card_token: string }> = await t.db("portal_sandbox_payment_cards").where({ sandbox_partner_id: user.sandbox_partner_id }).orderBy("member_id");
  return { c, user, feed, cards };
}

const pointsOf = async (memberId: string) =>
  Number(((await t.db("ledger_accounts").where({ member_id: memberId, kind: "member_points" }).first("balance")) as { balance: bigint } | undefined)?.balance ?? 0);
const purchaseOf = (bank: string, ref: string) => t.db("card_purchases").where({ bank_partner_id: bank, purchase_ref: ref }).first();
const lastRef = (location: string | null) => decodeURIComponent(/#purchase-(.+)$/.exec(location ?? "")![1]!);

describe("the sandbox's test bank feed", () => {
  it("is set up at sign-up between sandbox partners only: a test bank, a payment card per test member, a MID of the sandbox merchant", async () => {
    const { c, user, feed, cards } = await developer();
    expect(feed).toMatchObject({ merchant_partner_id: user.sandbox_partner_id });
    const partners = await t.db("partners").whereIn("id", [feed.bank_partner_id, feed.merchant_partner_id]).select("id", "kind", "sandbox", "status");
    expect(partners.map((p) => [p.kind, p.sandbox, p.status]).sort()).toEqual([
      ["bank", true, "active"],
      ["merchant", true, "active"],
    ]);
    expect(cards).toHaveLength(3);
    const members = await t.db("members").whereIn("id", cards.map((x) => x.member_id)).select("sandbox");
    expect(members.every((m) => m.sandbox === true)).toBe(true);
    expect(await t.db("partner_locations").where({ partner_id: user.sandbox_partner_id, mid: feed.mid }).first()).toBeTruthy();
    const page = await c.get("/portal/dev/test-bank");
    expect(page.status).toBe(200);
    expect(page.text).toContain("<caption>Test cards</caption>");
    expect(page.text).toContain("400000••••••0001");
    expect(page.text).toContain('<a href="/portal/dev/test-bank" aria-current="page">Test bank</a>');
  });

  it("sends an auth (points pending), its clearing (points booked), a partial refund (points taken back) through the card-transactions ingest", async () => {
    const { c, feed, cards } = await developer();
    await new Promise((r) => setTimeout(r, 1_100)); // the sandbox contract starts a second after sign-up
    const member = cards[0]!.member_id;
    const auth = await c.submit("/portal/dev/test-bank", "/portal/dev/test-bank/events", { member_id: member, type: "auth", amount: "123.45" });
    expect(auth.status).toBe(303);
    const ref = lastRef(auth.location);
    // Stored by the banking feature as the bank's purchase, matched to the sandbox merchant by MID.
    expect(await purchaseOf(feed.bank_partner_id, ref)).toMatchObject({ status: "authorized", partner_id: feed.merchant_partner_id, match_method: "mid", member_id: member, pending_points: 12n, booked_points: 0n });
    const stored = await purchaseOf(feed.bank_partner_id, ref);
    expect(await t.db("card_events").where({ purchase_id: stored.id }).select("type", "amount_minor", "bank_partner_id")).toEqual([{ type: "auth", amount_minor: 12_345n, bank_partner_id: feed.bank_partner_id }]);
    expect(await pointsOf(member)).toBe(0);
    let page = await c.get("/portal/dev/test-bank");
    expect(page.text).toContain(`id="purchase-${ref}"`);
    expect(page.text).toMatch(/data-figure="pending">12 points/);
    // The merchant it matched, by name and how (not a bare partner id and the code "mid").
    expect(page.text).toContain(`<dt>Matched</dt><dd>${feed.merchant_name} <code>${feed.merchant_partner_id}</code> by its MID</dd>`);

    expect((await c.submit("/portal/dev/test-bank", "/portal/dev/test-bank/events", { purchase: ref, type: "clearing", amount: "123.45" })).status).toBe(303);
    expect(await purchaseOf(feed.bank_partner_id, ref)).toMatchObject({ status: "cleared", pending_points: 0n, booked_points: 12n });
    expect(await pointsOf(member)).toBe(12);
    page = await c.get("/portal/dev/test-bank");
    expect(page.text).toMatch(/data-figure="booked">12 points/);
    expect(page.text).toContain(`data-figure="points-${member}">12<`);

    // A refund of 23.45 keeps floor(12 × 100.00 ÷ 123.45) = 9 points.
    expect((await c.submit("/portal/dev/test-bank", "/portal/dev/test-bank/events", { purchase: ref, type: "refund", amount: "23.45" })).status).toBe(303);
    expect(await purchaseOf(feed.bank_partner_id, ref)).toMatchObject({ status: "cleared", refunded_minor: 2_345n, booked_points: 9n });
    expect(await pointsOf(member)).toBe(9);

    // An auth reversed: nothing pending, nothing booked.
    const second = await c.submit("/portal/dev/test-bank", "/portal/dev/test-bank/events", { member_id: cards[1]!.member_id, type: "auth", amount: "50.00" });
    const ref2 = lastRef(second.location);
    expect((await purchaseOf(feed.bank_partner_id, ref2)).pending_points).toBe(5n);
    expect((await c.submit("/portal/dev/test-bank", "/portal/dev/test-bank/events", { purchase: ref2, type: "reversal", amount: "50.00" })).status).toBe(303);
    expect(await purchaseOf(feed.bank_partner_id, ref2)).toMatchObject({ status: "reversed", pending_points: 0n, booked_points: 0n });
    expect(await pointsOf(cards[1]!.member_id)).toBe(0);

    // Everything it wrote is in the sandbox network: every ledger entry is a sandbox partner's or member's.
    const leaks = await t.db("ledger_entries as e").leftJoin("partners as p", "p.id", "e.partner_id").leftJoin("members as m", "m.id", "e.member_id").where((q) => q.where("p.sandbox", false).orWhere("m.sandbox", false)).whereIn("e.member_id", cards.map((x) => x.member_id)).count("* as n").first();
    expect(Number(leaks!.n)).toBe(0);
  });

  it("works for a bank developer too: its own sandbox bank sends, a test shop earns", async () => {
    const { c, user, feed, cards } = await developer({ kind: "bank" });
    expect(feed.bank_partner_id).toBe(user.sandbox_partner_id);
    const shop = await t.db("partners").where({ id: feed.merchant_partner_id }).first("kind", "sandbox");
    expect(shop).toMatchObject({ kind: "merchant", sandbox: true });
    await new Promise((r) => setTimeout(r, 1_100));
    const res = await c.submit("/portal/dev/test-bank", "/portal/dev/test-bank/events", { member_id: cards[0]!.member_id, type: "clearing", amount: "80.00" });
    expect(res.status).toBe(303);
    expect(await purchaseOf(feed.bank_partner_id, lastRef(res.location))).toMatchObject({ status: "cleared", partner_id: feed.merchant_partner_id, booked_points: 8n });
    expect(await pointsOf(cards[0]!.member_id)).toBe(8);
  });

  it("refuses a bad amount or type (422), a post without CSRF (403), another developer's purchase or card (404), and operators (404)", async () => {
    const a = await developer();
    const b = await developer();
    await new Promise((r) => setTimeout(r, 1_100));
    const mine = await a.c.submit("/portal/dev/test-bank", "/portal/dev/test-bank/events", { member_id: a.cards[0]!.member_id, type: "auth", amount: "10.00" });
    const ref = lastRef(mine.location);
    const before = Number((await t.db("card_events").count("* as n").first())!.n);
    expect((await a.c.submit("/portal/dev/test-bank", "/portal/dev/test-bank/events", { member_id: a.cards[0]!.member_id, type: "auth", amount: "1.234" })).status).toBe(422);
    expect((await a.c.submit("/portal/dev/test-bank", "/portal/dev/test-bank/events", { member_id: a.cards[0]!.member_id, type: "auth", amount: "-5" })).status).toBe(422);
    expect((await a.c.submit("/portal/dev/test-bank", "/portal/dev/test-bank/events", { member_id: a.cards[0]!.member_id, type: "chargeback", amount: "5" })).status).toBe(422);
    expect((await a.c.request("POST", "/portal/dev/test-bank/events", { form: { member_id: a.cards[0]!.member_id, type: "auth", amount: "5" }, csrf: false })).status).toBe(403);
    // B cannot continue A's purchase nor use A's card: not found, as if it did not exist.
    expect((await b.c.submit("/portal/dev/test-bank", "/portal/dev/test-bank/events", { purchase: ref, type: "clearing", amount: "10.00" })).status).toBe(404);
    expect((await b.c.submit("/portal/dev/test-bank", "/portal/dev/test-bank/events", { member_id: a.cards[0]!.member_id, type: "auth", amount: "10.00" })).status).toBe(404);
    expect(Number((await t.db("card_events").count("* as n").first())!.n)).toBe(before);
    expect((await b.c.get("/portal/dev/test-bank")).text).not.toContain(ref);
    const op = (await operatorClient(t)).client;
    expect((await op.get("/portal/dev/test-bank")).status).toBe(404);
  });

  it("sets the feed up from the page for a sandbox made before it existed, once", async () => {
    const { c, user } = await developer();
    // As a sandbox provisioned before the feed (or a set-up that failed after adding the store): no feed rows.
    await t.db("portal_sandbox_payment_cards").where({ sandbox_partner_id: user.sandbox_partner_id }).delete();
    await t.db("portal_sandbox_feeds").where({ sandbox_partner_id: user.sandbox_partner_id }).delete();
    await t.db("payment_cards").whereIn("member_id", t.db("portal_sandbox_members").where({ partner_id: user.sandbox_partner_id }).select("member_id")).update({ status: "unlinked" });
    const page = await c.get("/portal/dev/test-bank");
    expect(page.text).toContain("Set up the test bank feed");
    const [one, two] = await Promise.all([c.request("POST", "/portal/dev/test-bank/setup", { form: {} }), c.request("POST", "/portal/dev/test-bank/setup", { form: {} })]);
    expect([one.status, two.status]).toEqual([303, 303]);
    const feeds = await t.db("portal_sandbox_feeds").where({ sandbox_partner_id: user.sandbox_partner_id });
    expect(feeds).toHaveLength(1);
    expect(await t.db("portal_sandbox_payment_cards").where({ sandbox_partner_id: user.sandbox_partner_id })).toHaveLength(3);
    expect((await c.get("/portal/dev/test-bank")).text).toContain("<caption>Test cards</caption>");
  });
});
