import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { main } from "../examples/quickstart.js"
import * as CommandApiExample from "../examples/commandApi.js"
import * as CommandBusExample from "../examples/commandBus.js"
import * as Commands from "../examples/commands.js"
import * as Specs from "../examples/guides/specs.js"
import * as Transactions from "../examples/guides/transactions.js"
import * as Projections from "../examples/projections.js"
import * as QueriesExample from "../examples/queries.js"
import * as Upcasting from "../examples/upcasting.js"
import * as Walkthrough from "../examples/walkthrough.js"

// the docs show these files verbatim (test/docs.test.ts); here they run
describe("examples", () => {
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

  it.live("the queries example: a query with the deposit's readAfter shows it", () =>
    Effect.gen(function* () {
      assert.strictEqual(yield* QueriesExample.program.pipe(Effect.provide(QueriesExample.Live)), 100)
    })
  )

  it.live("the command API example: commands over HTTP with a typed client and an OpenAPI document", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* CommandApiExample.main, { version: 2, refused: "InsufficientFunds", balance: 100 })
      const paths = CommandApiExample.document.paths
      assert.deepStrictEqual(Object.keys(paths), [
        "/accounts/{accountId}/open",
        "/accounts/{accountId}/deposit",
        "/accounts/{accountId}/withdraw",
        "/accounts/{accountId}/close-account"
      ])
      assert.includeMembers(Object.keys(paths["/accounts/{accountId}/withdraw"]!.post!.responses), [
        "200",
        "400",
        "409"
      ])
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

  it.live("the walk: the handler writes, the saga moves the money, the projection shows it", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* Walkthrough.main, { "Account-A": 70, "Account-B": 30 })
    })
  )

  it.live("the transactions guide: one commit for rows, events and messages; a failure rolls all back", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* Transactions.main, {
        users: 1,
        events: 2,
        refused: "not an e-mail address: grace"
      })
    })
  )

  it.live("the testing guide's specifications hold", () =>
    Effect.all([Specs.withdrawing, Specs.balances, Specs.transfer])
  )
})
