import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lower case

/**
 * Identifiers are `prefix_` + 26 characters: 48 bits of milliseconds then 80 random bits,
 * Crockford base32. They sort by creation time (cursor pagination relies on it) and cannot be
 * guessed. The prefix tells a reader what an id names (`mem_`, `ptn_`, `evt_`…).
 */
export function newId(prefix: string, now: number = Date.now()): string {
  let time = "";
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  const bytes = randomBytes(10);
  let rand = "";
  let acc = 0n;
  for (const b of bytes) acc = (acc << 8n) | BigInt(b);
  for (let i = 0; i < 16; i++) {
    rand = ALPHABET[Number(acc & 31n)]! + rand;
    acc >>= 5n;
  }
  return `${prefix}_${time}${rand}`;
}
