import { newId } from "../../../gateway/src/infra/ids.ts";
import type { PortalContext } from "../context.ts";
import { EmailTakenError, type PortalUser } from "../users/users.service.ts";
import { hashPassword, passwordProblem } from "../password.ts";
import { FormError } from "../web/errors.ts";

export interface SignupInput {
  company: string;
  sector: string;
  kind: string;
  name: string;
  email: string;
  phone: string;
  password: string;
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/**
 * A partner application: the company becomes a partner in `applied` (through the partners service,
 * which checks the sector), the contact becomes its first developer — both in one transaction. The
 * operator approves it in the console; until then the developer works in the sandbox.
 */
export async function signUp(ctx: PortalContext, input: SignupInput, onCreated?: (user: PortalUser) => Promise<void>): Promise<PortalUser> {
  const errors: Record<string, string> = {};
  if (input.company.length < 2) errors.company = "Give the company's name.";
  if (input.kind !== "merchant" && input.kind !== "bank") errors.kind = "Choose merchant or bank.";
  const sectors = await ctx.services.partners.listSectors();
  if (!sectors.some((s) => s.code === input.sector && s.active)) errors.sector = "Choose one of the listed sectors.";
  if (input.name.length < 2) errors.name = "Give your name.";
  if (!EMAIL.test(input.email)) errors.email = "Give a valid email address.";
  const pw = passwordProblem(input.password);
  if (pw) errors.password = `The password ${pw}.`;
  if (!errors.email && (await ctx.users.emailTaken(input.email))) errors.email = "An account with this email exists: log in instead.";
  if (Object.keys(errors).length) throw new FormError(errors);

  const userId = newId("usr", ctx.clock.now().getTime());
  const actor = { type: "partner" as const, id: userId };
  // One transaction for the partner and its first developer: when two sign-ups race on one email,
  // both pass the check above, and the loser's user insert meets the unique email index — its
  // partner rolls back with it, so no orphan application is left. The hash is made first, so the
  // transaction is not held open for scrypt's time.
  const passwordHash = await hashPassword(input.password);
  let user: PortalUser;
  try {
    user = await ctx.db.transaction(async (trx) => {
      const partner = await ctx.services.partners.createPartner(actor, { name: input.company, kind: input.kind as "merchant" | "bank", sector: input.sector }, trx);
      return ctx.users.create({ id: userId, email: input.email, name: input.name, role: "developer", passwordHash, partnerId: partner.id as string, phone: input.phone || null }, trx);
    });
  } catch (err) {
    if (err instanceof EmailTakenError) throw new FormError({ email: "An account with this email exists: log in instead." });
    throw err;
  }
  await onCreated?.(user);
  ctx.log.info({ partner_id: user.partner_id, user_id: user.id }, "portal sign-up: partner application received");
  return user;
}
