import express, { type Express, type RequestHandler } from "express";
import type { Logger } from "../infra/logger.ts";
import { requestContext } from "./request-context.middleware.ts";

/**
 * The Express app every hub serves from, before any route: no `X-Powered-By`, no trusted proxy
 * headers, nested query strings, the request id and its one log line, and the security headers on
 * every answer. The hub (hub.ts) and `npm run bench:http` build on it, so the bench measures the
 * stack the hub runs.
 */
export function createBaseApp(log: Logger): Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", false);
  app.set("query parser", "extended");
  app.use(...baseMiddleware(log));
  return app;
}

/** The steps every request goes through first: its id and log line, the security headers. The hot path (hot-path.ts) runs them too. */
export function baseMiddleware(log: Logger): RequestHandler[] {
  const securityHeaders: RequestHandler = (_req, res, next) => {
    res.setHeader("X-Content-Type-Options", "nosniff");
    res.setHeader("Referrer-Policy", "no-referrer");
    next();
  };
  return [...requestContext(log), securityHeaders];
}
