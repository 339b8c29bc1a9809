import type { PortalContext } from "../context.ts";
import type { PortalUser } from "../users/users.service.ts";

/** Terms of every sandbox partner's contract: those of the demo network (1 point per 10.00). */
export const SANDBOX_TERMS = {
  currency: "EUR",
  issuance_price_micros: 10_000,
  redemption_price_micros: 8_000,
  earn_points: 1,
  earn_per_minor: 1_000,
  points_validity_days: 730,
  refund_policy: "negative_balance" as const,
  negative_floor: -5_000,
};

const TEST_PEOPLE: Array<[string, string]> = [
  ["Ada", "Sandbox"],
  ["Linus", "Sandbox"],
  ["Grace", "Sandbox"],
];

export interface SandboxMember {
  member_id: string;
  card_number: string;
  name: string;
}

/**
 * The developer's sandbox: a partner of the same kind and sector with `sandbox: true`, in the
 * sandbox network — it takes no place in its sector, its members are sandbox members that live
 * partners never reach (and it never reaches live ones), and the live lists leave it out. It is
 * active at once, under a contract with demo terms, with three test members holding a card each,
 * so the first earn call works minutes after sign-up. All through the partners, members and cards
 * services, as any partner would be set up.
 */
export async function provisionSandbox(ctx: PortalContext, user: PortalUser): Promise<string> {
  const { partners, members, cards } = ctx.services;
  const live = await partners.getPartner(user.partner_id!);
  const actor = { type: "partner" as const, id: user.id };
  const sandbox = await partners.createPartner(actor, { name: `${live.name as string} (sandbox)`, kind: live.kind as "merchant" | "bank", sector: live.sector as string, sandbox: true });
  const id = sandbox.id as string;
  // A contract version starts now or later, never in the past: a second from now leaves room.
  await partners.createContractVersion(actor, id, { ...SANDBOX_TERMS, effective_from: new Date(ctx.clock.now().getTime() + 1_000).toISOString() });
  await partners.changeStatus(actor, id, { status: "approved", reason: "sandbox" });
  await partners.changeStatus(actor, id, { status: "active", reason: "sandbox" });
  let n = 0;
  for (const [given, family] of TEST_PEOPLE) {
    n++;
    const enrolled = await members.enrol(id, {
      customer_ref: `sandbox-${n}`,
      given_name: given,
      family_name: family,
      email: `${given.toLowerCase()}.${id.slice(-8)}@sandbox.example`,
      email_verified: false,
      consents: [{ purpose: "marketing", version: "sandbox", state: "given" }],
    });
    const memberId = (enrolled.member as { id: string }).id;
    const card = (await cards.issue(id, memberId, { form: "virtual" })) as { number: string };
    await ctx.db("portal_sandbox_members").insert({ partner_id: id, member_id: memberId, card_number: card.number, name: `${given} ${family}` });
  }
  await ctx.users.setSandboxPartner(user.id, id);
  return id;
}

export async function sandboxMembers(ctx: PortalContext, sandboxPartnerId: string): Promise<SandboxMember[]> {
  return ctx.db("portal_sandbox_members").where({ partner_id: sandboxPartnerId }).orderBy("name").select("member_id", "card_number", "name");
}
