import type { TestHub } from "./harness.ts";
import { PortalClient } from "./portal.ts";
import { createPortalUsers } from "../portal/src/users/users.service.ts";

let n = 0;

/** An operator account and a logged-in browser-less client for it (the console's route tests). */
export async function operatorClient(t: TestHub): Promise<{ client: PortalClient; userId: string; email: string }> {
  const email = `ops${++n}.${Date.now()}@example.com`;
  const password = "operator password 123";
  const user = await createPortalUsers(t.deps).create({ email, name: `Operator ${n}`, role: "operator", password });
  const client = new PortalClient(t.url);
  const res = await client.submit("/portal/login", "/portal/login", { email, password });
  if (res.status !== 303) throw new Error(`operator login failed: ${res.status}`);
  return { client, userId: user.id, email };
}
