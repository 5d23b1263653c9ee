/**
 * Per-backend entry points: a SQLite-only program loads nothing of PostgreSQL, MySQL, NATS or
 * OpenTelemetry (run in a process where those packages cannot be resolved).
 */
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"

const root = fileURLToPath(new URL("..", import.meta.url))

const runSqliteOnly = (env: Record<string, string> = {}) =>
  spawnSync(
    process.execPath,
    ["--import", "tsx", "--import", "./test/support/blockDrivers.mjs", "test/support/sqliteOnly.ts"],
    { cwd: root, env: { ...process.env, ...env }, encoding: "utf8", timeout: 120_000 }
  )

describe("entry points", () => {
  it("a SQLite-only program runs with the PostgreSQL, MySQL, NATS and OpenTelemetry packages missing", () => {
    const run = runSqliteOnly()
    assert.strictEqual(run.status, 0, run.stderr)
    assert.strictEqual(run.stdout.trim(), "read 1")
  })

  it("the check catches an import of another backend (the PostgreSQL entry point)", () => {
    const run = runSqliteOnly({ ENTRY: "pg" })
    assert.notStrictEqual(run.status, 0)
    assert.match(run.stderr, /not installed: (pg|@effect\/sql-pg)/)
  })
})
