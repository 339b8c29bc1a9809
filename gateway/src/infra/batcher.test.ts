import { describe, expect, it } from "vitest";
import { createBatcher, type Settled } from "./batcher.ts";

/** A flush the test finishes by hand: each batch's items, and a function that answers them (item × 10). */
function manualFlush() {
  const batches: Array<{ items: number[]; finish: () => void }> = [];
  const flush = (items: number[]) =>
    new Promise<Array<Settled<number>>>((resolve) => {
      batches.push({ items, finish: () => resolve(items.map((i) => (i < 0 ? { ok: false, error: new Error(`bad ${i}`) } : { ok: true, value: i * 10 }))) });
    });
  return { batches, flush };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("createBatcher", () => {
  it("answers each caller with its own result, one failure being that caller's alone", async () => {
    const { batches, flush } = manualFlush();
    const b = createBatcher({ maxItems: 10, maxWaitMs: 0, maxInFlight: 1 }, flush);
    const answers = [b.submit(1), b.submit(-2), b.submit(3)].map((p) => p.then((v) => ({ v }), (e: Error) => ({ e: e.message })));
    await tick();
    // The first left at once (a slot was free); the other two waited for it and leave together.
    expect(batches.map((x) => x.items)).toEqual([[1]]);
    batches[0]!.finish();
    await tick();
    expect(batches.map((x) => x.items)).toEqual([[1], [-2, 3]]);
    batches[1]!.finish();
    expect(await Promise.all(answers)).toEqual([{ v: 10 }, { e: "bad -2" }, { v: 30 }]);
    expect(b.stats()).toEqual({ batches: 2, items: 3 });
  });

  it("sends the next batch before it answers the callers of the one that returned", async () => {
    const seen: string[] = [];
    const { batches, flush } = manualFlush();
    const b = createBatcher({ maxItems: 10, maxWaitMs: 0, maxInFlight: 1 }, (items: number[]) => {
      seen.push(`flush ${items.join(",")}`);
      return flush(items);
    });
    const first = b.submit(1).then((v) => seen.push(`answer ${v}`));
    await tick();
    const second = b.submit(2).then((v) => seen.push(`answer ${v}`));
    batches[0]!.finish();
    await first;
    // The second batch was on its way before the first one's caller heard back.
    expect(seen).toEqual(["flush 1", "flush 2", "answer 10"]);
    batches[1]!.finish();
    await second;
    expect(seen).toEqual(["flush 1", "flush 2", "answer 10", "answer 20"]);
  });

  it("pipelined, queues the next batch behind the one in flight once its share of the callers waits: a closed loop of 20 settles in batches of ~10, not of one", async () => {
    const { batches, flush } = manualFlush();
    const b = createBatcher({ maxItems: 32, maxWaitMs: 0, maxInFlight: 2, pipeline: 0.45 }, flush);
    // 20 callers, each calling again as soon as it is answered; the database answers the oldest
    // batch in flight, one at a time.
    let n = 0;
    const call = (): void => void b.submit(n++).then(call);
    for (let i = 0; i < 20; i++) call();
    await tick();
    let finished = 0;
    for (let k = 0; k < 40; k++) {
      // Never more than two batches in flight.
      expect(batches.length - finished).toBeLessThanOrEqual(2);
      batches[finished++]!.finish();
      await tick();
      await tick();
    }
    const sizes = batches.slice(-10).map((x) => x.items.length);
    expect(Math.min(...sizes)).toBeGreaterThanOrEqual(8);
    const mean = sizes.reduce((a, x) => a + x, 0) / sizes.length;
    expect(mean).toBeGreaterThanOrEqual(8.5);
    expect(mean).toBeLessThanOrEqual(11);
    // The next batch was queued before the one in flight returned: two in flight at once.
    expect(batches.length - finished).toBe(2);
  });

  it("pipelined, under a light load sends a lone call at once, even behind a batch in flight", async () => {
    const { batches, flush } = manualFlush();
    const b = createBatcher({ maxItems: 32, maxWaitMs: 0, maxInFlight: 2, pipeline: 0.45 }, flush);
    const first = b.submit(1);
    await tick();
    const second = b.submit(2);
    await tick();
    // One caller at a time in the system: its share is one call, so it leaves behind the first.
    expect(batches.map((x) => x.items)).toEqual([[1], [2]]);
    batches[0]!.finish();
    batches[1]!.finish();
    expect(await Promise.all([first, second])).toEqual([10, 20]);
  });

  it("gives a batch leaving beside another in flight its share of the load, not everything waiting", async () => {
    const { batches, flush } = manualFlush();
    const b = createBatcher({ maxItems: 32, maxWaitMs: 0, maxInFlight: 2 }, flush);
    // A small batch in flight in one slot, a larger one in the other.
    void b.submit(0);
    void b.submit(1);
    await tick();
    expect(batches.map((x) => x.items)).toEqual([[0], [1]]);
    // 30 callers arrive while both run; the one-item batch comes back first.
    const later = Array.from({ length: 30 }, (_, i) => b.submit(100 + i));
    batches[0]!.finish();
    await tick();
    // Before: the free slot took all 30, and the two slots settled into one batch of 30 and one of
    // 1. Now it takes half of the 31 items in the system (30 waiting, 1 in flight): 16.
    expect(batches[2]!.items).toHaveLength(16);
    batches[1]!.finish();
    await tick();
    expect(batches[3]!.items).toHaveLength(14);
    batches[2]!.finish();
    batches[3]!.finish();
    expect(await Promise.all(later)).toEqual(Array.from({ length: 30 }, (_, i) => (100 + i) * 10));
  });

  it("splits what waits over every free slot when the wait ends, in arrival order", async () => {
    const { batches, flush } = manualFlush();
    const b = createBatcher({ maxItems: 32, maxWaitMs: 5, maxInFlight: 2 }, flush);
    const all = Array.from({ length: 9 }, (_, i) => b.submit(i));
    await new Promise((r) => setTimeout(r, 20));
    expect(batches.map((x) => x.items)).toEqual([
      [0, 1, 2, 3, 4],
      [5, 6, 7, 8],
    ]);
    for (const x of batches) x.finish();
    expect(await Promise.all(all)).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80]);
  });

  it("never puts more than maxItems in a batch, and a lone caller waits for nobody", async () => {
    const { batches, flush } = manualFlush();
    const b = createBatcher({ maxItems: 3, maxWaitMs: 0, maxInFlight: 1 }, flush);
    void b.submit(1);
    await tick();
    expect(batches.map((x) => x.items)).toEqual([[1]]);
    for (let i = 2; i <= 8; i++) void b.submit(i);
    for (let k = 0; k < 3; k++) {
      batches[k]!.finish();
      await tick();
    }
    expect(batches.map((x) => x.items)).toEqual([[1], [2, 3, 4], [5, 6, 7], [8]]);
  });
});
