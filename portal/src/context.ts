import type { Config } from "../../gateway/src/config/config.ts";
import type { Db } from "../../gateway/src/infra/db.ts";
import type { Clock } from "../../gateway/src/infra/clock.ts";
import type { Logger } from "../../gateway/src/infra/logger.ts";
import type { Spec } from "../../gateway/src/http/openapi.ts";
import type { RateLimiter } from "../../gateway/src/auth/rate-limit.ts";
import type { ClientsService } from "../../gateway/src/auth/clients.service.ts";
import type { createPartnersService } from "../../gateway/src/partners/partners.service.ts";
import type { createMembersService } from "../../gateway/src/members/members.service.ts";
import type { createCardsService } from "../../gateway/src/cards/cards.service.ts";
import type { WebhooksService } from "../../gateway/src/webhooks/webhooks.service.ts";
import type { createStatementsService } from "../../settlement/src/statements.service.ts";
import type { DisputesService } from "../../settlement/src/disputes.service.ts";
import type { PaymentCardsService } from "../../gateway/src/banking/payment-cards.service.ts";
import type { CardTransactionsService } from "../../gateway/src/banking/card-transactions.service.ts";
import type { MemberBalances } from "../../gateway/src/ledger/ledger.types.ts";
import type { PortalUsers } from "./users/users.service.ts";
import type { ConsoleServices } from "./console/services.ts";

/**
 * What the portal is given by hub.ts: the same service factories the API's handlers use. The
 * portal never reads or writes another feature's tables; it calls these services and so keeps
 * their rules (non-compete, scopes, another partner's object → not found).
 */
export interface PortalServices {
  partners: ReturnType<typeof createPartnersService>;
  members: ReturnType<typeof createMembersService>;
  cards: ReturnType<typeof createCardsService>;
  clients: ClientsService;
  /** Mints an access token for one of a partner's clients on the signed-in developer's behalf (try it). */
  issueTokenFor(clientId: string, requestId?: string): Promise<{ access_token: string; expires_in: number; scope: string }>;
  knownScopes: { partner: Set<string>; admin: Set<string> };
  webhooks: WebhooksService;
  statements: ReturnType<typeof createStatementsService>;
  /** Disputes of statement lines: a developer opens and follows its partner's; the console resolves them. */
  disputes: DisputesService;
  limiter: RateLimiter;
  /** The banking feature's payment cards and card-transactions ingest: the sandbox's test bank feed sends through them. */
  banking: { cards: PaymentCardsService; transactions: CardTransactionsService };
  /** A member's points balances (the ledger's read): the test bank feed shows its test members' points. */
  memberBalances(memberId: string): Promise<MemberBalances>;
  /** Points the partner issued and redeemed per UTC day (the ledger's read). */
  pointsPerDay(partnerId: string, from: Date): Promise<Array<{ day: string; issued: bigint; redeemed: bigint }>>;
  /** The operator console's services (rules, tiers, settlement, analytics, audit): console/services.ts. */
  console: ConsoleServices;
}

export interface PortalDeps {
  config: Config;
  db: Db;
  clock: Clock;
  log: Logger;
  spec: Spec;
  services: PortalServices;
}

/** What every page module gets. */
export interface PortalContext extends PortalDeps {
  users: PortalUsers;
}
