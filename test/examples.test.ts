import { execFile } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { main } from "../examples/quickstart.js"
import * as CommandBusExample from "../examples/commandBus.js"
import * as Commands from "../examples/commands.js"
import * as Projections from "../examples/projections.js"
import * as Upcasting from "../examples/upcasting.js"

describe("examples", () => {
  for (const example of [
    "quickstart.ts",
    "stores.ts",
    "upcasting.ts",
    "commands.ts",
    "projections.ts",
    "commandBus.ts"
  ]) {
    it.effect(`the README shows examples/${example} verbatim (so its code is type-checked)`, () =>
      Effect.sync(() => {
        const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8")
        const source = readFileSync(new URL(`../examples/${example}`, import.meta.url), "utf8")
        assert.include(readme, "```ts\n" + source.trim() + "\n```")
      })
    )
  }

  it.effect("the upcasting example reads both events as MoneyDeposited v2", () =>
    Effect.gen(function* () {
      const events = yield* Upcasting.main
      assert.deepStrictEqual(
        [...events],
        [
          { _tag: "MoneyDeposited", amount: 12.5 },
          { _tag: "MoneyDeposited", amount: 5 }
        ]
      )
    })
  )

  it.live("the projections example: the read model catches up on its own, and the runner is live", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* Projections.main, { balance: 100, state: "live" })
    })
  )

  it.live("the command bus example: a typed result, a typed refusal, bad input refused", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* CommandBusExample.main, {
        version: 1,
        refused: "InsufficientFunds",
        invalid: "CommandValidationError"
      })
    })
  )

  it.effect("the commands example: idempotent retry and a typed refusal", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* Commands.main, { version: 2, sameResult: true, refused: "InsufficientFunds" })
    })
  )

  it.effect("the quick start runs", () =>
    Effect.gen(function* () {
      assert.strictEqual(yield* main, 2)
    })
  )
})

describe("examples/bank (npm start)", () => {
  it.live(
    "runs twice on one SQLite file, the second run continuing from the stored events",
    () =>
      Effect.gen(function* () {
        const dir = mkdtempSync(join(tmpdir(), "ees-bank-"))
        const run = () =>
          Effect.async<string, Error>((resume) => {
            execFile(
              process.execPath,
              ["--import", "tsx", "examples/bank/main.ts"],
              { env: { ...process.env, BANK_DB: join(dir, "bank.db") }, timeout: 60_000 },
              (error, stdout) => resume(error ? Effect.fail(error) : Effect.succeed(stdout))
            )
          })
        const eventsOf = (output: string) =>
          [...output.matchAll(/after (\d+) events/g)].reduce((sum, match) => sum + Number(match[1]), 0)
        const first = yield* run()
        const second = yield* run()
        rmSync(dir, { recursive: true, force: true })
        // 3 accounts opened once, then 300 commands per run, minus those the domain rejected
        assert.isAbove(eventsOf(first), 3)
        assert.isAbove(eventsOf(second), eventsOf(first))
        assert.notInclude(second + first, "stale state")
        // the Transfer saga: a confirmed transfer completes (or is refused for funds), one to nobody is compensated
        for (const output of [first, second]) {
          assert.match(output, /transfer of 5 from alice to bob: (completed|compensated \(Withdraw failed)/)
          assert.match(output, /transfer of 5 from alice to nobody: compensated/)
        }
      }),
    120_000
  )
})
