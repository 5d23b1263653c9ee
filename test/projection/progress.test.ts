/**
 * A catch-up's progress in the runner's status, and its log lines at a bounded rate. The handler is held
 * by a gate released batch by batch and time is the TestClock's, so nothing depends on the machine's speed.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as CheckpointStore from "../../src/CheckpointStore.js"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as EventBrowserApi from "../../src/http/EventBrowserApi.js"
import * as MemoryEventStore from "../../src/MemoryEventStore.js"
import * as Projection from "../../src/Projection.js"
import { uniqueCategory } from "../support/ids.js"

const Deposited = Schema.TaggedStruct("Deposited", { amount: Schema.Number })

const stores = () => Layer.mergeAll(MemoryEventStore.layer(), CheckpointStore.layerMemory, Projection.layerRegistry)

/** Appends `streams` streams of `perStream` events each. */
const fill = (category: string, streams: number, perStream: number) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const fields = Array.from({ length: perStream }, (_, i) => ({ type: "Deposited", data: { amount: i } }))
    for (let s = 0; s < streams; s++) {
      yield* store.append(`${category}-${s}`, yield* Event.makeAll(fields))
    }
  })

/**
 * A projection whose handler says when a batch comes in (`entered`), then waits for a permit (`gate`): the
 * test holds each batch as long as it likes.
 */
const gated = (name: string, category: string, batchSize: number) =>
  Effect.gen(function* () {
    const entered = yield* Queue.unbounded<number>()
    const gate = yield* Queue.unbounded<void>()
    const projection = Projection.make({
      name,
      events: Deposited,
      categories: [category],
      batchSize,
      handleBatch: (events) => Effect.zipRight(Queue.offer(entered, events.length), Queue.take(gate))
    })
    return { projection, entered, gate }
  })

/**
 * Opens the gate when the test ends, before its runner is interrupted: a memory store's batch is not
 * interruptible, so a failed test would otherwise wait for it forever.
 */
const openOnExit = (gate: Queue.Queue<void>) =>
  Effect.addFinalizer(() =>
    Queue.offerAll(
      gate,
      Array.from({ length: 1000 }, () => undefined)
    )
  )

/** Lets the other fibers run until `condition` holds (no sleep: time is the TestClock's). */
const settle = <E, R>(condition: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function* () {
    for (let i = 0; i < 100_000; i++) {
      if (yield* condition) return
      yield* Effect.yieldNow()
    }
    return yield* Effect.dieMessage("condition not reached")
  })

const status = (name: string) =>
  Effect.flatMap(Projection.Registry, (registry) =>
    Effect.map(registry.statuses, (all) => all.find((s) => s.name === name)!)
  )

describe("Projection progress", () => {
  it.scoped(
    "a rebuild of 100,000 events shows its progress moving, with a sane rate and ETA, then none once live",
    () =>
      Effect.gen(function* () {
        const category = yield* uniqueCategory
        yield* fill(category, 100, 1000)
        const { entered, gate, projection } = yield* gated("progress-rebuild", category, 1000)
        yield* Effect.forkScoped(Projection.run(projection))
        yield* openOnExit(gate)
        const seen: Array<Projection.Status> = []
        // hold each of the first batches in the handler for a second of test time, reading the status meanwhile
        for (let step = 0; step < 6; step++) {
          assert.strictEqual(yield* Queue.take(entered), 1000)
          seen.push(yield* status("progress-rebuild"))
          yield* TestClock.adjust("1 second")
          yield* Queue.offer(gate, undefined)
        }
        const progress = seen.map((s) => Option.getOrThrow(s.progress))
        const dones = new Set(progress.map((p) => p.done))
        assert.isAtLeast(dones.size, 2, "done moves")
        for (const [i, p] of progress.entries()) {
          assert.strictEqual(p.total, 100_000)
          assert.isBelow(p.done, p.total)
          assert.isAtMost(p.done, i * 1000, "no more than the committed batches")
          // a partition's progress and the runner's agree (one partition)
          assert.deepStrictEqual(seen[i]!.owned[0]!.progress, seen[i]!.progress)
          if (p.done > 0) {
            assert.isAbove(p.rate, 0)
            const eta = Option.getOrThrow(p.etaSeconds)
            assert.isAtLeast(eta, 0)
            assert.isAtMost(eta, Math.ceil((p.total - p.done) / p.rate) + 1)
          }
        }
        assert.isTrue(
          progress.slice(1).every((p, i) => p.done >= progress[i]!.done),
          "done never goes back"
        )
        // the event browser shows it
        const shown = Schema.encodeSync(EventBrowserApi.ProjectionStatus)(seen[1]!)
        assert.deepStrictEqual(shown.progress, {
          done: progress[1]!.done,
          total: 100_000,
          rate: progress[1]!.rate,
          etaSeconds: Option.getOrThrow(progress[1]!.etaSeconds)
        })
        assert.deepStrictEqual(shown.owned[0]!.progress, shown.progress)
        // the rest at once: the runner goes live, without progress
        yield* Queue.offerAll(
          gate,
          Array.from({ length: 100 }, () => undefined)
        )
        yield* settle(Effect.map(status("progress-rebuild"), (s) => s.state === "live"))
        const live = yield* status("progress-rebuild")
        assert.isTrue(Option.isNone(live.progress))
        assert.isTrue(Option.isNone(live.owned[0]!.progress))
        assert.strictEqual(live.owned[0]!.processed, 100_000)
        assert.strictEqual(Schema.encodeSync(EventBrowserApi.ProjectionStatus)(live).progress, null)

        // rebuilt in place: the running worker notices at its next supervisor step and replays from the
        // start, with its progress moving again
        yield* Projection.rebuild(projection)
        yield* TestClock.adjust("5 seconds")
        const again: Array<number> = []
        for (let step = 0; step < 4; step++) {
          assert.strictEqual(yield* Queue.take(entered), 1000)
          again.push(Option.getOrThrow((yield* status("progress-rebuild")).progress).done)
          yield* TestClock.adjust("1 second")
          yield* Queue.offer(gate, undefined)
        }
        assert.isAtLeast(new Set(again).size, 2, `done moves during the rebuild: ${again}`)
        assert.isTrue(again.every((done) => done < 100_000))
        yield* Queue.offerAll(
          gate,
          Array.from({ length: 100 }, () => undefined)
        )
        yield* settle(Effect.map(status("progress-rebuild"), (s) => s.state === "live" && Option.isNone(s.progress)))
      }).pipe(Effect.provide(stores())),
    60_000
  )

  it.scoped("logs a catch-up's progress at most once per interval, and once when it goes live", () =>
    Effect.gen(function* () {
      const lines: Array<{ readonly message: string; readonly annotations: Record<string, unknown> }> = []
      const capture = Logger.make(({ annotations, message }) => {
        lines.push({
          message: String(Array.isArray(message) ? message[0] : message),
          annotations: Object.fromEntries(HashMap.toEntries(annotations))
        })
      })
      const category = yield* uniqueCategory
      yield* fill(category, 10, 10)
      const { entered, gate, projection } = yield* gated("progress-log", category, 10)
      const catchUp = yield* Effect.forkScoped(
        Projection.catchUp(projection).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
      )
      yield* openOnExit(gate)
      const progressLines = () => lines.filter((l) => l.message === "catching up")
      const counts: Array<number> = []
      // batches committed 4 s apart: with the default 10 s interval, a line at 12 s and one at 24 s
      for (let step = 0; step < 6; step++) {
        yield* Queue.take(entered)
        counts.push(progressLines().length)
        yield* TestClock.adjust("4 seconds")
        yield* Queue.offer(gate, undefined)
      }
      yield* Queue.take(entered)
      counts.push(progressLines().length)
      assert.deepStrictEqual(counts, [0, 0, 0, 1, 1, 1, 2])
      // the rest without time passing: no more progress lines, one when live
      yield* Queue.offerAll(
        gate,
        Array.from({ length: 10 }, () => undefined)
      )
      yield* Fiber.join(catchUp)
      assert.strictEqual(progressLines().length, 2)
      const [first] = progressLines()
      assert.deepInclude(first!.annotations, { projection: "progress-log", partition: 0, done: 30, total: 100 })
      assert.isAbove(first!.annotations.rate as number, 0)
      assert.isAtLeast(first!.annotations.eta as number, 0)
      const live = lines.filter((l) => l.message === "caught up; live")
      assert.strictEqual(live.length, 1)
      assert.deepInclude(live[0]!.annotations, { projection: "progress-log", partition: 0, done: 100, total: 100 })
    }).pipe(Effect.provide(stores()))
  )

  it.scoped("a catch-up of less than a batch has no progress and logs nothing", () =>
    Effect.gen(function* () {
      const lines: Array<string> = []
      const capture = Logger.make(({ message }) => {
        lines.push(String(Array.isArray(message) ? message[0] : message))
      })
      const category = yield* uniqueCategory
      yield* fill(category, 1, 5)
      const { gate, projection } = yield* gated("progress-short", category, 10)
      yield* Queue.offer(gate, undefined)
      const [partition] = yield* Projection.catchUp(projection).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
      assert.strictEqual(partition!.processed, 5)
      assert.isTrue(Option.isNone(partition!.progress))
      assert.deepStrictEqual(
        lines.filter((l) => l === "catching up" || l === "caught up; live"),
        []
      )
    }).pipe(Effect.provide(stores()))
  )
})
