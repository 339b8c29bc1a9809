import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb } from "../../../test/harness.ts";
import { createMember } from "../../../test/factories/network.ts";
import { createEarningPartner } from "../../../test/factories/ledger.ts";
import { fixedClock } from "../infra/clock.ts";
import { createLogger } from "../infra/logger.ts";
import type { Db } from "../infra/db.ts";
import { createLedger } from "../ledger/ledger.service.ts";
import { createMemberAccess } from "../members/member-access.ts";
import { createEarnService } from "./earn.service.ts";

let db: Db;
beforeAll(async () => {
  db = await createTestDb();
});
afterAll(async () => {
  await db.destroy();
});

const DAY = 86_400_000;

describe("expiry", () => {
  it("announces lots N days ahead once, then expires them into breakage", async () => {
    const clock = fixedClock("2026-03-01T10:00:00Z");
    const ledger = createLedger({ db });
    const earn = createEarnService({ db, clock, log: createLogger("silent"), ledger, members: createMemberAccess() });
    const { partner } = await createEarningPartner(db, { points_validity_days: 100 });
    const m = (await createMember(db, partner.id)).id;
    await db.transaction((trx) => earn.earn(trx, partner.id, { member_id: m, partner_transaction_id: "x1", amount_minor: 70_000, currency: "EUR" }));
    clock.advance(50 * DAY);
    await db.transaction((trx) => earn.earn(trx, partner.id, { member_id: m, partner_transaction_id: "x2", amount_minor: 30_000, currency: "EUR" }));
    await db.transaction((trx) => earn.burn(trx, partner.id, { member_id: m, partner_transaction_id: "b1", points: 20, amount_minor: 200, currency: "EUR" }));

    clock.advance(30 * DAY); // day 80: the first lot expires on day 100
    expect(await earn.runExpiry({ noticeDays: 30 })).toMatchObject({ expiredPoints: 0n, announcedLots: 1 });
    expect(await earn.runExpiry({ noticeDays: 30 })).toMatchObject({ announcedLots: 0 });
    const soon = await db("events").where({ type: "points.expiring_soon" }).select("data", "partner_id");
    expect(soon).toEqual([{ partner_id: partner.id, data: { member_id: m, points: 50, expires_at: "2026-06-09T10:00:00.000Z" } }]);
    const bal = await earn.balance(partner.id, m);
    expect(bal).toMatchObject({ available: 80, expiring: [{ points: 50, expires_at: "2026-06-09T10:00:00.000Z" }, { points: 30 }] });

    clock.advance(21 * DAY); // day 101
    // Before the job runs, the balance already leaves out what is past its date.
    expect((await earn.balance(partner.id, m)).available).toBe(30);
    expect(await earn.runExpiry({ noticeDays: 0 })).toMatchObject({ expiredPoints: 50n, members: 1 });
    expect((await ledger.balances(db, m)).points).toBe(30n);
    const expired = await db("events").where({ type: "points.expired" }).select("data");
    expect(expired[0].data).toMatchObject({ member_id: m, points: 50 });
    const breakage: { total: string } = await db("ledger_postings").where({ account_id: "acc_breakage" }).first(db.raw("sum(amount)::text AS total"));
    expect(breakage.total).toBe("50");
    expect(await ledger.checkInvariants()).toEqual([]);
  });

  it("a hold past its expiry releases itself; a capture then is refused", async () => {
    const clock = fixedClock("2026-03-01T10:00:00Z");
    const ledger = createLedger({ db });
    const earn = createEarnService({ db, clock, log: createLogger("silent"), ledger, members: createMemberAccess() });
    const { partner } = await createEarningPartner(db);
    const m = (await createMember(db, partner.id)).id;
    await db.transaction((trx) => earn.earn(trx, partner.id, { member_id: m, partner_transaction_id: "h0", amount_minor: 100_000, currency: "EUR" }));
    const r = await db.transaction((trx) =>
      earn.hold(trx, partner.id, { member_id: m, partner_transaction_id: "h1", points: 40, amount_minor: 400, currency: "EUR", hold_minutes: 10 }),
    );
    const job: { job_id: string; queue: string } = await db("outbox").where({ queue: "ledger.redemption-expire" }).first("job_id", "queue");
    expect(job.job_id).toBe(`redemption-expire:${r.id}`);
    expect(await earn.expireHold(r.id)).toBe(false); // not yet
    clock.advance(11 * 60_000);
    await expect(db.transaction((trx) => earn.capture(trx, partner.id, r.id, {}))).rejects.toMatchObject({ code: "redemption-expired" });
    expect(await earn.dueHolds()).toEqual([r.id]);
    expect(await earn.expireHold(r.id)).toBe(true);
    expect(await earn.expireHold(r.id)).toBe(false);
    expect(await earn.getRedemption(partner.id, r.id)).toMatchObject({ status: "expired" });
    expect(await ledger.balances(db, m)).toMatchObject({ points: 100n, held: 0n });
    expect(await ledger.checkInvariants()).toEqual([]);
  });
});
