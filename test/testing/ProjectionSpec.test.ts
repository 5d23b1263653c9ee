import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Projection from "../../src/Projection.js"
import { ProjectionSpec } from "../../src/testing/index.js"

const Deposited = Schema.TaggedStruct("Deposited", { amount: Schema.Number })

/** The read model: balances by stream. */
class Balances extends Context.Tag("test/Balances")<Balances, Ref.Ref<ReadonlyMap<string, number>>>() {}

const balances = Projection.make({
  name: "balances",
  events: Deposited,
  categories: ["Account"],
  handle: (event, envelope) =>
    event.amount < 0
      ? Effect.fail(`negative deposit ${event.amount}`)
      : Effect.flatMap(Balances, (ref) =>
          Ref.update(ref, (m) => new Map(m).set(envelope.streamId, (m.get(envelope.streamId) ?? 0) + event.amount))
        )
})

const freshBalances = Layer.effect(Balances, Ref.make<ReadonlyMap<string, number>>(new Map()))

const balanceOf = (streamId: string) =>
  Effect.flatMap(Balances, (ref) => Effect.map(Ref.get(ref), (m) => m.get(streamId)))

const expectBalance = (streamId: string, expected: number | undefined) =>
  Effect.flatMap(balanceOf(streamId), (actual) =>
    actual === expected ? Effect.void : Effect.fail(`balance of ${streamId}: expected ${expected}, got ${actual}`)
  )

const spec = ProjectionSpec.make(balances)

describe("ProjectionSpec", () => {
  it.effect("given events in named and default streams, then the read model", () =>
    spec
      .given([
        Deposited.make({ amount: 10 }),
        { streamId: "Account-2", event: Deposited.make({ amount: 3 }) },
        Deposited.make({ amount: 5 })
      ])
      .then(Effect.all([expectBalance("Account-1", 15), expectBalance("Account-2", 3)]))
      .pipe(Effect.provide(freshBalances))
  )

  it.effect("a wrong expectation fails the specification", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        spec.given([Deposited.make({ amount: 10 })]).then(expectBalance("Account-1", 11))
      )
      assert.include(String(error), "expected 11, got 10")
    }).pipe(Effect.provide(freshBalances))
  )

  it.effect("thenHalts: a poison event stops the projection, and a missing halt fails the specification", () =>
    Effect.gen(function* () {
      yield* spec.given([Deposited.make({ amount: 1 }), Deposited.make({ amount: -1 })]).thenHalts("negative deposit")
      const noHalt = yield* Effect.flip(spec.given([Deposited.make({ amount: 1 })]).thenHalts())
      assert.strictEqual(noHalt._tag, "ProjectionSpecFailure")
      const otherError = yield* Effect.flip(spec.given([Deposited.make({ amount: -1 })]).thenHalts("something else"))
      assert.strictEqual(otherError._tag, "ProjectionSpecFailure")
    }).pipe(Effect.provide(freshBalances))
  )

  it.effect("under the skip policy a poison event is left out and nothing is applied twice", () =>
    ProjectionSpec.make({ ...balances, onPoison: "skip" })
      .given([Deposited.make({ amount: 1 }), Deposited.make({ amount: -1 }), Deposited.make({ amount: 10 })])
      .then(expectBalance("Account-1", 11))
      .pipe(Effect.provide(freshBalances))
  )
})
