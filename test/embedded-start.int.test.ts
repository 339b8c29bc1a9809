import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";

/** `npm start` on a fresh machine: no environment, embedded database, a demo network, clean stop. */

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function start(dataDir: string, port: number): { child: ChildProcess; output: () => string } {
  const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, PORT: String(port), LOG_LEVEL: "info" };
  delete env.DATABASE_URL;
  delete env.REDIS_URL;
  delete env.NODE_ENV;
  const child = spawn(process.execPath, ["--import", "tsx", "gateway/src/main.ts", "start"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  return { child, output: () => out };
}

async function waitFor(cond: () => boolean, ms: number) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 100));
  }
}

let running: ChildProcess | undefined;
afterEach(() => running?.kill("SIGKILL"));

describe("npm start, embedded", () => {
  it("migrates, seeds once, serves the API and docs, prints credentials, and stops cleanly on Ctrl-C; a restart keeps the data", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "hub-start-"));
    const port = await freePort();
    const first = start(dataDir, port);
    running = first.child;
    await waitFor(() => first.output().includes("Coalition Loyalty Hub is running"), 90_000);
    const base = `http://localhost:${port}`;
    expect(first.output()).toContain(`${base}/docs`);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/docs/`)).status).toBe(200);

    const creds = JSON.parse(fs.readFileSync(path.join(dataDir, "demo-credentials.json"), "utf8"));
    expect(creds.clients.filter((c: { audience: string }) => c.audience === "partner").length).toBeGreaterThanOrEqual(3);
    expect(creds.clients.some((c: { audience: string }) => c.audience === "admin")).toBe(true);
    const bank = creds.clients.find((c: { scopes: string[] }) => c.scopes.includes("card-transactions:write"));
    expect(bank).toBeDefined();
    expect(first.output()).toContain(bank.client_secret);

    const tokenRes = await fetch(`${base}/oauth/token`, {
      method: "POST",
      headers: { authorization: `Basic ${Buffer.from(`${bank.client_id}:${bank.client_secret}`).toString("base64")}`, "content-type": "application/x-www-form-urlencoded" },
      body: "grant_type=client_credentials",
    });
    expect(tokenRes.status).toBe(200);

    const exited = new Promise<number | null>((r) => first.child.once("exit", r));
    first.child.kill("SIGINT");
    expect(await exited).toBe(0);
    expect(fs.existsSync(path.join(dataDir, "hub.pid"))).toBe(false);

    // Again on the same data: no second seed, the same credentials still work.
    const second = start(dataDir, port);
    running = second.child;
    await waitFor(() => second.output().includes("Coalition Loyalty Hub is running"), 90_000);
    const again = await fetch(`${base}/oauth/token`, {
      method: "POST",
      headers: { authorization: `Basic ${Buffer.from(`${bank.client_id}:${bank.client_secret}`).toString("base64")}`, "content-type": "application/x-www-form-urlencoded" },
      body: "grant_type=client_credentials",
    });
    expect(again.status).toBe(200);
    expect(second.output()).not.toContain("demo network seeded");
    const stopped = new Promise<number | null>((r) => second.child.once("exit", r));
    second.child.kill("SIGTERM");
    expect(await stopped).toBe(0);
    running = undefined;
    fs.rmSync(dataDir, { recursive: true, force: true });
  }, 240_000);

  it("stops with one clear line naming a wrong variable", async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: "not-a-port" };
    delete env.DATABASE_URL;
    const child = spawn(process.execPath, ["--import", "tsx", "gateway/src/main.ts", "start"], { env, stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => child.once("exit", r));
    expect(code).toBe(78);
    expect(err.trim().split("\n")).toEqual([expect.stringMatching(/^config error: PORT .*"not-a-port"/)]);
  });
});
