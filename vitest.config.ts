import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

export default defineConfig({
  resolve: {
    // examples import the package by name, as users do
    alias: [
      {
        find: /^effect-eventsourcing\/nats$/,
        replacement: fileURLToPath(new URL("./src/nats/index.ts", import.meta.url))
      },
      {
        find: /^effect-eventsourcing\/http$/,
        replacement: fileURLToPath(new URL("./src/http/index.ts", import.meta.url))
      },
      {
        find: /^effect-eventsourcing\/observability$/,
        replacement: fileURLToPath(new URL("./src/observability/index.ts", import.meta.url))
      },
      {
        find: /^effect-eventsourcing\/sql$/,
        replacement: fileURLToPath(new URL("./src/sql/index.ts", import.meta.url))
      },
      {
        find: /^effect-eventsourcing\/pg$/,
        replacement: fileURLToPath(new URL("./src/pg/index.ts", import.meta.url))
      },
      {
        find: /^effect-eventsourcing\/sqlite$/,
        replacement: fileURLToPath(new URL("./src/sqlite/index.ts", import.meta.url))
      },
      {
        find: /^effect-eventsourcing\/testing$/,
        replacement: fileURLToPath(new URL("./src/testing/index.ts", import.meta.url))
      },
      {
        find: /^effect-eventsourcing\/cli$/,
        replacement: fileURLToPath(new URL("./src/cli/index.ts", import.meta.url))
      },
      {
        find: /^effect-eventsourcing\/mysql$/,
        replacement: fileURLToPath(new URL("./src/mysql/index.ts", import.meta.url))
      },
      { find: /^effect-eventsourcing$/, replacement: fileURLToPath(new URL("./src/index.ts", import.meta.url)) }
    ]
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // 2 cores: two files at a time; the slow ones (servers, concurrency proofs) dominate anyway
    maxWorkers: 2,
    minWorkers: 1
  }
})
