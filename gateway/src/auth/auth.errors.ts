import { AppError, defineErrors } from "../http/problem.ts";

/** Resource-server and management errors (problem+json). */
export const authErrors = defineErrors({
  "invalid-token": { status: 401, title: "The access token is not valid" },
  "client-not-found": { status: 404, title: "OAuth client not found" },
  "invalid-client-config": { status: 422, title: "The client configuration is not valid" },
  "unknown-scope": { status: 422, title: "Unknown scope" },
});

/**
 * Token-endpoint errors follow RFC 6749 §5.2: the body carries `error` and `error_description`,
 * which OAuth libraries read; it is still an RFC 9457 problem document around them.
 */
export type OAuthErrorCode = "invalid_request" | "invalid_client" | "invalid_grant" | "unauthorized_client" | "unsupported_grant_type" | "invalid_scope" | "invalid_dpop_proof" | "slow_down";

export function oauthError(error: OAuthErrorCode, description: string, headers: Record<string, string> = {}): AppError {
  const status = error === "invalid_client" ? 401 : error === "slow_down" ? 429 : 400;
  return new AppError(status, `oauth-${error.replace(/_/g, "-")}`, "OAuth request refused", description, { error, error_description: description }, headers);
}

/** A 401 for the resource server, with the RFC 6750 challenge. */
export function invalidToken(description: string, scheme: "Bearer" | "DPoP" = "Bearer"): AppError {
  return authErrors.make("invalid-token", description, {}, {
    "WWW-Authenticate": `${scheme} error="invalid_token", error_description="${description.replace(/"/g, "'")}"`,
  });
}
