/**
 * Retention policies on the memory store, on the `TestClock`: `apply` now, and the scheduled job of
 * `layer` (the store contract's `applyRetention` is checked on every store by the conformance suite).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Event from "../src/Event.js"
import * as EventStore from "../src/EventStore.js"
import * as MemoryEventStore from "../src/MemoryEventStore.js"
import * as Metrics from "../src/Metrics.js"
import * as Retention from "../src/Retention.js"
import * as Tenancy from "../src/Tenancy.js"

const visits = (n: number) =>
  Effect.all(Array.from({ length: n }, (_, i) => Event.make({ type: "Visited", data: { page: i } })))

const versionsOf = (streamId: string) =>
  Effect.flatMap(EventStore.EventStore, (store) =>
    Effect.map(Stream.runCollect(store.readStream(streamId)), (events) => Chunk.toArray(events).map((e) => e.version))
  )

/** Runs `check` until it holds, yielding to other fibers in between (bounded: fails if it never does). */
const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, attempts = 1000): Effect.Effect<void, E, R> =>
  Effect.flatMap(check, (held) =>
    held
      ? Effect.void
      : attempts === 0
        ? Effect.dieMessage("never held")
        : Effect.zipRight(Effect.yieldNow(), eventually(check, attempts - 1))
  )

describe("Retention", () => {
  it.effect("apply: maxAge against the Clock, maxCount, both; reports, counts and logs what it removed", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      yield* store.append("Session-1", yield* visits(3))
      yield* TestClock.adjust("2 hours")
      yield* store.append("Session-1", yield* visits(2))
      yield* store.append("Session-2", yield* visits(6))
      yield* store.append("Order-1", yield* visits(3))
      const removed = Metric.tagged(Metrics.retentionEventsRemovedTotal, "category", "Session")
      const before = (yield* Metric.value(removed)).count
      const logs: Array<unknown> = []
      const logger = Logger.make(({ annotations, message }) => {
        logs.push([message, Object.fromEntries(annotations)])
      })
      const reports = yield* Retention.apply([
        Retention.policy({ category: "Session", maxAge: "1 hour" }),
        Retention.policy({ category: "Order", maxAge: "1 hour" })
      ]).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      assert.deepStrictEqual(reports, [
        { category: "Session", streams: 1, events: 3 },
        { category: "Order", streams: 0, events: 0 }
      ])
      assert.deepStrictEqual(yield* versionsOf("Session-1"), [4, 5])
      assert.strictEqual((yield* Metric.value(removed)).count - before, 3)
      assert.deepStrictEqual(logs, [[["retention applied"], { category: "Session", streams: 1, events: 3 }]])
      assert.deepStrictEqual(yield* Retention.apply([Retention.policy({ category: "Session", maxCount: 2 })]), [
        { category: "Session", streams: 1, events: 4 }
      ])
      assert.deepStrictEqual(yield* versionsOf("Session-2"), [5, 6])
      yield* TestClock.adjust("2 hours")
      yield* Retention.apply([Retention.policy({ category: "Session", maxAge: "1 hour", maxCount: 10 })])
      assert.deepStrictEqual(yield* versionsOf("Session-1"), [], "every event older than maxAge")
      assert.strictEqual(yield* store.streamVersion("Session-1"), 5)
    }).pipe(Effect.provide(MemoryEventStore.layer()))
  )

  it.effect("an invalid policy is a defect naming its category", () =>
    Effect.gen(function* () {
      for (const policy of [
        Retention.policy({ category: "Session" }),
        Retention.policy({ category: "Session", maxCount: 0 }),
        Retention.policy({ category: "Session", maxCount: 1.5 }),
        Retention.policy({ category: "Session", maxAge: 0 })
      ]) {
        const exit = yield* Effect.exit(Retention.apply([policy]))
        assert.isTrue(Exit.isFailure(exit) && Exit.causeOption(exit).pipe(Option.isSome))
        assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), 'retention policy of "Session"')
      }
    }).pipe(Effect.provide(MemoryEventStore.layer()))
  )

  it.effect("layer: applies the policies when built, then on its schedule, until its scope closes", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      yield* store.append("Session-1", yield* visits(2))
      yield* Effect.scoped(
        Effect.gen(function* () {
          yield* Layer.build(Retention.layer([Retention.policy({ category: "Session", maxAge: "90 minutes" })]))
          yield* TestClock.adjust("1 hour")
          assert.deepStrictEqual(yield* versionsOf("Session-1"), [1, 2], "not old enough at the first runs")
          yield* store.append("Session-1", yield* visits(1))
          // the run at 2 hours removes the first two, recorded at 0
          yield* TestClock.adjust("1 hour")
          yield* eventually(Effect.map(versionsOf("Session-1"), (versions) => versions.join() === "3"))
        })
      )
      // closed: no more runs
      yield* TestClock.adjust("10 hours")
      yield* Effect.yieldNow()
      assert.deepStrictEqual(yield* versionsOf("Session-1"), [3])
    }).pipe(Effect.provide(MemoryEventStore.layer()))
  )

  it.effect("through Tenancy it applies to the tenant's streams only", () =>
    Effect.gen(function* () {
      const shared = yield* EventStore.EventStore
      const appendFor = (tenant: string) =>
        Effect.flatMap(visits(3), (events) =>
          Tenancy.withTenant(tenant)(
            Effect.flatMap(EventStore.EventStore, (store) => store.append("Session-1", events))
          ).pipe(Effect.provide(Tenancy.layerShared), Effect.provideService(EventStore.EventStore, shared))
        )
      yield* appendFor("acme")
      yield* appendFor("globex")
      const reports = yield* Tenancy.withTenant("acme")(
        Retention.apply([Retention.policy({ category: "Session", maxCount: 1 })])
      ).pipe(Effect.provide(Tenancy.layerShared), Effect.provideService(EventStore.EventStore, shared))
      assert.deepStrictEqual(reports, [{ category: "Session", streams: 1, events: 2 }])
      assert.deepStrictEqual(yield* versionsOf("acme~Session-1"), [3])
      assert.deepStrictEqual(yield* versionsOf("globex~Session-1"), [1, 2, 3])
    }).pipe(Effect.provide(MemoryEventStore.layer()))
  )
})
