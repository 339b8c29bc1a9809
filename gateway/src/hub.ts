import http, { type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Express } from "express";
import Stripe from "stripe";
import swaggerUi from "swagger-ui-express";
import type { Config } from "./config/config.ts";
import { pgliteOf, type Db } from "./infra/db.ts";
import type { Logger } from "./infra/logger.ts";
import type { Clock } from "./infra/clock.ts";
import type { JobQueue } from "./infra/queue/queue.types.ts";
import { createOutboxRelay, type OutboxRelay } from "./infra/outbox/outbox.ts";
import { loadSpec, type Operation, type Spec } from "./http/openapi.ts";
import { createApiRouter, type Handlers } from "./http/router.ts";
import { notFound, problemHandler } from "./http/errors.middleware.ts";
import { baseMiddleware, createBaseApp } from "./http/base-app.ts";
import { createHotPath } from "./http/hot-path.ts";
import { healthRoutes } from "./health/health.routes.ts";
import { registerSystemJobs } from "./system/system.jobs.ts";
import { createLedger } from "./ledger/ledger.service.ts";
import { createIdempotency } from "./idempotency/idempotency.service.ts";
import { createEarnService } from "./earn/earn.service.ts";
import { earnRoutes } from "./earn/earn.routes.ts";
import { createEarnBatch } from "./earn/earn.batch.ts";
import { createDirectBurn } from "./earn/burn.direct.ts";
import { registerEarnJobs } from "./earn/earn.jobs.ts";
import { createAuth, type Auth } from "./auth/auth.module.ts";
import { authRoutes } from "./auth/auth.routes.ts";
import { createPartnersService } from "./partners/partners.service.ts";
import { partnersRoutes } from "./partners/partners.routes.ts";
import { createMembersService } from "./members/members.service.ts";
import { createProgrammeService } from "./members/programme.service.ts";
import { membersRoutes } from "./members/members.routes.ts";
import { createCardResolver, createCardsService, createNetworkMemberAccess } from "./cards/cards.service.ts";
import { cardsRoutes } from "./cards/cards.routes.ts";
import { createWebhooksService } from "./webhooks/webhooks.service.ts";
import { webhooksRoutes } from "./webhooks/webhooks.routes.ts";
import { registerWebhookWorkers } from "./webhooks/webhooks.workers.ts";
import { createEventFeed } from "./events/events.feed.ts";
import { eventsRoutes } from "./events/events.routes.ts";
import { createClearingService, type ClearingHooks } from "../../settlement/src/clearing.service.ts";
import { createStatementsService } from "../../settlement/src/statements.service.ts";
import { settlementRoutes } from "../../settlement/src/settlement.routes.ts";
import { registerSettlementJobs } from "../../settlement/src/settlement.jobs.ts";
import { createCreditTransfers } from "../../settlement/src/credit-transfers.service.ts";
import { createDisputesService } from "../../settlement/src/disputes.service.ts";
import { disputesRoutes } from "../../settlement/src/disputes.routes.ts";
import { createPaymentsService } from "../../settlement/src/payments.service.ts";
import { createStripeRail } from "../../settlement/src/stripe-rail.ts";
import { createReconciliationService } from "../../settlement/src/reconciliation.service.ts";
import { paymentsRoutes, stripeWebhookRoute } from "../../settlement/src/payments.routes.ts";
import { registerPaymentJobs } from "../../settlement/src/payments.jobs.ts";
import { createTiersService } from "./rules/tiers.service.ts";
import { createRulesService } from "./rules/rules.service.ts";
import { createDrawsService } from "./rules/draws.service.ts";
import { rulesRoutes } from "./rules/rules.routes.ts";
import { registerRulesJobs } from "./rules/rules.jobs.ts";
import { createMembershipService } from "./rules/membership.service.ts";
import { membershipRoutes } from "./rules/membership.routes.ts";
import { createBanking } from "./banking/banking.module.ts";
import { bankingRoutes } from "./banking/banking.routes.ts";
import { registerBankingJobs } from "./banking/banking.jobs.ts";
import { assertNoPan } from "./banking/pan-guard.ts";
import { createPortal } from "../../portal/src/portal.ts";
import { listAudit, writeAudit } from "./partners/audit.service.ts";
import { createAnalyticsService } from "./analytics/analytics.service.ts";
import { createRunsReader } from "../../settlement/src/runs.service.ts";

export interface HubDeps {
  config: Config;
  db: Db;
  queue: JobQueue;
  log: Logger;
  clock: Clock;
  /** Step hooks of the clearing run (crash injection in tests); none in a live hub. */
  clearingHooks?: ClearingHooks;
}

export interface Hub {
  /** The Express app: every route. */
  app: Express;
  /** What the HTTP server runs: the hot path for `POST /v1/earn`, the app for the rest (hot-path.ts). */
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** An HTTP server on `handler`, listening. */
  listen(port: number, host?: string): Server;
  spec: Spec;
  operations: Operation[];
  relay: OutboxRelay;
  auth: Auth;
  /** Prepares what every role needs before serving (signing keys). */
  init(): Promise<void>;
  /** Consume the queues and relay the outbox in this process (the worker role). */
  startWorkers(): void;
  stopWorkers(): Promise<void>;
  /** Releases connections the hub opened itself (the rate limiter's, the client state listener's). */
  close(): Promise<void>;
}

/**
 * Assembles the hub from its features. The same assembly serves the embedded single process, the
 * API role and the worker role; only which parts are started differs (see main.ts).
 */
export function createHub(deps: HubDeps): Hub {
  const { config, log } = deps;
  const spec = loadSpec();

  const auth = createAuth(deps, spec);

  const ledger = createLedger({ db: deps.db, log });
  const idempotency = createIdempotency({ db: deps.db });
  // Members by id or by card number, as the network resolves them; shared by earn and the rules.
  const memberAccess = createNetworkMemberAccess(deps);
  const stripe = stripeClient(config);
  // The rules feature is the earn service's EarnRules: base rate, campaigns, tier multiplier.
  const memberships = createMembershipService({
    db: deps.db,
    clock: deps.clock,
    log,
    members: memberAccess,
    stripe,
    webhookSecret: config.STRIPE_WEBHOOK_SECRET ?? null,
  });
  const tiers = createTiersService({ db: deps.db, clock: deps.clock, paidTier: memberships.paidTier });
  const rules = createRulesService({ db: deps.db, clock: deps.clock, ledger, members: memberAccess, tiers });
  const draws = createDrawsService({ db: deps.db, clock: deps.clock });
  const earn = createEarnService({ db: deps.db, clock: deps.clock, log, ledger, members: memberAccess, rules: rules.earnRules });
  // Pipelined on PostgreSQL (earn.batch.ts: two batches, one running, the next queued behind it);
  // PGlite has one connection, one batch at a time.
  const earnPipeline = pgliteOf(deps.db) ? 0 : config.EARN_BATCH_PIPELINE;
  const earnBatch =
    config.EARN_BATCH_MAX_ITEMS > 1
      ? createEarnBatch({
          db: deps.db,
          clock: deps.clock,
          log,
          rules: rules.earnRules,
          earn,
          idempotency,
          options: {
            maxItems: config.EARN_BATCH_MAX_ITEMS,
            maxWaitMs: config.EARN_BATCH_MAX_WAIT_MS,
            maxInFlight: config.EARN_BATCH_MAX_IN_FLIGHT,
            pipeline: earnPipeline,
          },
        })
      : undefined;
  const directBurn = config.BURN_ONE_STATEMENT ? createDirectBurn({ db: deps.db, clock: deps.clock, log, earn, idempotency, batchMaxItems: config.BURN_BATCH_MAX_ITEMS }) : undefined;
  const webhooks = createWebhooksService({ ...deps, onEnqueued: () => relay.nudge() });
  const clearing = createClearingService({ db: deps.db, clock: deps.clock, log, ...(deps.clearingHooks ? { hooks: deps.clearingHooks } : {}) });
  const statements = createStatementsService({ db: deps.db });
  const disputes = createDisputesService({ db: deps.db, clock: deps.clock });
  const payments = createPaymentsService({ db: deps.db, clock: deps.clock, log });
  const stripeRail = createStripeRail({ db: deps.db, clock: deps.clock, log, stripe, payments });
  const reconciliation = createReconciliationService({ db: deps.db, clock: deps.clock, log, payments, stripeRail });
  const banking = createBanking({ ...deps, ledger });
  const partners = createPartnersService(deps);
  const members = createMembersService({ ...deps, resolveCard: createCardResolver(deps) });
  const cards = createCardsService(deps);

  const handlers: Handlers = {
    ...healthRoutes(deps),
    // --- handlers: auth ---
    ...authRoutes(deps, auth),

    // --- handlers: network ---
    ...partnersRoutes(partners),
    ...membersRoutes(members, createProgrammeService(deps)),
    ...cardsRoutes(cards),

    // --- handlers: ledger ---
    ...earnRoutes({ earn, idempotency, ...(earnBatch ? { batch: earnBatch } : {}), ...(directBurn ? { directBurn } : {}) }),

    // --- handlers: webhooks ---
    ...eventsRoutes({ feed: createEventFeed(deps) }),
    ...webhooksRoutes({ webhooks }),

    // --- handlers: settlement ---
    ...settlementRoutes({ clearing, statements, creditTransfers: createCreditTransfers({ db: deps.db, clock: deps.clock }) }),
    ...disputesRoutes({ disputes, idempotency }),
    ...paymentsRoutes({ db: deps.db, clock: deps.clock, idempotency, payments, reconciliation }),

    // --- handlers: rules ---
    ...rulesRoutes({ db: deps.db, rules, tiers, draws, idempotency, members: memberAccess }),
    ...membershipRoutes(memberships),
    // One Stripe endpoint: settlement's events to the Stripe rail, the rest to memberships.
    ...stripeWebhookRoute({ db: deps.db, stripe, webhookSecret: config.STRIPE_WEBHOOK_SECRET ?? null, stripeRail, memberships }),

    // --- handlers: banking ---
    ...bankingRoutes({ db: deps.db, idempotency, ...banking }),
  };

  const { router, operations, hot } = createApiRouter({
    spec,
    handlers,
    authenticate: auth.authenticate,
    validateResponses: config.NODE_ENV !== "production",
    log,
    bodyLimit: config.BODY_LIMIT,
    // Banks' routes and card-linked offers never see a full card number, not even in an error.
    beforeValidate: (op, parts) => {
      if (op.path.startsWith("/v1/bank/") || op.path.startsWith("/v1/card-offers")) assertNoPan(parts);
    },
    hotOperations: ["earnPoints", "burnPoints"],
  });

  const app = createBaseApp(log);

  app.get("/openapi.json", (_req, res) => {
    res.json(spec);
  });
  app.use("/docs", swaggerUi.serveFiles(spec, { swaggerOptions: { persistAuthorization: true } }), swaggerUi.setup(spec, { customSiteTitle: "Coalition Loyalty Hub API" }));
  // The developer portal and operator console: HTML pages on the same services the API uses.
  const portal = createPortal({
    ...deps,
    spec,
    services: {
      partners,
      members,
      cards,
      clients: auth.clients,
      issueTokenFor: (clientId, requestId) => auth.oauth.issueFor(clientId, requestId),
      knownScopes: auth.knownScopes,
      webhooks,
      statements,
      disputes,
      limiter: auth.limiter,
      banking: { cards: banking.cards, transactions: banking.transactions },
      memberBalances: (memberId) => ledger.balances(deps.db, memberId),
      pointsPerDay: (partnerId, from) => ledger.pointsPerDay(deps.db, partnerId, from),
      console: {
        rules,
        tiers,
        clearing,
        statements,
        creditTransfers: createCreditTransfers({ db: deps.db, clock: deps.clock }),
        runs: createRunsReader({ db: deps.db }),
        analytics: createAnalyticsService({ db: deps.db, clock: deps.clock }),
        audit: { record: (actor, entry) => writeAudit(deps.db, actor, entry), list: (q) => listAudit(deps.db, q) },
        payments,
        reconciliation,
      },
    },
  });
  app.use("/portal", portal.router);
  app.use(portal.requestLog.middleware);
  app.use(router);
  app.use(notFound());
  app.use(problemHandler(log));
  // The app's own steps up to the API router, less the routes that never match an API path
  // (/openapi.json, /docs, /portal): the hot path runs them as the app would.
  const handler = createHotPath({
    routes: hot,
    before: [...baseMiddleware(log), portal.requestLog.middleware],
    onError: problemHandler(log),
    bodyLimit: config.BODY_LIMIT,
    fallback: (req, res) => void app(req as Parameters<Express>[0], res as Parameters<Express>[1]),
  });

  const relay = createOutboxRelay({
    db: deps.db,
    queue: deps.queue,
    log,
    pollMs: config.OUTBOX_POLL_MS,
    // Queue-level retries cover a worker's own failures (a database hiccup), not the partner's:
    // webhook retries are scheduled in the delivery rows. Settlement steps are idempotent, so a
    // transient failure (a lost connection) is retried too.
    defaults: {
      "events.dispatch": { attempts: 8, backoffMs: 2_000 },
      "webhooks.deliver": { attempts: 3, backoffMs: 2_000 },
      "settlement.run": { attempts: 5, backoffMs: 2_000 },
      "settlement.clear": { attempts: 5, backoffMs: 2_000 },
      "settlement.stripe-pay": { attempts: 8, backoffMs: 5_000 },
    },
  });
  let webhookWorkers: { stop(): void } | undefined;

  return {
    app,
    handler,
    listen: (port, host) => http.createServer(handler).listen(port, host),
    spec,
    operations,
    relay,
    auth,
    async init() {
      await auth.keys.ensure();
    },
    startWorkers() {
      registerSystemJobs(deps);
      // --- workers: auth ---

      // --- workers: network ---

      // --- workers: ledger ---
      registerEarnJobs(deps, earn);

      // --- workers: webhooks ---
      webhookWorkers = registerWebhookWorkers(deps, webhooks);

      // --- workers: settlement ---
      registerSettlementJobs(deps, clearing);
      registerPaymentJobs(deps, stripeRail);

      // --- workers: rules ---
      registerRulesJobs(deps, rules, tiers, memberships);

      // --- workers: banking ---
      registerBankingJobs(deps, banking);
      relay.start();
    },
    async stopWorkers() {
      webhookWorkers?.stop();
      await relay.stop();
    },
    async close() {
      await earnBatch?.close();
      await portal.close();
      await auth.limiter.close();
      await auth.clientStates.close();
    },
  };
}

/** Stripe's SDK, pointed at STRIPE_API_URL when set (a local stand-in or stripe-mock); null without a key. */
function stripeClient(config: Config): Stripe | null {
  if (!config.STRIPE_SECRET_KEY) return null;
  const base = config.STRIPE_API_URL ? new URL(config.STRIPE_API_URL) : null;
  return new Stripe(config.STRIPE_SECRET_KEY, {
    maxNetworkRetries: 2,
    timeout: 20_000,
    ...(base ? { host: base.hostname, port: Number(base.port || (base.protocol === "https:" ? 443 : 80)), protocol: base.protocol === "https:" ? "https" : "http" } : {}),
  });
}
