import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import * as Event from "../src/Event.js"
import * as MemoryEventStore from "../src/MemoryEventStore.js"
import { suite } from "./suites/EventStoreSuite.js"

suite("MemoryEventStore.layer", MemoryEventStore.layer())

describe("MemoryEventStore.make", () => {
  it.effect("honours configured limits", () =>
    Effect.gen(function* () {
      const store = yield* MemoryEventStore.make({ limits: { maxEventsPerAppend: 2, maxEventBytes: 64 } })
      const small = yield* Event.make({ type: "A", data: { n: 1 } })
      const big = yield* Event.make({ type: "A", data: { text: "x".repeat(64) } })
      const three = yield* Effect.all([1, 2, 3].map((n) => Event.make({ type: "A", data: { n } })))
      const reasonOf = (events: ReadonlyArray<Event.EventData>) =>
        Effect.flip(store.append("A-1", events)).pipe(
          Effect.map((error) => (error._tag === "InvalidAppend" ? error.reason : error._tag))
        )
      assert.strictEqual(yield* reasonOf(three), "TooManyEvents")
      assert.strictEqual(yield* reasonOf([small, big]), "EventTooLarge")
      assert.strictEqual((yield* store.append("A-1", [small])).version, 1)
    })
  )

  it.effect("positions are global and checkpoints resume a category read", () =>
    Effect.gen(function* () {
      const store = yield* MemoryEventStore.make()
      const [a, b, c] = yield* Effect.all([1, 2, 3].map((n) => Event.make({ type: "A", data: { n } })))
      const r1 = yield* store.append("A-1", [a!, b!])
      const r2 = yield* store.append("B-1", [c!])
      assert.deepStrictEqual([...r1.positions, ...r2.positions], [1n, 2n, 3n])
      const all = Chunk.toArray(yield* Stream.runCollect(store.readAll()))
      assert.deepStrictEqual(
        all.map((e) => [e.category, e.transaction, e.position]),
        [
          ["A", 1n, 1n],
          ["A", 1n, 2n],
          ["B", 2n, 3n]
        ]
      )
    })
  )

  it.effect("stored data is a copy: mutating the appended value changes nothing", () =>
    Effect.gen(function* () {
      const store = yield* MemoryEventStore.make()
      const data = { list: [1] }
      yield* store.append("A-1", [yield* Event.make({ type: "A", data })])
      data.list.push(2)
      const [stored] = Chunk.toArray(yield* Stream.runCollect(store.readStream("A-1")))
      assert.deepStrictEqual(stored!.data, { list: [1] })
    })
  )
})

describe("MemoryEventStore.make commands", () => {
  it.effect("commands are remembered for the command TTL, then forgotten", () =>
    Effect.gen(function* () {
      const store = yield* MemoryEventStore.make({ commandTtl: "1 hour" })
      const once = (streamId: string) =>
        Effect.flatMap(Event.make({ type: "A", data: {} }), (e) => store.append(streamId, [e], { commandId: "c1" }))
      yield* once("A-1")
      yield* TestClock.adjust("59 minutes")
      assert.strictEqual((yield* Effect.flip(once("A-1")))._tag, "DuplicateCommand")
      yield* TestClock.adjust("2 minutes")
      assert.isTrue(Option.isNone(yield* store.findCommand("c1")))
      assert.strictEqual((yield* once("A-1")).version, 2)
    }).pipe(Effect.provide(TestContext.TestContext))
  )
})
