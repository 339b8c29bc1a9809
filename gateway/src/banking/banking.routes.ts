import type { Db } from "../infra/db.ts";
import type { HandlerContext, HandlerResult, Handlers } from "../http/router.ts";
import { httpErrors } from "../http/problem.ts";
import type { OpBody } from "../http/contract-types.ts";
import type { Idempotency } from "../idempotency/idempotency.service.ts";
import { memberAccessErrors, type MemberAccess } from "../members/member-access.ts";
import { bankingErrors } from "./banking.errors.ts";
import type { PaymentCardsService } from "./payment-cards.service.ts";
import type { CardEventInput, CardTransactionsService, IngestResult } from "./card-transactions.service.ts";
import { parseClearingCsv, parseNdjson, type ParsedLines } from "./card-events.parse.ts";
import type { OffersService, OfferInput } from "./offers.service.ts";
import type { CashbackService } from "./cashback.service.ts";
import type { RoundupService } from "./roundup.service.ts";

export interface BankingRouteDeps {
  db: Db;
  idempotency: Idempotency;
  members: MemberAccess;
  cards: PaymentCardsService;
  transactions: CardTransactionsService;
  offers: OffersService;
  cashback: CashbackService;
  roundup: RoundupService;
}

function csvLine(values: Array<string | number>): string {
  return values.map((v) => (typeof v === "string" && /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : String(v))).join(",");
}

/** Thin handlers: who is calling (a bank, for bank routes), the service, the answer. */
export function bankingRoutes(deps: BankingRouteDeps): Handlers {
  const { db, idempotency, cards, transactions, offers, cashback, roundup, members } = deps;

  async function partnerOfKind(ctx: HandlerContext, kind: "bank" | "merchant"): Promise<string> {
    const id = ctx.principal?.partnerId;
    if (!id) throw httpErrors.make("forbidden", "Only a partner's token may call this operation.");
    const p: { kind: string; status: string } | undefined = await db("partners").where({ id }).first("kind", "status");
    if (!p || p.kind !== kind) {
      throw kind === "bank"
        ? bankingErrors.make("not-a-bank", "Linking payment cards and sending card transactions is for bank partners; this token acts for a partner that is not a bank.")
        : bankingErrors.make("not-a-merchant", "Card-linked offers are set by merchant partners.");
    }
    if (p.status !== "active") throw bankingErrors.make("partner-not-active", `The partner is ${p.status}.`);
    return id;
  }
  const bankOf = (ctx: HandlerContext) => partnerOfKind(ctx, "bank");

  const idempotent = (ctx: HandlerContext, partnerId: string, work: Parameters<Idempotency["run"]>[1]) => idempotency.forRequest(ctx, partnerId, work);

  async function ingestLines(ctx: HandlerContext, bankId: string, parsed: ParsedLines): Promise<HandlerResult> {
    return idempotent(ctx, bankId, async (trx) => {
      // The batch path, a chunk at a time, in the request's one transaction (all or nothing).
      const r = await transactions.ingestChunked(trx, bankId, parsed.events);
      const rejected = [
        ...parsed.rejected.map((x) => ({ line: x.line, event_id: null, reason: x.reason })),
        ...r.rejected.map((x) => ({ line: parsed.lines[x.index]!, event_id: x.event_id, reason: x.reason })),
      ].sort((a, b) => a.line - b.line);
      return { status: 200, body: { received: parsed.events.length + parsed.rejected.length, accepted: r.accepted, duplicates: r.duplicates, rejected } };
    });
  }

  return {
    async linkPaymentCard(ctx) {
      const bankId = await bankOf(ctx);
      return idempotent(ctx, bankId, async (trx) => ({ status: 201, body: await cards.link(trx, bankId, ctx.body as OpBody<"linkPaymentCard">) }));
    },

    async unlinkPaymentCard(ctx) {
      const bankId = await bankOf(ctx);
      return { status: 200, body: await db.transaction((trx) => cards.unlink(trx, bankId, String(ctx.params.paymentCardId))) };
    },

    async listMemberPaymentCards(ctx) {
      const bankId = await bankOf(ctx);
      return { status: 200, body: { items: await cards.list(db, bankId, String(ctx.params.memberId)) } };
    },

    async ingestCardEvents(ctx) {
      const bankId = await bankOf(ctx);
      if (typeof ctx.body === "string") return ingestLines(ctx, bankId, parseNdjson(ctx.body));
      // One event goes the one-by-one path; an array the batch path, a chunk at a time.
      const single = !Array.isArray(ctx.body);
      const events = (single ? [ctx.body] : ctx.body) as CardEventInput[];
      return idempotent(ctx, bankId, async (trx) => {
        const r: IngestResult = single ? await transactions.ingest(trx, bankId, events) : await transactions.ingestChunked(trx, bankId, events);
        return { status: 200, body: r };
      });
    },

    async uploadClearingFile(ctx) {
      const bankId = await bankOf(ctx);
      const parsed = parseClearingCsv(String(ctx.body ?? ""));
      if ("error" in parsed) throw bankingErrors.make("file-invalid", parsed.error);
      return ingestLines(ctx, bankId, parsed);
    },

    async getCardPurchase(ctx) {
      const bankId = await bankOf(ctx);
      return { status: 200, body: await transactions.getPurchase(bankId, String(ctx.params.purchaseId)) };
    },

    async getMemberMoneyAccounts(ctx) {
      const bankId = await bankOf(ctx);
      const memberId = String(ctx.params.memberId);
      if (!(await members.canSee(db, bankId, memberId))) throw memberAccessErrors.make("member-not-found", `No member ${memberId}.`);
      const currency = String(ctx.query.currency);
      const settings = await roundup.getSettings(memberId);
      return {
        status: 200,
        body: { cashback: await cashback.account(memberId, currency), roundup: { enabled: settings.enabled, ...(await roundup.account(memberId, currency)) } },
      };
    },

    async putRoundupSettings(ctx) {
      const bankId = await bankOf(ctx);
      const memberId = String(ctx.params.memberId);
      await db.transaction((trx) => members.resolve(trx, bankId, { member_id: memberId }));
      return { status: 200, body: await roundup.putSettings(bankId, memberId, ctx.body as OpBody<"putRoundupSettings">) };
    },

    async listPayoutInstructions(ctx) {
      const bankId = await bankOf(ctx);
      const items = await cashback.listPayouts(bankId, String(ctx.query.day));
      if (ctx.query.format === "csv") {
        const lines = [csvLine(["payout_id", "member_id", "currency", "amount_minor", "business_day"]), ...items.map((p) => csvLine([p.id, p.member_id, p.currency, p.amount_minor, p.business_day]))];
        return { status: 200, raw: { contentType: "text/csv", data: `${lines.join("\n")}\n` } };
      }
      return { status: 200, body: { items } };
    },

    async listRoundupSweeps(ctx) {
      const bankId = await bankOf(ctx);
      const items = await roundup.listSweeps(bankId, String(ctx.query.day));
      if (ctx.query.format === "csv") {
        const lines = [
          csvLine(["sweep_id", "member_id", "currency", "roundup_minor", "match_minor", "business_day", "status"]),
          ...items.map((s) => csvLine([s.id, s.member_id, s.currency, s.roundup_minor, s.match_minor, s.business_day, s.status])),
        ];
        return { status: 200, raw: { contentType: "text/csv", data: `${lines.join("\n")}\n` } };
      }
      return { status: 200, body: { items } };
    },

    async confirmRoundupSweep(ctx) {
      const bankId = await bankOf(ctx);
      return idempotent(ctx, bankId, async (trx) => ({
        status: 200,
        body: await roundup.confirm(trx, bankId, String(ctx.params.sweepId), ctx.body as OpBody<"confirmRoundupSweep">),
      }));
    },

    async listBankOffers(ctx) {
      await bankOf(ctx);
      return { status: 200, body: { items: await offers.listRunning() } };
    },

    async activateCardOffer(ctx) {
      const bankId = await bankOf(ctx);
      const { member_id } = ctx.body as OpBody<"activateCardOffer">;
      return idempotent(ctx, bankId, async (trx) => ({ status: 201, body: await offers.activate(trx, bankId, String(ctx.params.offerId), member_id) }));
    },

    async createCardOffer(ctx) {
      const partnerId = await partnerOfKind(ctx, "merchant");
      return idempotent(ctx, partnerId, async (trx) => ({ status: 201, body: await offers.create(trx, partnerId, ctx.body as OfferInput) }));
    },

    async listCardOffers(ctx) {
      const partnerId = await partnerOfKind(ctx, "merchant");
      return { status: 200, body: { items: await offers.list(partnerId) } };
    },

    async endCardOffer(ctx) {
      const partnerId = await partnerOfKind(ctx, "merchant");
      return { status: 200, body: await offers.end(partnerId, String(ctx.params.offerId)) };
    },

    async listUnmatchedCardPurchases(ctx) {
      const q = ctx.query as { cursor?: string; limit?: number };
      return { status: 200, body: await transactions.listUnmatched({ ...(q.cursor ? { cursor: q.cursor } : {}), limit: q.limit ?? 50 }) };
    },

    async rematchCardPurchase(ctx) {
      const body = (ctx.body ?? {}) as { partner_id?: string };
      return { status: 200, body: await transactions.rematch(String(ctx.params.cardPurchaseId), body.partner_id) };
    },
  };
}
