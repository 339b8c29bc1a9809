import { createLocalJWKSet, type JSONWebKeySet } from "jose";
import type { Db, DbOrTrx } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";
import { newId } from "../infra/ids.ts";
import { authErrors } from "./auth.errors.ts";
import { generateSecret, hashSecret, secretHint, verifySecret } from "./secrets.ts";

export type AuthMethod = "client_secret_basic" | "client_secret_post" | "private_key_jwt";

export interface OAuthClient {
  id: string;
  partner_id: string | null;
  audience: "partner" | "admin";
  name: string;
  scopes: string[];
  auth_method: AuthMethod;
  jwks: JSONWebKeySet | null;
  allowed_algs: string[];
  dpop_bound: boolean;
  status: "active" | "disabled";
  rate_limit_per_minute: number;
  environment: "live" | "sandbox";
  created_at: Date;
}

export interface NewClient {
  partnerId: string | null;
  name: string;
  scopes: string[];
  authMethod?: AuthMethod;
  jwks?: JSONWebKeySet;
  allowedAlgs?: string[];
  dpopBound?: boolean;
  rateLimitPerMinute?: number;
  environment?: "live" | "sandbox";
}

const COLUMNS = ["id", "partner_id", "audience", "name", "scopes", "auth_method", "jwks", "allowed_algs", "dpop_bound", "status", "rate_limit_per_minute", "environment", "created_at"];

/** A public JWKS only: private members would mean the client handed us its private key. */
export function checkPublicJwks(jwks: unknown): JSONWebKeySet {
  const set = jwks as JSONWebKeySet;
  if (!set || !Array.isArray(set.keys) || set.keys.length === 0) throw authErrors.make("invalid-client-config", "jwks must be a JWK Set with at least one key.");
  for (const k of set.keys) {
    if ("d" in k || "k" in k || "p" in k) throw authErrors.make("invalid-client-config", "jwks must hold public keys only; never send a private key.");
    if (!["EC", "RSA", "OKP"].includes(String(k.kty))) throw authErrors.make("invalid-client-config", `key type ${String(k.kty)} is not accepted.`);
  }
  try {
    createLocalJWKSet(set);
  } catch {
    throw authErrors.make("invalid-client-config", "jwks is not a valid JWK Set.");
  }
  return set;
}

/**
 * OAuth clients: created by the operator (or a partner through the portal), each bound to one
 * partner — or to the operator for the `admin` audience. Secrets are shown once and rotate with an
 * overlap window during which both work.
 */
export function createClientsService(deps: {
  db: Db;
  clock: Clock;
  knownScopes: { partner: Set<string>; admin: Set<string> };
  /** Called once a change to a client's status has committed (the token checks' cache forgets it). */
  onStateChange?: () => void;
}) {
  const { db, clock } = deps;

  async function audit(trx: DbOrTrx, actor: { type: string; id: string }, action: string, clientId: string, before: unknown, after: unknown, requestId?: string) {
    await trx("audit_log").insert({
      actor_type: actor.type,
      actor_id: actor.id,
      action,
      object_type: "oauth_client",
      object_id: clientId,
      before: before === null ? null : JSON.stringify(before),
      after: after === null ? null : JSON.stringify(after),
      request_id: requestId ?? null,
    });
  }

  async function get(id: string, trx: DbOrTrx = db): Promise<OAuthClient | undefined> {
    return trx("oauth_clients").where({ id }).first(COLUMNS);
  }

  return {
    get,

    async list(filter: { partnerId?: string | null } = {}): Promise<OAuthClient[]> {
      const q = db("oauth_clients").select(COLUMNS).orderBy("created_at");
      if (filter.partnerId !== undefined) q.where({ partner_id: filter.partnerId });
      return q;
    },

    /** Creates a client; returns it with its secret (shown this once) unless it uses private_key_jwt. */
    async create(input: NewClient, actor: { type: string; id: string }, requestId?: string): Promise<{ client: OAuthClient; secret?: string }> {
      const audience = input.partnerId ? "partner" : "admin";
      const allowed = deps.knownScopes[audience];
      const unknown = input.scopes.filter((s) => !allowed.has(s));
      if (unknown.length) throw authErrors.make("unknown-scope", `Unknown ${audience} scope(s): ${unknown.join(", ")}.`, { scopes: unknown });
      const authMethod = input.authMethod ?? "client_secret_basic";
      const jwks = authMethod === "private_key_jwt" ? checkPublicJwks(input.jwks) : input.jwks ? checkPublicJwks(input.jwks) : null;
      const env = input.environment ?? "live";
      return db.transaction(async (trx) => {
        const id = newId(env === "sandbox" ? "cli_test" : "cli");
        await trx("oauth_clients").insert({
          id,
          partner_id: input.partnerId,
          audience,
          name: input.name,
          scopes: input.scopes,
          auth_method: authMethod,
          jwks: jwks ? JSON.stringify(jwks) : null,
          allowed_algs: input.allowedAlgs ?? ["ES256", "PS256", "EdDSA"],
          dpop_bound: input.dpopBound ?? false,
          rate_limit_per_minute: input.rateLimitPerMinute ?? 6000,
          environment: env,
        });
        let secret: string | undefined;
        if (authMethod !== "private_key_jwt") {
          secret = generateSecret(env);
          await trx("oauth_client_secrets").insert({ id: newId("sec"), client_id: id, hash: await hashSecret(secret), hint: secretHint(secret) });
        }
        const client = (await get(id, trx))!;
        await audit(trx, actor, "oauth_client.created", id, null, client, requestId);
        return { client, ...(secret ? { secret } : {}) };
      });
    },

    /** A new secret; the old ones keep working for `overlapSeconds`, then stop. */
    async rotateSecret(clientId: string, overlapSeconds: number, actor: { type: string; id: string }, requestId?: string) {
      return db.transaction(async (trx) => {
        const client = await trx("oauth_clients").where({ id: clientId }).forUpdate().first(COLUMNS);
        if (!client) throw authErrors.make("client-not-found", `No client ${clientId}.`);
        if (client.auth_method === "private_key_jwt") throw authErrors.make("invalid-client-config", "This client authenticates with private_key_jwt; rotate its JWKS instead.");
        const until = new Date(clock.now().getTime() + overlapSeconds * 1000);
        await trx("oauth_client_secrets")
          .where({ client_id: clientId })
          .andWhere((q) => q.whereNull("expires_at").orWhere("expires_at", ">", until))
          .update({ expires_at: until });
        const secret = generateSecret(client.environment);
        await trx("oauth_client_secrets").insert({ id: newId("sec"), client_id: clientId, hash: await hashSecret(secret), hint: secretHint(secret) });
        await audit(trx, actor, "oauth_client.secret_rotated", clientId, null, { previous_secrets_expire_at: until.toISOString(), hint: secretHint(secret) }, requestId);
        return { secret, previousSecretsExpireAt: until };
      });
    },

    async setStatus(clientId: string, status: "active" | "disabled", actor: { type: string; id: string }, requestId?: string): Promise<OAuthClient> {
      const after = await db.transaction(async (trx) => {
        const before = await trx("oauth_clients").where({ id: clientId }).forUpdate().first(COLUMNS);
        if (!before) throw authErrors.make("client-not-found", `No client ${clientId}.`);
        await trx("oauth_clients").where({ id: clientId }).update({ status, updated_at: clock.now() });
        const after = (await get(clientId, trx))!;
        await audit(trx, actor, status === "disabled" ? "oauth_client.disabled" : "oauth_client.enabled", clientId, before, after, requestId);
        return after;
      });
      deps.onStateChange?.();
      return after;
    },

    async setJwks(clientId: string, jwks: unknown, actor: { type: string; id: string }, requestId?: string): Promise<OAuthClient> {
      const checked = checkPublicJwks(jwks);
      return db.transaction(async (trx) => {
        const before = await trx("oauth_clients").where({ id: clientId }).forUpdate().first(COLUMNS);
        if (!before) throw authErrors.make("client-not-found", `No client ${clientId}.`);
        await trx("oauth_clients").where({ id: clientId }).update({ jwks: JSON.stringify(checked), updated_at: clock.now() });
        const after = (await get(clientId, trx))!;
        await audit(trx, actor, "oauth_client.jwks_set", clientId, { jwks: before.jwks }, { jwks: after.jwks }, requestId);
        return after;
      });
    },

    /** True when the secret is one of the client's live secrets. Constant work for unknown clients. */
    async checkSecret(clientId: string, secret: string): Promise<boolean> {
      const rows: Array<{ hash: string }> = await db("oauth_client_secrets")
        .where({ client_id: clientId })
        .andWhere((q) => q.whereNull("expires_at").orWhere("expires_at", ">", clock.now()))
        .select("hash");
      if (rows.length === 0) {
        await verifySecret(secret, "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        return false;
      }
      for (const r of rows) if (await verifySecret(secret, r.hash)) return true;
      return false;
    },

    async secrets(clientId: string) {
      return db("oauth_client_secrets").where({ client_id: clientId }).select("id", "hint", "created_at", "expires_at").orderBy("created_at");
    },
  };
}

export type ClientsService = ReturnType<typeof createClientsService>;
