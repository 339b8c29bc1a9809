import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../../test/harness.ts";
import { json } from "../../../test/http.ts";
import { adminToken, bearer } from "../../../test/factories/auth.ts";
import { createMember } from "../../../test/factories/network.ts";
import { ledgerScenario } from "../../../test/factories/ledger.ts";
import { expectRouteSecurity } from "../../../test/security.ts";
import { commitmentOf, entryCodeOf, verifyDraw } from "./draws.verify.ts";

let hub: TestHub;
let admin: string;
beforeAll(async () => {
  hub = await startTestHub();
  admin = await adminToken(hub);
});
afterAll(async () => {
  await hub.close();
});

const DAY = 86_400_000;
const ago = (days: number) => new Date(Date.now() - days * DAY).toISOString();
const send = (method: string, path: string, token?: string, body?: unknown) =>
  hub.fetch(path, { method, headers: { ...(token ? bearer(token) : {}), "content-type": "application/json" }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
const run = promisify(execFile);

describe("verifiable prize draws", () => {
  it("commits before entries close, freezes hashed entries from qualifying purchases, reveals winners anyone can re-derive", async () => {
    const s = await ledgerScenario(hub);
    const other = await ledgerScenario(hub);
    const m2 = await createMember(hub.db, s.partner.id);
    // Entries close in a few seconds: the commitment is announced while they are still open.
    const closeAt = new Date(Date.now() + 2_500);
    const created = await send("POST", "/admin/v1/draws", admin, {
      name: "Autumn draw",
      entries_open_at: ago(10),
      entries_close_at: closeAt.toISOString(),
      winners_count: 2,
      qualifying: { min_amount_minor: 2_000, partner_ids: [s.partner.id] },
    });
    expect(created.status).toBe(201);
    const draw = await json(created);
    expect(draw).toMatchObject({ status: "announced", seed: null, entries: null, winners: null, entries_hash: null });
    expect(draw.commitment).toMatch(/^[0-9a-f]{64}$/);

    const buy = async (sc: typeof s, memberId: string, id: string, amount: number, at: string) => {
      const res = await sc.post("/v1/earn", { member_id: memberId, partner_transaction_id: id, amount_minor: amount, currency: "EUR", occurred_at: at });
      expect(res.status).toBe(201);
      return (await json(res)).transaction_id as string;
    };
    const qualifying = [
      await buy(s, s.member.id, "q1", 2_000, ago(9)),
      await buy(s, s.member.id, "q2", 5_000, ago(5)),
      await buy(s, m2.id, "q3", 3_000, ago(3)),
      await buy(s, m2.id, "q4", 9_000, ago(2)),
    ];
    await buy(s, s.member.id, "small", 1_999, ago(4)); // below the minimum
    await buy(other, other.member.id, "elsewhere", 5_000, ago(4)); // another partner
    const refunded = await buy(s, m2.id, "refunded", 5_000, ago(4));
    expect((await s.post(`/v1/transactions/${refunded}/refund`, { refund_id: "rf" })).status).toBe(201);

    // Closing before entries close and revealing before closing are refused; no seed is shown yet.
    expect((await send("POST", `/admin/v1/draws/${draw.id}/close`, admin)).status).toBe(409);
    expect((await send("POST", `/admin/v1/draws/${draw.id}/reveal`, admin)).status).toBe(409);
    expect((await json(await send("GET", `/draws/${draw.id}`))).seed).toBeNull();
    await new Promise((r) => setTimeout(r, Math.max(0, closeAt.getTime() - Date.now() + 200)));
    await buy(s, s.member.id, "late", 5_000, new Date(closeAt.getTime() + 50).toISOString()); // after entries closed

    const closed = await json(await send("POST", `/admin/v1/draws/${draw.id}/close`, admin));
    expect(closed).toMatchObject({ status: "closed", entries_count: 4, seed: null, winners: null });
    expect(closed.entries).toEqual(qualifying.map((t) => entryCodeOf(draw.id, t)).sort());
    expect((await send("POST", `/admin/v1/draws/${draw.id}/close`, admin)).status).toBe(409);

    const revealed = await json(await send("POST", `/admin/v1/draws/${draw.id}/reveal`, admin));
    expect(revealed.status).toBe("revealed");
    expect(commitmentOf(revealed.seed)).toBe(draw.commitment);
    expect(revealed.winners).toHaveLength(2);

    // Anyone, without a token, fetches the published document and re-derives the winners.
    const published = await json(await send("GET", `/draws/${draw.id}`));
    expect(published).toEqual(revealed);
    expect(verifyDraw(published)).toEqual([]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "draw-"));
    const good = path.join(dir, "draw.json");
    fs.writeFileSync(good, JSON.stringify(published));
    const ok = await run(process.execPath, ["--import", "tsx", "scripts/verify-draw.ts", good]);
    expect(ok.stdout).toMatch(/verified/);
    const byUrl = await run(process.execPath, ["--import", "tsx", "scripts/verify-draw.ts", `${hub.url}/draws/${draw.id}`]);
    expect(byUrl.stdout).toMatch(/verified/);
    // A tampered copy (one entry swapped for another) fails with exit code 1.
    const bad = path.join(dir, "tampered.json");
    fs.writeFileSync(bad, JSON.stringify({ ...published, entries: [...published.entries.slice(1), entryCodeOf(draw.id, "txn_forged")].sort() }));
    const failed = await run(process.execPath, ["--import", "tsx", "scripts/verify-draw.ts", bad]).catch((e: { code: number; stderr: string }) => e);
    expect((failed as { code: number }).code).toBe(1);
    expect((failed as { stderr: string }).stderr).toMatch(/entries_hash/);

    // The operator learns which members won; the public never does.
    const winners = await json(await send("GET", `/admin/v1/draws/${draw.id}/winners`, admin));
    expect(winners.winners.map((w: { entry_code: string }) => w.entry_code)).toEqual(revealed.winners);
    expect(winners.winners.every((w: { member_id: string }) => [s.member.id, m2.id].includes(w.member_id))).toBe(true);
    expect(JSON.stringify(published)).not.toContain(s.member.id);
  });

  it("refuses a draw announced after its entries closed, closing early, and answers 404 for an unknown draw", async () => {
    const late = await send("POST", "/admin/v1/draws", admin, { name: "Too late", entries_open_at: ago(10), entries_close_at: ago(1), winners_count: 1 });
    expect(late.status).toBe(422);
    expect((await json(late)).code).toBe("invalid-draw");
    const d = await json(await send("POST", "/admin/v1/draws", admin, { name: "Future", entries_open_at: ago(1), entries_close_at: ago(-5), winners_count: 1 }));
    const res = await send("POST", `/admin/v1/draws/${d.id}/close`, admin);
    expect(res.status).toBe(409);
    expect((await json(res)).code).toBe("draw-not-ready");
    expect((await send("GET", "/draws/drw_nope")).status).toBe(404);
  });

  it("fails closed on the draw admin routes", async () => {
    await expectRouteSecurity(hub, { method: "POST", path: "/admin/v1/draws", body: { name: "x", entries_open_at: ago(2), entries_close_at: ago(-1), winners_count: 1 }, scopes: ["admin"], audience: "admin" });
    for (const step of ["close", "reveal"]) await expectRouteSecurity(hub, { method: "POST", path: `/admin/v1/draws/drw_x/${step}`, scopes: ["admin"], audience: "admin" });
    await expectRouteSecurity(hub, { method: "GET", path: "/admin/v1/draws/drw_x/winners", scopes: ["admin"], audience: "admin" });
  });
});
