import type { Request } from "express";
import type { PortalContext } from "../context.ts";
import type { OAuthClient } from "../../../gateway/src/auth/clients.service.ts";
import { PageNotFound } from "../web/errors.ts";

export type Environment = "live" | "sandbox";

/** The partner a developer acts for in an environment: its live partner, or its sandbox partner. */
export function partnerFor(req: Request, env: Environment): string {
  const u = req.user!;
  const id = env === "sandbox" ? u.sandbox_partner_id : u.partner_id;
  if (!id) throw new PageNotFound();
  return id;
}

export function envOf(v: unknown): Environment {
  return v === "live" ? "live" : "sandbox";
}

/**
 * One of the developer's own clients, or 404 — the same answer whether the client belongs to
 * another partner or does not exist, as on the API.
 */
export async function ownClient(ctx: PortalContext, req: Request, clientId: string): Promise<OAuthClient> {
  const u = req.user!;
  const c = await ctx.services.clients.get(clientId);
  if (!c || !c.partner_id || (c.partner_id !== u.partner_id && c.partner_id !== u.sandbox_partner_id)) throw new PageNotFound();
  return c;
}

export function actorOf(req: Request) {
  return { type: "portal_user", id: req.user!.id };
}

/** Live credentials exist once the operator has approved the application. */
export async function liveAllowed(ctx: PortalContext, req: Request): Promise<{ allowed: boolean; status: string }> {
  const p = await ctx.services.partners.getPartner(req.user!.partner_id!);
  const status = p.status as string;
  return { allowed: status === "approved" || status === "active", status };
}
