/**
 * The example application as a user runs it: `npm run demo` completes its scenario and exits 0, and
 * `npm start` serves the API until SIGTERM, then shuts down cleanly (exit 0) and keeps its events in the
 * SQLite file for the next start.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { freePort } from "../support/servers.js"

const tsx = path.resolve("node_modules", ".bin", "tsx")

/** Runs a script; its output so far and its exit are read through the returned handles. */
const start = (script: string, env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(tsx, [script], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] })
      let output = ""
      child.stdout!.on("data", (chunk) => (output += chunk))
      child.stderr!.on("data", (chunk) => (output += chunk))
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
      return { child, output: () => output, exited }
    }),
    ({ child }) => Effect.sync(() => child.kill("SIGKILL"))
  )

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "bank-app-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

// the responses are checked field by field
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any

/** The environment without the variables that would switch the app to PostgreSQL or NATS. */
const embedded = { DATABASE_URL: "", NATS_URL: "" }

describe("examples/bank application", () => {
  it.scopedLive(
    "npm run demo runs the scenario end to end and exits 0",
    () =>
      Effect.gen(function* () {
        const demo = yield* start("examples/bank/demo.ts", embedded)
        const code = yield* Effect.promise(() => demo.exited)
        const output = demo.output()
        assert.strictEqual(code, 0, output)
        assert.match(output, /transfer of 250 from alice\w+ to bob\w+: completed/)
        assert.match(output, /transfer of 100 from alice\w+ to nobody\w+: compensated/)
        assert.match(output, /balance of alice\w+: 3250/)
        assert.match(output, /balance of bob\w+: 350/)
        assert.match(output, /alerts .*: 1500/)
        assert.include(output, "demo done")
      }),
    90_000
  )

  it.scopedLive(
    "npm start serves until SIGTERM, stops cleanly, and keeps its events",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const port = yield* freePort
        const env = { ...embedded, PORT: String(port), BANK_DB: path.join(dir, "bank.db") }
        const url = `http://127.0.0.1:${port}`
        const request = (method: string, route: string, body?: object) =>
          Effect.tryPromise(() =>
            fetch(`${url}${route}`, {
              method,
              headers: { "content-type": "application/json" },
              ...(body === undefined ? {} : { body: JSON.stringify(body) })
            }).then(async (response) => ({ status: response.status, body: (await response.json()) as Json }))
          )
        const serving = Schedule.spaced("100 millis").pipe(Schedule.upTo("30 seconds"))

        const first = yield* start("examples/bank/main.ts", env)
        yield* Effect.retry(request("GET", "/health"), serving)
        assert.strictEqual((yield* request("POST", "/accounts", { accountId: "ada", owner: "Ada" })).status, 201)
        assert.strictEqual((yield* request("POST", "/accounts/ada/deposits", { amount: 70 })).status, 200)
        const invalid = yield* request("POST", "/accounts/ada/deposits", { amount: -1 })
        assert.strictEqual(invalid.status, 400)
        const refused = yield* request("POST", "/accounts/ada/withdrawals", { amount: 1000 })
        assert.strictEqual(refused.status, 409)
        assert.strictEqual(refused.body.reason, "InsufficientFunds")
        const account = yield* request("GET", "/accounts/ada").pipe(
          Effect.filterOrFail((r) => r.status === 200 && r.body.balance === 70),
          Effect.retry(serving)
        )
        assert.strictEqual(account.body.owner, "Ada")
        first.child.kill("SIGTERM")
        assert.strictEqual(yield* Effect.promise(() => first.exited), 0, first.output())
        assert.include(first.output(), `http://localhost:${port}/`)

        // a second start finds the account and its read model where the first left them
        const second = yield* start("examples/bank/main.ts", env)
        const again = yield* request("GET", "/accounts/ada").pipe(Effect.retry(serving))
        assert.strictEqual(again.body.balance, 70)
        const stream = yield* request("GET", "/streams/Account-ada")
        assert.deepStrictEqual(
          stream.body.events.map((e: { type: string }) => e.type),
          ["AccountOpened", "MoneyDeposited"]
        )
        second.child.kill("SIGINT")
        assert.strictEqual(yield* Effect.promise(() => second.exited), 0, second.output())
      }),
    90_000
  )
})
