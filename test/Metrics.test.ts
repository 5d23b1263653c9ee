import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { makeTransfer } from "../examples/bank/Transfer.js"
import * as CheckpointStore from "../src/CheckpointStore.js"
import * as CommandBus from "../src/CommandBus.js"
import * as Event from "../src/Event.js"
import * as EventStore from "../src/EventStore.js"
import * as MemoryEventStore from "../src/MemoryEventStore.js"
import * as Prometheus from "../src/http/prometheus.js"
import * as Metrics from "../src/Metrics.js"
import * as Outbox from "../src/Outbox.js"
import * as Projection from "../src/Projection.js"
import * as SagaStore from "../src/SagaStore.js"
import * as SqlEventStore from "../src/sql/SqlEventStore.js"
import { accountHandlers, Accounts, Deposit, OpenAccount } from "./support/commands.js"
import { uniqueCategory } from "./support/ids.js"
import { sqliteMemory } from "./support/sql.js"

// metrics are process-global: every assertion compares values before and after

const count = (metric: Metric.Metric.Counter<number>) => Effect.map(Metric.value(metric), (s) => s.count)
const tagged = <T, I, O>(metric: Metric.Metric<T, I, O>, ...pairs: ReadonlyArray<readonly [string, string]>) =>
  pairs.reduce((m, [key, value]) => Metric.tagged(m, key, value), metric)

/** The store metrics, read together. */
const storeCounts = Effect.all({
  ok: count(tagged(Metrics.appendsTotal, ["outcome", "ok"])),
  conflict: count(tagged(Metrics.appendsTotal, ["outcome", "ConcurrencyConflict"])),
  invalid: count(tagged(Metrics.appendsTotal, ["outcome", "InvalidAppend"])),
  conflicts: count(Metrics.conflictsTotal),
  appended: count(Metrics.eventsAppendedTotal),
  readStream: count(tagged(Metrics.eventsReadTotal, ["read", "stream"])),
  readAll: count(tagged(Metrics.eventsReadTotal, ["read", "all"]))
})

const deltas = <K extends string>(before: Record<K, number>, after: Record<K, number>) =>
  Object.fromEntries(Object.keys(before).map((k) => [k, after[k as K] - before[k as K]])) as Record<K, number>

const event = (n: number) => Event.make({ type: "Counted", data: { n } })

/** The Prometheus text of `/metrics` (see `EventBrowserApi`). */
const prometheus = Effect.map(Metric.snapshot, Prometheus.render)

const waitUntil = <E, R>(condition: Effect.Effect<boolean, E, R>) =>
  condition.pipe(
    Effect.repeat({ until: (done) => done, schedule: Schedule.spaced("20 millis") }),
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("condition not reached in 10 s") })
  )

describe("Metrics", () => {
  for (const [name, store] of [
    ["memory", MemoryEventStore.layer()],
    ["SQLite", SqlEventStore.layer().pipe(Layer.provide(sqliteMemory), Layer.orDie)]
  ] as const) {
    it.live(`the ${name} store counts appends, events appended, conflicts and events read`, () =>
      Effect.gen(function* () {
        const streamId = `${yield* uniqueCategory}-1`
        const s = yield* EventStore.EventStore
        // the reads below see only this stream's events: the store is fresh
        const before = yield* storeCounts
        yield* s.append(streamId, [yield* event(1)], { expectedVersion: Event.NoStream })
        const conflict = yield* Effect.flip(s.append(streamId, [yield* event(2)], { expectedVersion: Event.NoStream }))
        assert.strictEqual(conflict._tag, "ConcurrencyConflict")
        yield* s.append(streamId, [yield* event(3), yield* event(4)], { expectedVersion: Event.Exact(1) })
        const invalid = yield* Effect.flip(s.append(streamId, [{ eventId: "x" } as never]))
        assert.strictEqual(invalid._tag, "InvalidAppend")
        assert.strictEqual(Chunk.size(yield* Stream.runCollect(s.readStream(streamId))), 3)
        assert.strictEqual(Chunk.size(yield* Stream.runCollect(s.readAll({ batchSize: 2 }))), 3)
        assert.deepStrictEqual(deltas(before, yield* storeCounts), {
          ok: 2,
          conflict: 1,
          invalid: 1,
          conflicts: 1,
          appended: 3,
          readStream: 3,
          readAll: 3
        })
        const text = yield* prometheus
        for (const line of [
          "# TYPE eventsourcing_appends_total counter",
          'eventsourcing_appends_total{outcome="ok"}',
          'eventsourcing_appends_total{outcome="ConcurrencyConflict"}',
          "# TYPE eventsourcing_events_appended_total counter",
          "# TYPE eventsourcing_conflicts_total counter",
          'eventsourcing_events_read_total{read="stream"}',
          'eventsourcing_events_read_total{read="all"}'
        ]) {
          assert.include(text, line)
        }
      }).pipe(Effect.provide(store))
    )

    it.live(`the ${name} store counts appends under the fiber's metric labels`, () =>
      Effect.gen(function* () {
        const category = yield* uniqueCategory
        const s = yield* EventStore.EventStore
        const labelled = Effect.all({
          ok: count(tagged(Metrics.appendsTotal, ["outcome", "ok"], ["run", category])),
          conflict: count(tagged(Metrics.appendsTotal, ["outcome", "ConcurrencyConflict"], ["run", category])),
          conflicts: count(tagged(Metrics.conflictsTotal, ["run", category])),
          appended: count(tagged(Metrics.eventsAppendedTotal, ["run", category]))
        })
        yield* Effect.gen(function* () {
          yield* s.append(`${category}-1`, [yield* event(1), yield* event(2)], { expectedVersion: Event.NoStream })
          yield* Effect.flip(s.append(`${category}-1`, [yield* event(3)], { expectedVersion: Event.NoStream }))
        }).pipe(Effect.tagMetrics("run", category))
        assert.deepStrictEqual(yield* labelled, { ok: 1, conflict: 1, conflicts: 1, appended: 2 })
      }).pipe(Effect.provide(store))
    )
  }

  it.live("the command bus counts commands by tag and outcome, and times them", () =>
    Effect.gen(function* () {
      const prefix = yield* uniqueCategory
      const bus = yield* CommandBus.CommandBus
      const commands = (command: string, outcome: string) =>
        count(tagged(Metrics.commandsTotal, ["command", command], ["outcome", outcome]))
      const timed = Effect.map(
        Metric.value(tagged(Metrics.commandDurationSeconds, ["command", "OpenAccount"])),
        (s) => s.count
      )
      const read = Effect.all({
        opened: commands("OpenAccount", "success"),
        refused: commands("OpenAccount", "AccountAlreadyOpen"),
        deposits: commands("Deposit", "AccountNotOpen"),
        unknown: commands("(unknown)", "CommandValidationError"),
        timed
      })
      const before = yield* read
      yield* bus.dispatch(new OpenAccount({ accountId: `${prefix}1`, owner: "Ada" }))
      assert.strictEqual(
        (yield* Effect.flip(bus.dispatch(new OpenAccount({ accountId: `${prefix}1`, owner: "Ada" }))))._tag,
        "AccountAlreadyOpen"
      )
      assert.strictEqual(
        (yield* Effect.flip(bus.dispatch(new Deposit({ accountId: `${prefix}2`, amount: 1 }))))._tag,
        "AccountNotOpen"
      )
      // a tag the bus does not know is not a label of its own (it is caller input)
      yield* Effect.flip(bus.dispatch({ _tag: `Nope${prefix}` } as never))
      assert.deepStrictEqual(deltas(before, yield* read), { opened: 1, refused: 1, deposits: 1, unknown: 1, timed: 2 })
      const text = yield* prometheus
      assert.include(text, "# TYPE eventsourcing_commands_total counter")
      assert.include(text, 'eventsourcing_commands_total{command="OpenAccount",outcome="AccountAlreadyOpen"}')
      assert.include(text, "# TYPE eventsourcing_command_duration_seconds histogram")
      assert.include(text, 'eventsourcing_command_duration_seconds_bucket{command="OpenAccount",le="+Inf"}')
      assert.notInclude(text, `Nope${prefix}`)
    }).pipe(
      Effect.provide(
        CommandBus.layer({ groups: [Accounts], retry: Schedule.recurs(0) }).pipe(
          Layer.provide(accountHandlers()),
          Layer.provide(MemoryEventStore.layer())
        )
      )
    )
  )

  it.live("a runner's lag gauges show the waiting events while it is stuck, and 0 once caught up", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const name = `lag-${category}`
      const gauge = (metric: Metric.Metric.Gauge<number>) =>
        Effect.map(
          Metric.value(tagged(metric, ["projection", name], ["version", "1"], ["partition", "0"])),
          (s) => s.value
        )
      const stuck = yield* Ref.make(true)
      const s = yield* EventStore.EventStore
      yield* s.append(`${category}-1`, [yield* event(1), yield* event(2), yield* event(3)])
      const projection = Projection.make({
        name,
        events: Schema.TaggedStruct("Counted", { n: Schema.Number }),
        categories: [category],
        // the handler fails (and is retried) until told otherwise: the runner is behind meanwhile
        retry: Schedule.spaced("20 millis"),
        handle: () => Effect.flatMap(Ref.get(stuck), (yes) => (yes ? Effect.fail("not now") : Effect.void))
      })
      const runner = yield* Effect.fork(
        Projection.run(projection, { leaseTtl: "300 millis", pollInterval: "20 millis" }).pipe(
          Logger.withMinimumLogLevel(LogLevel.Error)
        )
      )
      yield* waitUntil(
        Effect.map(
          Effect.all([gauge(Metrics.projectionLagEvents), gauge(Metrics.projectionLagSeconds)]),
          // the age of the oldest waiting event grows, although the runner commits nothing
          ([events, seconds]) => events === 3 && seconds > 0
        )
      )
      assert.include(
        yield* prometheus,
        `eventsourcing_projection_lag_events{projection="${name}",version="1",partition="0"} 3`
      )
      yield* Ref.set(stuck, false)
      yield* waitUntil(
        Effect.map(
          Effect.all([gauge(Metrics.projectionLagEvents), gauge(Metrics.projectionLagSeconds)]),
          ([events, seconds]) => events === 0 && seconds === 0
        )
      )
      yield* Fiber.interrupt(runner)
    }).pipe(Effect.provide(Layer.mergeAll(MemoryEventStore.layer(), CheckpointStore.layerMemory)))
  )

  it.live("the outbox relay times each publish", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const name = `relay-${category}`
      const histogram = Effect.map(
        Metric.value(tagged(Metrics.outboxPublishDurationSeconds, ["relay", name])),
        (s) => s.count
      )
      const s = yield* EventStore.EventStore
      yield* s.append(`${category}-1`, [yield* event(1), yield* event(2), yield* event(3)])
      const before = yield* histogram
      yield* Projection.catchUp(Outbox.relay({ name, categories: [category], batchSize: 2 }))
      // two batches: two publishes
      assert.strictEqual((yield* histogram) - before, 2)
      assert.include(yield* prometheus, `eventsourcing_outbox_publish_duration_seconds_count{relay="${name}"} 2`)
    }).pipe(
      Effect.provide(
        Layer.mergeAll(
          MemoryEventStore.layer(),
          CheckpointStore.layerMemory,
          Layer.succeed(Outbox.Publisher, {
            subjectOf: (e) => e.streamId,
            publish: (events) =>
              Effect.succeed(events.map((e) => ({ eventId: e.eventId, sequence: 1, duplicate: false })))
          })
        )
      )
    )
  )

  it.live("sagas count instances started and ended, by status", () =>
    Effect.gen(function* () {
      const prefix = yield* uniqueCategory
      const saga = makeTransfer({ name: `transfer-${prefix}`, category: `${prefix}Transfer`, deadline: "1 hour" })
      const instances = (status: string) =>
        count(tagged(Metrics.sagaInstancesTotal, ["saga", saga.name], ["status", status]))
      const read = Effect.all({ started: instances("started"), completed: instances("completed") })
      const bus = yield* CommandBus.CommandBus
      yield* bus.dispatch(new OpenAccount({ accountId: "A", owner: "Ada" }))
      yield* bus.dispatch(new OpenAccount({ accountId: "B", owner: "Bob" }))
      yield* bus.dispatch(new Deposit({ accountId: "A", amount: 100 }))
      const s = yield* EventStore.EventStore
      const append = (type: string, data: object) =>
        Effect.flatMap(Event.make({ type, data }), (e) => s.append(`${prefix}Transfer-t1`, [e]))
      const before = yield* read
      yield* append("TransferRequested", { transferId: "t1", from: "A", to: "B", amount: 30 })
      yield* Projection.catchUp(saga.projection)
      assert.deepStrictEqual(deltas(before, yield* read), { started: 1, completed: 0 })
      yield* append("TransferConfirmed", { transferId: "t1" })
      yield* Projection.catchUp(saga.projection)
      assert.deepStrictEqual(deltas(before, yield* read), { started: 1, completed: 1 })
      assert.include(yield* prometheus, `eventsourcing_saga_instances_total{saga="${saga.name}",status="completed"} 1`)
    }).pipe(
      Effect.provide(
        CommandBus.layer({ groups: [Accounts], retry: Schedule.recurs(0) }).pipe(
          Layer.provide(accountHandlers()),
          Layer.provideMerge(
            Layer.mergeAll(MemoryEventStore.layer(), CheckpointStore.layerMemory, SagaStore.layerMemory)
          )
        )
      )
    )
  )
})
