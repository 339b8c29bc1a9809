import { exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from "jose";
import type { Db } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";
import type { Logger } from "../infra/logger.ts";
import { newId } from "../infra/ids.ts";

export const SIGNING_ALG = "ES256";

interface KeyRow {
  kid: string;
  alg: string;
  public_jwk: JWK;
  private_jwk: JWK;
  status: "next" | "active" | "retired";
  unpublish_after: Date | null;
}

/**
 * The hub's token-signing keys. There is always a published `next` key, so a rotation promotes a
 * key every verifier already knows: no request fails for an unknown kid. A retired key stays
 * published for one token lifetime plus a margin. Private keys leave this module only as CryptoKey
 * objects for signing; they are never logged or served.
 */
export function createKeyStore(deps: { db: Db; clock: Clock; log: Logger; tokenTtlSeconds: number }) {
  const { db, clock, log } = deps;
  // How stale a process's view of the keys may be; the retirement window covers it.
  const CACHE_MS = 30_000;
  const RETIRE_MARGIN_S = 120;
  let cache: { at: number; rows: KeyRow[] } | undefined;
  let lastReload = 0;
  let reloading: Promise<KeyRow[]> | undefined;
  const imported = new Map<string, Promise<CryptoKey>>();

  async function newKeyRow(status: "next" | "active") {
    const { publicKey, privateKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
    const kid = newId("key");
    const pub = { ...(await exportJWK(publicKey)), kid, alg: SIGNING_ALG, use: "sig" };
    const priv = { ...(await exportJWK(privateKey)), kid, alg: SIGNING_ALG };
    return { kid, alg: SIGNING_ALG, public_jwk: JSON.stringify(pub), private_jwk: JSON.stringify(priv), status, ...(status === "active" ? { activated_at: clock.now() } : {}) };
  }

  async function load(): Promise<KeyRow[]> {
    const rows: KeyRow[] = await db("signing_keys")
      .select("kid", "alg", "public_jwk", "private_jwk", "status", "unpublish_after")
      .where((q) => q.whereIn("status", ["next", "active"]).orWhere("unpublish_after", ">", clock.now()));
    cache = { at: Date.now(), rows };
    return rows;
  }

  async function rows(): Promise<KeyRow[]> {
    if (cache && Date.now() - cache.at < CACHE_MS) return cache.rows;
    return load();
  }

  function privateKey(row: KeyRow): Promise<CryptoKey> {
    let k = imported.get(`priv:${row.kid}`);
    if (!k) {
      k = importJWK(row.private_jwk, row.alg) as Promise<CryptoKey>;
      imported.set(`priv:${row.kid}`, k);
    }
    return k;
  }

  return {
    /** Makes sure a signing key and a next key exist (every process calls it at boot). */
    async ensure(): Promise<void> {
      for (const status of ["active", "next"] as const) {
        const have = await db("signing_keys").where({ status }).first("kid");
        if (!have) {
          await db("signing_keys")
            .insert(await newKeyRow(status))
            .onConflict(db.raw("(status) WHERE status = ?", [status]))
            .ignore();
        }
      }
      await load();
    },

    /** Promotes the next key to signing, retires the current one, and publishes a new next key. */
    async rotate(): Promise<{ activated: string; retired: string | null; next: string }> {
      const result = await db.transaction(async (trx) => {
        const keys: KeyRow[] = await trx("signing_keys").whereIn("status", ["active", "next"]).forUpdate().select("kid", "status");
        const active = keys.find((k) => k.status === "active");
        const next = keys.find((k) => k.status === "next");
        if (!next) throw new Error("no next key to promote; run ensure() first");
        const now = clock.now();
        if (active) {
          await trx("signing_keys")
            .where({ kid: active.kid })
            .update({ status: "retired", retired_at: now, unpublish_after: new Date(now.getTime() + (deps.tokenTtlSeconds + RETIRE_MARGIN_S) * 1000 + CACHE_MS) });
        }
        await trx("signing_keys").where({ kid: next.kid }).update({ status: "active", activated_at: now });
        const fresh = await newKeyRow("next");
        await trx("signing_keys").insert(fresh);
        await trx("audit_log").insert({
          actor_type: "system",
          actor_id: "key-rotation",
          action: "signing_key.rotated",
          object_type: "signing_key",
          object_id: next.kid,
          before: JSON.stringify({ active: active?.kid ?? null }),
          after: JSON.stringify({ active: next.kid, next: fresh.kid }),
        });
        return { activated: next.kid, retired: active?.kid ?? null, next: fresh.kid };
      });
      await load();
      log.info(result, "signing keys rotated");
      return result;
    },

    /** The key to sign with now. */
    async signingKey(): Promise<{ kid: string; key: CryptoKey }> {
      let active = (await rows()).find((r) => r.status === "active");
      if (!active) active = (await load()).find((r) => r.status === "active");
      if (!active) throw new Error("no active signing key");
      return { kid: active.kid, key: await privateKey(active) };
    },

    /** The public JWKS: next, active, and retired keys still within their window. */
    async jwks(): Promise<{ keys: JWK[] }> {
      return { keys: (await rows()).map((r) => r.public_jwk) };
    },

    /**
     * A published public key by kid; reloads (at most once a second) when a kid is unknown. Requests
     * that meet an unknown kid while a reload is in flight wait for that reload: they must not be
     * refused by the throttle on the strength of a view that the reload is about to replace.
     */
    async publicKey(kid: string): Promise<JWK | undefined> {
      let row = (await rows()).find((r) => r.kid === kid);
      if (!row && reloading) row = (await reloading).find((r) => r.kid === kid);
      if (!row && Date.now() - lastReload > 1_000) {
        lastReload = Date.now();
        reloading = load().finally(() => (reloading = undefined));
        row = (await reloading).find((r) => r.kid === kid);
      }
      if (row && row.unpublish_after && row.unpublish_after <= clock.now()) return undefined;
      return row?.public_jwk;
    },
  };
}

export type KeyStore = ReturnType<typeof createKeyStore>;
