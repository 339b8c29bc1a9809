import { defineConfig } from "vitest/config";

/**
 * Two kinds of test: `*.test.ts` are fast unit tests of pure logic; `*.int.test.ts` run against a
 * real PostgreSQL — PGlite by default, the server at DATABASE_URL (and BullMQ at REDIS_URL) when
 * set — each test file on a fresh database cloned from a migrated template.
 */
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["{gateway,settlement,portal,scripts,test}/**/*.test.ts"],
          exclude: ["**/*.int.test.ts", "**/node_modules/**"],
        },
      },
      {
        test: {
          name: "integration",
          include: ["{gateway,settlement,portal,scripts,test}/**/*.int.test.ts"],
          globalSetup: ["test/global-setup.ts"],
          setupFiles: ["test/setup-one-query-at-a-time.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          pool: "forks",
        },
      },
    ],
  },
});
