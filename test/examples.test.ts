import { readFileSync } from "node:fs"
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
