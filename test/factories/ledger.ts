import type { TestHub } from "../harness.ts";
import type { DbOrTrx } from "../../gateway/src/infra/db.ts";
import { createContract, createMember, createPartner, type ContractRow, type PartnerRow } from "./network.ts";
import { bearer, partnerToken } from "./auth.ts";
import { linkMember } from "../../gateway/src/members/member-access.ts";

/** An active merchant with a contract (1 point per 10.00 EUR by default). */
export async function createEarningPartner(db: DbOrTrx, contract: Partial<ContractRow> = {}, partner: Partial<PartnerRow> = {}) {
  const p = await createPartner(db, partner);
  const c = await createContract(db, p.id, contract);
  return { partner: p, contract: c };
}

/** A partner that can call the earn and burn API over HTTP, and a member it enrolled. */
export async function ledgerScenario(hub: TestHub, contract: Partial<ContractRow> = {}) {
  const { partner, contract: c } = await createEarningPartner(hub.db, contract);
  const member = await createMember(hub.db, partner.id);
  const token = await partnerToken(hub, partner.id, ["earn:write", "burn:write", "members:read"]);
  let n = 0;
  const post = (path: string, body: unknown, key = `k-${Date.now()}-${++n}-${Math.random()}`, tok = token) =>
    hub.fetch(path, { method: "POST", headers: { ...bearer(tok), "content-type": "application/json", "idempotency-key": key }, body: JSON.stringify(body) });
  const get = (path: string, tok = token) => hub.fetch(path, { headers: bearer(tok) });
  return { partner, contract: c, member, token, post, get };
}

/** Makes a member visible to another partner (as if they had shopped there). */
export async function linkToPartner(db: DbOrTrx, memberId: string, partnerId: string) {
  await linkMember(db, memberId, partnerId, "used");
}
