import type { Request } from "express";
import { Strategy } from "passport-strategy";
import type { Principal } from "../http/router.ts";

/**
 * The passport strategy of the resource server: hands the request to the token verifier (jose, in
 * oauth.service.ts) and turns its answer into passport's success or error.
 */
export class HubBearerStrategy extends Strategy {
  name = "hub-bearer";

  constructor(private readonly verify: (req: Request) => Promise<Principal>) {
    super();
  }

  override authenticate(req: Request): void {
    this.verify(req).then(
      (principal) => this.success(principal),
      (err: unknown) => this.error(err as Error),
    );
  }
}
