import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Deposit, Withdraw } from "../../examples/bank/commands.js"
import { Transfer, TransferConfirmed, TransferRequested } from "../../examples/bank/Transfer.js"
import * as Saga from "../../src/Saga.js"
import { SagaSpec } from "../../src/testing/index.js"

const spec = SagaSpec.make(Transfer)
const requested = TransferRequested.make({ transferId: "t", from: "A", to: "B", amount: 30 })
const withdrawA = new Withdraw({ accountId: "A", amount: 30 })
const depositB = new Deposit({ accountId: "B", amount: 30 })

describe("examples/bank Transfer (SagaSpec)", () => {
  it.effect("a request withdraws then deposits, and waits for its deadline", () =>
    spec
      .given([requested])
      .then({ commands: [withdrawA, depositB], state: { step: "moved" }, status: "running", timeouts: ["deadline"] })
  )

  it.effect("a confirmation completes the transfer and cancels the deadline", () =>
    spec
      .given([requested, TransferConfirmed.make({ transferId: "t" })])
      .then({ commands: [withdrawA, depositB], status: "completed", timeouts: [] })
  )

  it.effect("a failing deposit refunds the withdrawal", () =>
    spec
      .given([requested], { failing: [1] })
      .then({ commands: [withdrawA, depositB, new Deposit({ accountId: "A", amount: 30 })], status: "compensated" })
  )

  it.effect("the deadline undoes both steps, newest first", () =>
    spec.given([requested, new Saga.Timeout({ name: "deadline" })]).then({
      commands: [
        withdrawA,
        depositB,
        new Withdraw({ accountId: "B", amount: 30 }),
        new Deposit({ accountId: "A", amount: 30 })
      ],
      status: "compensated",
      timeouts: []
    })
  )

  it.effect("a wrong expectation fails the specification", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(spec.given([requested]).then({ commands: [depositB, withdrawA] }))
      assert.strictEqual(error._tag, "SagaSpecFailure")
      assert.include(error.message, "commands sent")
    })
  )
})
