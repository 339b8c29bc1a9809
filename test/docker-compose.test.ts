import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

/** The production shape: PostgreSQL, Redis, a migration step, the API and a worker, each healthy. */
describe("docker-compose.yml", () => {
  const compose = parse(fs.readFileSync("docker-compose.yml", "utf8")) as {
    services: Record<string, { healthcheck?: unknown; command?: string[]; depends_on?: Record<string, { condition: string }>; environment?: Record<string, string> }>;
  };

  it("runs postgres, redis, api and worker, with health checks, the roles split", () => {
    for (const s of ["postgres", "redis", "api", "worker"]) expect(compose.services[s]?.healthcheck, s).toBeDefined();
    expect(compose.services.api!.command).toContain("api");
    expect(compose.services.worker!.command).toContain("worker");
    expect(compose.services.api!.environment).toMatchObject({ DATABASE_URL: expect.stringMatching(/^postgres:/), REDIS_URL: expect.stringMatching(/^redis:/) });
    expect(compose.services.api!.depends_on!.migrate!.condition).toBe("service_completed_successfully");
    expect(compose.services.migrate!.command).toContain("migrate");
  });

  const binary = ["docker-compose"].find((b) => {
    try {
      execFileSync(b, ["version"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  });
  it.runIf(binary)("is accepted by docker-compose config", () => {
    execFileSync(binary!, ["-f", "docker-compose.yml", "config", "-q"], { stdio: "pipe" });
  });
});
