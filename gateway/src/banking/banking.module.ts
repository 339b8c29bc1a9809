import type { HubDeps } from "../hub.ts";
import type { Ledger } from "../ledger/ledger.service.ts";
import { createMemberAccess } from "../members/member-access.ts";
import { createMoneyLedger } from "./money-ledger.ts";
import { createPaymentCardsService } from "./payment-cards.service.ts";
import { createCardTransactionsService } from "./card-transactions.service.ts";
import { createOffersService } from "./offers.service.ts";
import { createCashbackService } from "./cashback.service.ts";
import { createRoundupService } from "./roundup.service.ts";

/** Assembles the banking feature from its services (one place, for the hub and for the bench). */
export function createBanking(deps: HubDeps & { ledger: Ledger }) {
  const { db, clock, log, config, ledger } = deps;
  const members = createMemberAccess();
  const money = createMoneyLedger({ ledger });
  const roundup = createRoundupService({ db, clock, money });
  return {
    members,
    money,
    roundup,
    cards: createPaymentCardsService({ db, clock, members }),
    offers: createOffersService({ db, clock, members }),
    cashback: createCashbackService({ db, clock, money, payoutThresholdMinor: BigInt(config.CASHBACK_PAYOUT_THRESHOLD_MINOR) }),
    transactions: createCardTransactionsService({ db, clock, log, ledger, money, roundup, authExpiryDays: config.CARD_AUTH_EXPIRY_DAYS }),
  };
}

export type Banking = ReturnType<typeof createBanking>;
