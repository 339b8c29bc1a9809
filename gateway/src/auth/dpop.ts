import { createHash } from "node:crypto";
import { calculateJwkThumbprint, decodeProtectedHeader, importJWK, jwtVerify, type JWK } from "jose";
import type { Db } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";

export const DPOP_ALGS = ["ES256", "PS256", "EdDSA"];
const MAX_AGE_S = 60;

export class DpopError extends Error {}

/** The URI a proof must name: scheme, host and path, without query or fragment (RFC 9449 §4.3). */
export function htuOf(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/**
 * Verifies a DPoP proof (RFC 9449) for one HTTP request and consumes its jti, so a proof works
 * once. Returns the thumbprint (jkt) of the key that signed it.
 */
export async function verifyDpopProof(
  deps: { db: Db; clock: Clock },
  proof: string,
  expect: { method: string; url: string; accessToken?: string },
): Promise<string> {
  let header;
  try {
    header = decodeProtectedHeader(proof);
  } catch {
    throw new DpopError("the DPoP proof is not a JWT");
  }
  if (header.typ !== "dpop+jwt") throw new DpopError("the DPoP proof must have typ dpop+jwt");
  if (!header.alg || !DPOP_ALGS.includes(header.alg)) throw new DpopError(`the DPoP proof's alg must be one of ${DPOP_ALGS.join(", ")}`);
  const jwk = header.jwk as JWK | undefined;
  if (!jwk || typeof jwk !== "object" || "d" in jwk || "k" in jwk) throw new DpopError("the DPoP proof must carry a public jwk");
  let payload;
  try {
    const key = await importJWK(jwk, header.alg);
    ({ payload } = await jwtVerify(proof, key, { typ: "dpop+jwt", algorithms: DPOP_ALGS, currentDate: deps.clock.now() }));
  } catch {
    throw new DpopError("the DPoP proof's signature does not verify");
  }
  const now = Math.floor(deps.clock.now().getTime() / 1000);
  if (typeof payload.iat !== "number" || Math.abs(now - payload.iat) > MAX_AGE_S) throw new DpopError("the DPoP proof is too old or from the future");
  if (payload.htm !== expect.method) throw new DpopError("the DPoP proof's htm does not match the request method");
  if (typeof payload.htu !== "string" || htuOf(payload.htu) !== htuOf(expect.url)) throw new DpopError("the DPoP proof's htu does not match the request URL");
  if (typeof payload.jti !== "string" || payload.jti.length < 8 || payload.jti.length > 256) throw new DpopError("the DPoP proof needs a jti");
  if (expect.accessToken !== undefined) {
    const ath = createHash("sha256").update(expect.accessToken).digest("base64url");
    if (payload.ath !== ath) throw new DpopError("the DPoP proof's ath does not match the access token");
  }
  const jkt = await calculateJwkThumbprint(jwk, "sha256");
  const inserted = await deps.db("oauth_used_jtis")
    .insert({ kind: "dpop", issuer: jkt, jti: payload.jti, expires_at: new Date((now + MAX_AGE_S * 2) * 1000) })
    .onConflict(["kind", "issuer", "jti"])
    .ignore()
    .returning("jti");
  if (inserted.length === 0) throw new DpopError("the DPoP proof was already used");
  return jkt;
}
