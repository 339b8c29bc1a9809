import express, { type Express } from "express";
import swaggerUi from "swagger-ui-express";
import type { Config } from "./config/config.ts";
import type { Db } from "./infra/db.ts";
import type { Logger } from "./infra/logger.ts";
import type { Clock } from "./infra/clock.ts";
import type { JobQueue } from "./infra/queue/queue.types.ts";
import { createOutboxRelay, type OutboxRelay } from "./infra/outbox/outbox.ts";
import { loadSpec, type Operation, type Spec } from "./http/openapi.ts";
import { createApiRouter, type Handlers } from "./http/router.ts";
import { notFound, problemHandler } from "./http/errors.middleware.ts";
import { requestContext } from "./http/request-context.middleware.ts";
import { healthRoutes } from "./health/health.routes.ts";
import { registerSystemJobs } from "./system/system.jobs.ts";
import { createLedger } from "./ledger/ledger.service.ts";
import { createIdempotency } from "./idempotency/idempotency.service.ts";
import { createEarnService } from "./earn/earn.service.ts";
import { earnRoutes } from "./earn/earn.routes.ts";
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
import { createBanking } from "./banking/banking.module.ts";
import { bankingRoutes } from "./banking/banking.routes.ts";
import { registerBankingJobs } from "./banking/banking.jobs.ts";
import { assertNoPan } from "./banking/pan-guard.ts";

export interface HubDeps {
  config: Config;
  db: Db;
  queue: JobQueue;
  log: Logger;
  clock: Clock;
}

export interface Hub {
  app: Express;
  spec: Spec;
  operations: Operation[];
  relay: OutboxRelay;
  auth: Auth;
  /** Prepares what every role needs before serving (signing keys). */
  init(): Promise<void>;
  /** Consume the queues and relay the outbox in this process (the worker role). */
  startWorkers(): void;
  stopWorkers(): Promise<void>;
  /** Releases connections the hub opened itself (the rate limiter's). */
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
  const earn = createEarnService({ db: deps.db, clock: deps.clock, log, ledger, members: createNetworkMemberAccess(deps) });
  const banking = createBanking({ ...deps, ledger });

  const handlers: Handlers = {
    ...healthRoutes(deps),
    // --- handlers: auth ---
    ...authRoutes(deps, auth),

    // --- handlers: network ---
    ...partnersRoutes(createPartnersService(deps)),
    ...membersRoutes(createMembersService({ ...deps, resolveCard: createCardResolver(deps) }), createProgrammeService(deps)),
    ...cardsRoutes(createCardsService(deps)),

    // --- handlers: ledger ---
    ...earnRoutes({ earn, idempotency }),

    // --- handlers: webhooks ---

    // --- handlers: banking ---
    ...bankingRoutes({ db: deps.db, idempotency, ...banking }),
  };

  const { router, operations } = createApiRouter({
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
  });

  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", false);
  app.set("query parser", "extended");
  app.use(...requestContext(log));
  app.use((_req, res, next) => {
    res.setHeader("X-Content-Type-Options", "nosniff");
    res.setHeader("Referrer-Policy", "no-referrer");
    next();
  });

  app.get("/openapi.json", (_req, res) => {
    res.json(spec);
  });
  app.use("/docs", swaggerUi.serveFiles(spec, { swaggerOptions: { persistAuthorization: true } }), swaggerUi.setup(spec, { customSiteTitle: "Coalition Loyalty Hub API" }));
  app.use(router);
  app.use(notFound());
  app.use(problemHandler(log));

  const relay = createOutboxRelay({ db: deps.db, queue: deps.queue, log, pollMs: config.OUTBOX_POLL_MS });

  return {
    app,
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

      // --- workers: banking ---
      registerBankingJobs(deps, banking);
      relay.start();
    },
    async stopWorkers() {
      await relay.stop();
    },
    async close() {
      await auth.limiter.close();
    },
  };
}
