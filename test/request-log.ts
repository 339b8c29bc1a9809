import { EventEmitter } from "node:events";
import type { Request, Response } from "express";
import type { RequestLog } from "../portal/src/request-log/request-log.ts";

/** One API call through the request log's middleware, as the API makes it: a partner's token, `POST /v1/earn`, answered with `status`. */
export function logCall(log: RequestLog, partnerId: string, requestId: string, status = 201): void {
  const req = { method: "POST", route: { path: "/v1/earn" } } as unknown as Request;
  const res = Object.assign(new EventEmitter(), {
    statusCode: status,
    locals: { principal: { partnerId, clientId: `cli_${partnerId}` }, requestId },
  }) as unknown as Response;
  log.middleware(req, res, () => undefined);
  res.emit("finish");
}
