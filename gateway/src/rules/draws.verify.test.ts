import { describe, expect, it } from "vitest";
import { commitmentOf, deriveWinners, entriesHashOf, entryCodeOf, verifyDraw, type PublishedDraw } from "./draws.verify.ts";

const seed = "7f".repeat(32);
function published(): PublishedDraw {
  const entries = ["txn_a", "txn_b", "txn_c", "txn_d", "txn_e", "txn_f"].map((t) => entryCodeOf("drw_1", t)).sort();
  const entries_hash = entriesHashOf(entries);
  return { id: "drw_1", commitment: commitmentOf(seed), seed, entries, entries_hash, winners_count: 2, winners: deriveWinners(seed, entries_hash, entries, 2) };
}

describe("draw verification", () => {
  it("derives the same distinct winners every time from the seed and the entries", () => {
    const d = published();
    expect(d.winners).toHaveLength(2);
    expect(new Set(d.winners).size).toBe(2);
    expect(deriveWinners(seed, d.entries_hash!, d.entries!, 2)).toEqual(d.winners);
    // A different seed draws differently (with these six entries).
    expect(deriveWinners("00".repeat(32), d.entries_hash!, d.entries!, 6)).not.toEqual(deriveWinners(seed, d.entries_hash!, d.entries!, 6));
    expect(verifyDraw(d)).toEqual([]);
  });

  it("never draws more winners than entries", () => {
    const d = published();
    expect(deriveWinners(seed, d.entries_hash!, d.entries!, 10)).toHaveLength(6);
  });

  it("detects a swapped seed, an added, removed or reordered entry, a forged winner and an unrevealed draw", () => {
    const other = "01".repeat(32);
    expect(verifyDraw({ ...published(), seed: other }).join()).toMatch(/commitment/);
    const added = published();
    added.entries = [...added.entries!, entryCodeOf("drw_1", "txn_z")].sort();
    expect(verifyDraw(added).join()).toMatch(/entries_hash/);
    const removed = published();
    removed.entries = removed.entries!.slice(1);
    expect(verifyDraw(removed).join()).toMatch(/entries_hash/);
    const reordered = published();
    reordered.entries = [...reordered.entries!].reverse();
    expect(verifyDraw(reordered).join()).toMatch(/sorted order/);
    const forged = published();
    forged.winners = [forged.entries!.find((e) => !forged.winners!.includes(e))!, forged.winners![1]!];
    expect(verifyDraw(forged).join()).toMatch(/winners do not follow/);
    // A hub that recomputes the hash over tampered entries still fails: the winners were drawn from the real list.
    const rehashed = published();
    rehashed.entries = rehashed.entries!.slice(1);
    rehashed.entries_hash = entriesHashOf(rehashed.entries);
    expect(verifyDraw(rehashed).length).toBeGreaterThan(0);
    expect(verifyDraw({ ...published(), seed: null })).toEqual(["the draw is not revealed yet: seed, entries or winners missing"]);
  });
});
