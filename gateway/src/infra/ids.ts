import { randomFillSync } from "node:crypto";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lower case

// Random bytes are drawn from the OS a pool at a time: one call per 409 ids rather than one per id
// (a clearing file makes several ids per event).
const pool = Buffer.alloc(4090);
let used = pool.length;

/** 40 random bits (five pool bytes) as 8 base32 characters. */
function rand40(): string {
  // 2^40 fits a double exactly; no BigInt on this path.
  let v = pool[used]! * 2 ** 32 + ((pool[used + 1]! << 24) >>> 0) + (pool[used + 2]! << 16) + (pool[used + 3]! << 8) + pool[used + 4]!;
  used += 5;
  let s = "";
  for (let i = 0; i < 8; i++) {
    s = ALPHABET[v % 32]! + s;
    v = Math.floor(v / 32);
  }
  return s;
}

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
  if (used + 10 > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  return `${prefix}_${time}${rand40()}${rand40()}`;
}
