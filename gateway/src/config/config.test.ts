import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config.ts";

describe("loadConfig", () => {
  it("boots on nothing: embedded database, in-process queue, port 3000, ./data", () => {
    const c = loadConfig({});
    expect(c.embedded).toBe(true);
    expect(c.PORT).toBe(3000);
    expect(c.REDIS_URL).toBeUndefined();
    expect(c.dataDir.endsWith("/data")).toBe(true);
    expect(c.PUBLIC_URL).toBe("http://localhost:3000");
    expect(c.SEED_DEMO).toBe(true);
  });

  it("switches to PostgreSQL and Redis when their URLs are set, and stops seeding by default", () => {
    const c = loadConfig({ DATABASE_URL: "postgres://127.0.0.1:5432/test", REDIS_URL: "redis://127.0.0.1:6379", PORT: "8080" });
    expect(c.embedded).toBe(false);
    expect(c.SEED_DEMO).toBe(false);
    expect(c.PUBLIC_URL).toBe("http://localhost:8080");
  });

  it.each([
    [{ PORT: "abc" }, "PORT"],
    [{ PORT: "70000" }, "PORT"],
    [{ DATABASE_URL: "mysql://x/y" }, "DATABASE_URL"],
    [{ LOG_LEVEL: "loud" }, "LOG_LEVEL"],
    [{ SEED_DEMO: "maybe" }, "SEED_DEMO"],
    [{ REDIS_URL: "redis://127.0.0.1:6379" }, "REDIS_URL"],
  ])("refuses %j naming %s", (env, variable) => {
    let err: unknown;
    try {
      loadConfig(env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe(variable);
    expect((err as ConfigError).message.split("\n")).toHaveLength(1);
  });

  it("treats empty strings as unset", () => {
    expect(loadConfig({ DATABASE_URL: "", REDIS_URL: "" }).embedded).toBe(true);
  });
});
