import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // 2 cores: a few files at a time; the slow ones (servers, concurrency proofs) dominate anyway
    maxWorkers: 2,
    minWorkers: 1
  }
})
