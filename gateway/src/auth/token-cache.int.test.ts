import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { bearer, createClient, tokenFor } from "../../../test/factories/auth.ts";
import { fixedClock } from "../infra/clock.ts";

// A token's signature is verified once, then remembered (oauth.service.ts): what can change must
// still be checked on every request.
const clock = fixedClock(new Date());
let hub: TestHub;

beforeAll(async () => {
  hub = await startTestHub({ clock });
});
afterAll(() => hub.close());

describe("a token verified before", () => {
  it("still expires: refused once past exp and the clock tolerance", async () => {
    const c = await createClient(hub, { partnerId: null, scopes: ["admin"] });
    const token = await tokenFor(hub, c);
    expect((await hub.fetch("/admin/v1/oauth/clients", { headers: bearer(token) })).status).toBe(200);
    expect((await hub.fetch("/admin/v1/oauth/clients", { headers: bearer(token) })).status).toBe(200);
    clock.advance((hub.deps.config.ACCESS_TOKEN_TTL_SECONDS + 61) * 1000);
    const res = await hub.fetch("/admin/v1/oauth/clients", { headers: bearer(token) });
    expect(res.status).toBe(401);
    expect(await res.text()).toMatch(/expired/);
  });

  it("does not vouch for another signature on the same header and claims", async () => {
    const c = await createClient(hub, { partnerId: null, scopes: ["admin"] });
    const token = await tokenFor(hub, c);
    expect((await hub.fetch("/admin/v1/oauth/clients", { headers: bearer(token) })).status).toBe(200);
    const [h, p, sig] = token.split(".");
    const forged = `${h}.${p}.${sig!.startsWith("A") ? "B" : "A"}${sig!.slice(1)}`;
    expect((await hub.fetch("/admin/v1/oauth/clients", { headers: bearer(forged) })).status).toBe(401);
  });
});
