import { describe, expect, it } from "vitest";
import { createLogger } from "../logger.ts";
import { createMemoryQueue } from "./memory.queue.ts";

const log = createLogger("silent");

describe("in-process queue", () => {
  it("runs a job once per job id, as BullMQ does", async () => {
    const q = createMemoryQueue(log);
    const seen: string[] = [];
    q.process("system.echo", async (job) => {
      seen.push(job.data.message);
    });
    await q.add("system.echo", { message: "a" }, { jobId: "same" });
    await q.add("system.echo", { message: "b" }, { jobId: "same" });
    await q.add("system.echo", { message: "c" }, { jobId: "other" });
    await new Promise((r) => setTimeout(r, 20));
    await q.drain();
    expect(seen.sort()).toEqual(["a", "c"]);
    await q.close();
  });

  it("retries a failing job with backoff until it succeeds", async () => {
    const q = createMemoryQueue(log);
    let tries = 0;
    q.process("system.echo", async () => {
      tries++;
      if (tries < 3) throw new Error("not yet");
    });
    await q.add("system.echo", { message: "x" }, { jobId: "r", attempts: 5, backoffMs: 5 });
    for (let i = 0; i < 50 && tries < 3; i++) await new Promise((r) => setTimeout(r, 10));
    await q.drain();
    expect(tries).toBe(3);
    await q.close();
  });

  it("stops after the last attempt", async () => {
    const q = createMemoryQueue(log);
    let tries = 0;
    q.process("system.echo", async () => {
      tries++;
      throw new Error("never");
    });
    await q.add("system.echo", { message: "x" }, { jobId: "f", attempts: 2, backoffMs: 1 });
    await new Promise((r) => setTimeout(r, 60));
    await q.drain();
    expect(tries).toBe(2);
    await q.close();
  });
});
