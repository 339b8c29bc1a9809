import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { applicant, PortalClient } from "../../../test/portal.ts";
import { operatorClient } from "../../../test/console.ts";
import { ledgerScenario } from "../../../test/factories/ledger.ts";
import { createSector } from "../../../test/factories/network.ts";
import { createRulesService } from "../../../gateway/src/rules/rules.service.ts";
import { createTiersService } from "../../../gateway/src/rules/tiers.service.ts";
import { createLedger } from "../../../gateway/src/ledger/ledger.service.ts";
import { createNetworkMemberAccess } from "../../../gateway/src/cards/cards.service.ts";
import { listAudit } from "../../../gateway/src/partners/audit.service.ts";

let t: TestHub;
let op: PortalClient;
let opActor: string;

beforeAll(async () => {
  t = await startTestHub({ workers: false });
  await createSector(t.db, "grocery");
  const o = await operatorClient(t);
  op = o.client;
  opActor = `portal:${o.userId}`;
});
afterAll(async () => t?.close());

/** The services the outcomes are checked in (the same factories hub.ts uses, on the same database). */
async function rulesService() {
  const tiers = createTiersService({ db: t.db, clock: t.clock });
  const rules = createRulesService({ db: t.db, clock: t.clock, ledger: createLedger({ db: t.db, log: t.deps.log }), members: createNetworkMemberAccess(t.deps), tiers });
  return { rules, tiers };
}

const ruleForm = (over: Record<string, string | string[]> = {}) => ({
  name: "Double points on premium",
  type: "multiplier",
  priority: "50",
  stack_group: "",
  valid_from: "2020-01-01T00:00",
  valid_until: "",
  target_kind: "all",
  target_values: "",
  multiplier: "2",
  categories: "premium, fresh",
  ...over,
});

describe("console: rules", () => {
  it("lists rules for an operator; a developer gets 404; a form post without CSRF is refused", async () => {
    expect((await op.get("/portal/console/rules")).status).toBe(200);
    expect((await op.get("/portal/console/rules/new")).status).toBe(200);
    expect((await op.get("/portal/console/tiers")).status).toBe(200);
    const dev = new PortalClient(t.url);
    await dev.submit("/portal/signup", "/portal/signup", applicant());
    expect((await dev.get("/portal/console/rules")).status).toBe(404);
    expect((await dev.get("/portal/console/tiers")).status).toBe(404);
    const { rules } = await rulesService();
    const before = (await rules.listRules()).items.length;
    const res = await op.request("POST", "/portal/console/rules", { form: ruleForm(), csrf: false });
    expect(res.status).toBe(403);
    expect((await rules.listRules()).items.length).toBe(before);
  });

  it("creates a draft from the form with exact params (×2 → 20000 bp), audited", async () => {
    const { rules } = await rulesService();
    const res = await op.submit("/portal/console/rules/new", "/portal/console/rules", ruleForm());
    expect(res.status).toBe(303);
    const id = res.location!.split("/").pop()!;
    const rule = await rules.getRule(id);
    expect(rule).toMatchObject({ status: "draft", type: "multiplier", priority: 50, owner: { kind: "operator" }, params: { multiplier_bp: 20_000, categories: ["premium", "fresh"] }, target: { kind: "all" }, partner_ids: null });
    // Only the params the type reads are sent.
    expect(Object.keys(rule.params).sort()).toEqual(["categories", "multiplier_bp"]);
    const page = await op.get(`/portal/console/rules/${id}`);
    expect(page.text).toContain("Run the simulation first");
    expect(page.text).not.toContain('value="active"');
  });

  it("refuses a form with bad fields (422, each named) and creates nothing", async () => {
    const { rules } = await rulesService();
    const before = (await rules.listRules()).items.length;
    const res = await op.submit("/portal/console/rules/new", "/portal/console/rules", ruleForm({ name: "", multiplier: "1", valid_from: "yesterday", target_kind: "tier" }));
    expect(res.status).toBe(422);
    expect(res.text).toContain("Give the rule a name.");
    expect(res.text).toContain("Above 1");
    expect(res.text).toContain("A date and time (UTC).");
    expect(res.text).toContain("Name at least one tier or segment.");
    expect((await rules.listRules()).items.length).toBe(before);
  });

  it("activates a draft only after a simulation whose figures match a hand count; then pauses it", async () => {
    const { rules } = await rulesService();
    // One partner, 1 point per 10.00 issued at 0.010 per point; two purchases by one member in the window.
    const a = await ledgerScenario(t);
    const ago = (d: number) => new Date(Date.now() - d * 86_400_000).toISOString();
    for (const [id, amount, at] of [["s1", 12_000, ago(5)], ["s2", 30_000, ago(2)]] as const) {
      const r = await a.post("/v1/earn", { member_id: a.member.id, partner_transaction_id: id, amount_minor: amount, currency: "EUR", occurred_at: at });
      expect(r.status).toBe(201);
    }
    const created = await op.submit("/portal/console/rules/new", "/portal/console/rules", {
      name: "Ten points a visit",
      type: "fixed_bonus",
      priority: "100",
      valid_from: "2020-01-01T00:00",
      target_kind: "all",
      points: "10",
      partner_ids: [a.partner.id],
    });
    expect(created.status).toBe(303);
    const id = created.location!.split("/").pop()!;
    const path = `/portal/console/rules/${id}`;

    const early = await op.submit(path, `${path}/status`, { status: "active" });
    expect(early.status).toBe(409);
    expect(early.text).toContain("Run the simulation before activating");
    expect((await rules.getRule(id)).status).toBe("draft");

    const sim = await op.submit(path, `${path}/simulate`, { days: "30" });
    expect(sim.status).toBe(200);
    // 2 purchases × 10 points = 20 points; cost 20 × 0.010 = 0.20 EUR; one member.
    expect(sim.text).toMatch(/data-figure="points">20</);
    expect(sim.text).toMatch(/data-figure="cost-EUR">0\.20 EUR</);
    expect(sim.text).toMatch(/data-figure="members">1</);
    expect(sim.text).toMatch(/data-figure="transactions">2 \/ 2</);
    const trail = await svcAudit(id);
    expect(trail[0]).toMatchObject({ action: "rule.simulated", actor: { id: opActor }, after: { points: 20, members_touched: 1 } });

    expect((await op.submit(path, `${path}/status`, { status: "active" })).status).toBe(303);
    expect((await rules.getRule(id)).status).toBe("active");
    // The rule's page names the operator who simulated it, not "portal:usr_…".
    const shown = await op.get(path);
    expect(shown.text).toMatch(/Last run [^<]* by Operator \d+\./);
    expect(shown.text).not.toContain(`<td>${opActor}</td>`);
    expect((await op.submit(path, `${path}/status`, { status: "paused" })).status).toBe(303);
    expect((await rules.getRule(id)).status).toBe("paused");
    // A paused rule comes back without a new simulation; an unknown status is 422.
    expect((await op.submit(path, `${path}/status`, { status: "nonsense" })).status).toBe(422);
    expect((await op.get("/portal/console/rules/rul_nope")).status).toBe(404);
  });
});

async function svcAudit(ruleId: string) {
  return (await listAudit(t.db, { objectType: "rule", objectId: ruleId, limit: 10 })).items;
}

describe("console: tier ladder", () => {
  const ladder = (over: Record<string, string> = {}) => ({
    basis: "spend_minor",
    window_days: "365",
    grace_days: "30",
    code_0: "silver",
    name_0: "Silver",
    threshold_0: "0",
    multiplier_0: "1",
    perks_0: "",
    code_1: "gold",
    name_1: "Gold",
    threshold_1: "100000",
    multiplier_1: "1.5",
    perks_1: "lounge, priority line",
    ...over,
  });

  it("saves a ladder through the tiers service (×1.5 → 15000 bp) and shows it", async () => {
    const { tiers } = await rulesService();
    const res = await op.submit("/portal/console/tiers", "/portal/console/tiers", ladder());
    expect(res.status).toBe(303);
    expect(await tiers.getLadder()).toEqual({
      basis: "spend_minor",
      window_days: 365,
      grace_days: 30,
      tiers: [
        { code: "silver", name: "Silver", rank: 1, threshold: 0, multiplier_bp: 10_000, perks: [] },
        { code: "gold", name: "Gold", rank: 2, threshold: 100_000, multiplier_bp: 15_000, perks: ["lounge", "priority line"] },
      ],
    });
    const page = await op.get("/portal/console/tiers");
    expect(page.text).toContain("×1.5");
  });

  it("refuses a ladder whose thresholds do not grow (the service's rule) and a malformed one, unchanged", async () => {
    const { tiers } = await rulesService();
    const before = await tiers.getLadder();
    const flat = await op.submit("/portal/console/tiers", "/portal/console/tiers", ladder({ threshold_1: "0" }));
    expect(flat.status).toBe(422);
    expect(flat.text).toContain("thresholds must grow");
    const bad = await op.submit("/portal/console/tiers", "/portal/console/tiers", ladder({ code_1: "Gold Tier!", multiplier_1: "0.5" }));
    expect(bad.status).toBe(422);
    expect(bad.text).toContain("Tier 2: a code of lowercase letters");
    expect(bad.text).toContain("Tier 2: a multiplier from 1 to 10");
    expect(await tiers.getLadder()).toEqual(before);
  });
});
