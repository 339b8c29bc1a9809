import { createHash } from "node:crypto";

/**
 * The published arithmetic of a prize draw, shared by the hub and `scripts/verify-draw.ts` so that
 * anyone can re-derive the winners from what the hub publishes:
 *
 *  - commitment   = sha256(seed bytes), hex — announced when the draw is created, before entries close
 *  - entry_code   = sha256("<draw_id>:<transaction_id>"), hex — one per qualifying purchase
 *  - entries      = the entry codes sorted ascending (byte order of the hex text)
 *  - entries_hash = sha256(entries joined by "\n"), hex — published when entries close
 *  - winner i     = h_i = sha256("<seed hex>:<entries_hash>:<i>") read as a 256-bit integer;
 *                   index = h_i mod (entries left); that entry wins and leaves the list
 *                   (so one entry wins at most once; a member with several purchases has several entries).
 */

export const sha256hex = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");

export const commitmentOf = (seedHex: string) => sha256hex(Buffer.from(seedHex, "hex"));
export const entryCodeOf = (drawId: string, transactionId: string) => sha256hex(`${drawId}:${transactionId}`);
export const entriesHashOf = (entries: readonly string[]) => sha256hex(entries.join("\n"));

export function deriveWinners(seedHex: string, entriesHash: string, entries: readonly string[], count: number): string[] {
  const left = [...entries];
  const winners: string[] = [];
  for (let i = 0; i < count && left.length > 0; i++) {
    const h = BigInt(`0x${sha256hex(`${seedHex}:${entriesHash}:${i}`)}`);
    const idx = Number(h % BigInt(left.length));
    winners.push(left.splice(idx, 1)[0]!);
  }
  return winners;
}

export interface PublishedDraw {
  id: string;
  commitment: string;
  seed: string | null;
  entries_hash: string | null;
  entries: string[] | null;
  winners_count: number;
  winners: string[] | null;
}

/** Every check a sceptic makes; an empty list means the draw verifies. */
export function verifyDraw(d: PublishedDraw): string[] {
  const problems: string[] = [];
  if (!d.seed || !d.entries || !d.entries_hash || !d.winners) return ["the draw is not revealed yet: seed, entries or winners missing"];
  if (!/^[0-9a-f]{64}$/.test(d.seed)) problems.push("the seed is not 32 bytes of hex");
  if (commitmentOf(d.seed) !== d.commitment) problems.push("sha256(seed) does not match the commitment announced before entries closed");
  const sorted = [...d.entries].sort();
  if (sorted.some((e, i) => e !== d.entries![i])) problems.push("the entries are not in sorted order (ascending)");
  if (new Set(d.entries).size !== d.entries.length) problems.push("an entry appears twice");
  if (entriesHashOf(d.entries) !== d.entries_hash) problems.push("the entries do not hash to the published entries_hash");
  const expected = deriveWinners(d.seed, d.entries_hash, d.entries, d.winners_count);
  if (expected.length !== d.winners.length || expected.some((w, i) => w !== d.winners![i])) {
    problems.push(`the winners do not follow from the seed and the entries (expected ${expected.join(", ")})`);
  }
  return problems;
}
