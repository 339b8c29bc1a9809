import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";

/**
 * Client secrets: 256 random bits, shown once, stored only as a slow scrypt hash. The format names
 * what it is (`hcs_live_…`) so that secret scanners can find a leaked one.
 */
export function generateSecret(environment: "live" | "sandbox"): string {
  return `hcs_${environment}_${randomBytes(32).toString("base64url")}`;
}

const N = 16384;
const r = 8;
const p = 1;
const KEYLEN = 32;

function scryptAsync(secret: string, salt: Buffer, n: number, rr: number, pp: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(secret, salt, KEYLEN, { N: n, r: rr, p: pp, maxmem: 64 * 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(secret, salt, N, r, p);
  return `scrypt$${N}$${r}$${p}$${salt.toString("base64url")}$${key.toString("base64url")}`;
}

export async function verifySecret(secret: string, stored: string): Promise<boolean> {
  const [scheme, n, rr, pp, salt, key] = stored.split("$");
  if (scheme !== "scrypt" || !n || !rr || !pp || !salt || !key) return false;
  const expected = Buffer.from(key, "base64url");
  const actual = await scryptAsync(secret, Buffer.from(salt, "base64url"), Number(n), Number(rr), Number(pp));
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** The last four characters, to tell secrets apart in a list without revealing them. */
export function secretHint(secret: string): string {
  return `…${secret.slice(-4)}`;
}
