import { assert, describe, it } from "@effect/vitest"
import { SqlError } from "@effect/sql/SqlError"
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as CheckpointStore from "../src/CheckpointStore.js"
import * as Event from "../src/Event.js"
import * as EventStore from "../src/EventStore.js"
import * as MemoryEventStore from "../src/MemoryEventStore.js"
import * as Projection from "../src/Projection.js"
import * as Upcaster from "../src/Upcaster.js"
import * as Wakeup from "../src/Wakeup.js"
import { uniqueCategory } from "./support/ids.js"

const Deposited = Schema.TaggedStruct("Deposited", { amount: Schema.Number })
const Withdrawn = Schema.TaggedStruct("Withdrawn", { amount: Schema.Number })
const Money = Schema.Union(Deposited, Withdrawn)

const deposit = (amount: number, type = "Deposited") => Event.make({ type, data: { amount } })

const appendTo = (streamId: string, ...events: ReadonlyArray<Effect.Effect<Event.EventData>>) =>
  Effect.flatMap(Effect.all(events), (data) => Effect.flatMap(EventStore.EventStore, (s) => s.append(streamId, data)))

const stores = () =>
  Layer.mergeAll(MemoryEventStore.layer(), CheckpointStore.layerMemory, Projection.layerRegistry).pipe(
    Layer.provideMerge(Wakeup.layer)
  )

/** A balance read model in a Ref: handled event ids per stream, in order, and the balance. */
const balances = (options: {
  readonly name: string
  readonly category: string
  readonly partitions?: number
  readonly batchSize?: number
  readonly onPoison?: Projection.PoisonPolicy
  readonly version?: number
  readonly failOn?: (amount: number) => boolean
}) =>
  Effect.map(
    Ref.make(new Map<string, { readonly ids: ReadonlyArray<string>; readonly balance: number }>()),
    (model) => ({
      model,
      projection: Projection.make({
        name: options.name,
        events: Money,
        categories: [options.category],
        retry: Schedule.recurs(1),
        ...(options.partitions === undefined ? {} : { partitions: options.partitions }),
        ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
        ...(options.onPoison === undefined ? {} : { onPoison: options.onPoison }),
        ...(options.version === undefined ? {} : { version: options.version }),
        handle: (event, envelope) =>
          options.failOn?.(event.amount)
            ? Effect.fail(`refusing ${event.amount}`)
            : Ref.update(model, (m) => {
                const current = m.get(envelope.streamId) ?? { ids: [], balance: 0 }
                const delta = event._tag === "Deposited" ? event.amount : -event.amount
                return new Map(m).set(envelope.streamId, {
                  ids: [...current.ids, envelope.eventId],
                  balance: current.balance + delta
                })
              }),
        truncate: Ref.set(model, new Map())
      })
    })
  )

const waitUntil = <E, R>(condition: Effect.Effect<boolean, E, R>) =>
  condition.pipe(
    Effect.repeat({ until: (done) => done, schedule: Schedule.spaced("10 millis") }),
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("condition not reached in 10 s") })
  )

describe("Projection definitions", () => {
  it("refuses invalid definitions when made", () => {
    const base = { name: "p", events: Money, handle: () => Effect.void }
    assert.throws(() => Projection.make({ ...base, name: "" }), /name/)
    assert.throws(() => Projection.make({ ...base, partitions: 0 }), /partition/)
    assert.throws(() => Projection.make({ ...base, batchSize: 1.5 }), /batch size/)
    assert.throws(() => Projection.make({ name: "p", events: Money }), /handle/)
  })
})

describe("Projection on memory stores", () => {
  it.live("takes a codec already built (a decider's): its renamed types are read, upcast", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const codec = yield* Upcaster.codec({
        events: Money,
        upcasters: [Upcaster.rename({ from: "Credited", to: "Deposited", version: 1 })]
      })
      const seen = yield* Ref.make<ReadonlyArray<string>>([])
      const projection = Projection.make({
        name: `codec-${category}`,
        events: codec,
        categories: [category],
        handle: (event) => Ref.update(seen, (s) => [...s, `${event._tag} ${event.amount}`])
      })
      yield* appendTo(`${category}-1`, deposit(1, "Credited"), deposit(2), deposit(3, "Withdrawn"))
      yield* Projection.catchUp(projection)
      assert.deepStrictEqual(yield* Ref.get(seen), ["Deposited 1", "Deposited 2", "Withdrawn 3"])
    }).pipe(Effect.provide(stores()))
  )

  it.live("catches up with the events of its types and categories only, each once, in stream order", () =>
    Effect.gen(function* () {
      const [category, other] = [yield* uniqueCategory, yield* uniqueCategory]
      const { model, projection } = yield* balances({ name: `p-${category}`, category, batchSize: 2 })
      yield* appendTo(`${category}-1`, deposit(10), deposit(5, "Withdrawn"), deposit(7, "Ignored"))
      yield* appendTo(`${category}-2`, deposit(3))
      yield* appendTo(`${other}-1`, deposit(100))
      yield* appendTo(`${category}-1`, deposit(1))
      const statuses = yield* Projection.catchUp(projection)
      const m = yield* Ref.get(model)
      assert.deepStrictEqual([...m.keys()].sort(), [`${category}-1`, `${category}-2`])
      assert.strictEqual(m.get(`${category}-1`)!.balance, 6)
      assert.strictEqual(m.get(`${category}-1`)!.ids.length, 3)
      assert.strictEqual(statuses[0]!.processed, 4)
      // nothing new: a second catch-up handles nothing
      const again = yield* Projection.catchUp(projection)
      assert.strictEqual(again[0]!.processed, 0)
      assert.strictEqual((yield* Ref.get(model)).get(`${category}-1`)!.ids.length, 3)
    }).pipe(Effect.provide(stores()))
  )

  it.live("a read that dies while batches are read ahead fails the catch-up with its defect", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const { model, projection } = yield* balances({ name: `p-${category}`, category, batchSize: 2 })
      yield* appendTo(`${category}-1`, deposit(1), deposit(2), deposit(3), deposit(4), deposit(5))
      const exit = yield* Effect.exit(Projection.catchUp(projection))
      assert.isTrue(Exit.isFailure(exit) && Option.isSome(Exit.causeOption(exit)))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "the second page broke")
      // the first batch was handled before the read ahead of it died
      assert.strictEqual((yield* Ref.get(model)).get(`${category}-1`)?.balance, 3)
    }).pipe(
      Effect.provide(
        Layer.mergeAll(
          // the second page read dies: the reader ahead of the handler must not end silently (the runner
          // would wait for its batch forever)
          Layer.effect(
            EventStore.EventStore,
            Effect.gen(function* () {
              const store = yield* EventStore.EventStore
              let reads = 0
              return {
                ...store,
                readAllPage: (options) =>
                  ++reads === 2 ? Effect.die(new Error("the second page broke")) : store.readAllPage(options)
              }
            })
          ).pipe(Layer.provide(MemoryEventStore.layer())),
          CheckpointStore.layerMemory
        )
      )
    )
  )

  it.live("tails the log: events appended after catch-up are handled, woken by hints", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const { model, projection } = yield* balances({ name: `p-${category}`, category })
      yield* appendTo(`${category}-1`, deposit(1))
      // a poll interval far longer than the test: only hints can wake the runner in time
      const runner = yield* Effect.fork(Projection.run(projection, { pollInterval: "1 hour" }))
      yield* waitUntil(Effect.map(Ref.get(model), (m) => m.get(`${category}-1`)?.balance === 1))
      yield* appendTo(`${category}-1`, deposit(2))
      yield* waitUntil(Effect.map(Ref.get(model), (m) => m.get(`${category}-1`)?.balance === 3))
      const statuses = Effect.flatMap(Projection.Registry, (r) => r.statuses)
      yield* waitUntil(Effect.map(statuses, ([status]) => status?.state === "live"))
      const [status] = yield* statuses
      assert.strictEqual(status!.lag.events, 0)
      assert.deepStrictEqual(
        status!.owned.map((p) => p.processed),
        [2]
      )
      yield* Fiber.interrupt(runner)
    }).pipe(Effect.provide(stores()))
  )

  it.live("the lag of partitions behind counts the events between their checkpoints and the head once", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const gate = yield* Deferred.make<void>()
      // every partition with events is held at its first batch
      const projection = Projection.make({
        name: `lag-${category}`,
        events: Money,
        categories: [category],
        partitions: 4,
        handle: () => Deferred.await(gate)
      })
      for (let i = 0; i < 16; i++) yield* appendTo(`${category}-${i}`, deposit(1))
      const runner = yield* Effect.fork(Projection.run(projection, { pollInterval: "1 hour" }))
      const statuses = Effect.flatMap(Projection.Registry, (r) => r.statuses)
      yield* Effect.gen(function* () {
        yield* waitUntil(Effect.map(statuses, ([s]) => s !== undefined && s.owned.length === 4))
        const [status] = yield* statuses
        assert.isAtLeast(status!.owned.filter((p) => p.state !== "live").length, 2, "several partitions behind")
        assert.strictEqual(status!.lag.events, 16)
      }).pipe(
        // the batches in flight finish before the runner stops, pass or fail
        Effect.ensuring(Effect.zipRight(Deferred.succeed(gate, undefined), Fiber.interrupt(runner)))
      )
    }).pipe(Effect.provide(stores()))
  )

  it.live("poison policy stop: the partition halts before the poison event, with the error", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      // batches of one: memory effects are at-least-once, a failed batch's earlier events would be applied again
      const { model, projection } = yield* balances({
        name: `p-${category}`,
        category,
        batchSize: 1,
        failOn: (amount) => amount === 13
      })
      yield* appendTo(`${category}-1`, deposit(1), deposit(2), deposit(13), deposit(4))
      const error = yield* Effect.flip(Projection.catchUp(projection))
      assert.strictEqual(error._tag, "ProjectionHalted")
      assert.include(error._tag === "ProjectionHalted" ? error.error : "", "refusing 13")
      assert.strictEqual((yield* Ref.get(model)).get(`${category}-1`)!.balance, 3)
      const [stored] = yield* Effect.flatMap(CheckpointStore.CheckpointStore, (s) =>
        s.partitions({ name: projection.name, version: 1 })
      )
      const events = yield* Effect.flatMap(EventStore.EventStore, (s) =>
        Stream.runCollect(s.readAll({ categories: [category] }))
      ).pipe(Effect.map(Chunk.toReadonlyArray))
      assert.deepStrictEqual(stored!.checkpoint, Event.checkpointOf(events[1]!))
    }).pipe(Effect.provide(stores()))
  )

  it.live("poison policy skip: the event goes to the dead letters with its error, the rest is handled", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const { model, projection } = yield* balances({
        name: `p-${category}`,
        category,
        batchSize: 1,
        onPoison: "skip",
        failOn: (amount) => amount === 13
      })
      yield* appendTo(`${category}-1`, deposit(1), deposit(13), deposit(4))
      // an event of a known type whose data does not decode is poison too, without retries
      yield* appendTo(`${category}-2`, Event.make({ type: "Deposited", data: { amount: "lots" } }))
      yield* Projection.catchUp(projection)
      assert.strictEqual((yield* Ref.get(model)).get(`${category}-1`)!.balance, 5)
      const letters = yield* Projection.deadLetters(projection.name)
      assert.deepStrictEqual(
        letters.map((l) => [l.event.streamId, l.event.version]),
        [
          [`${category}-1`, 2],
          [`${category}-2`, 1]
        ]
      )
      assert.include(letters[0]!.error, "refusing 13")
      assert.include(letters[1]!.error, "Deposited")
    }).pipe(Effect.provide(stores()))
  )

  it.live("a handler failing transiently is retried: nothing is dead-lettered, nothing applied twice", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const failures = yield* Ref.make(2)
      const seen = yield* Ref.make<ReadonlyArray<number>>([])
      const projection = Projection.make({
        name: `p-${category}`,
        events: Money,
        categories: [category],
        onPoison: "skip",
        retry: Schedule.recurs(3),
        handle: (event) =>
          Effect.flatMap(
            Ref.getAndUpdate(failures, (n) => n - 1),
            (left) => (left > 0 ? Effect.fail("not now") : Ref.update(seen, (s) => [...s, event.amount]))
          )
      })
      yield* appendTo(`${category}-1`, deposit(1), deposit(2))
      yield* Projection.catchUp(projection)
      assert.deepStrictEqual(yield* Ref.get(seen), [1, 2])
      assert.deepStrictEqual(yield* Projection.deadLetters(projection.name), [])
    }).pipe(Effect.provide(stores()))
  )

  it.live("a lease that expires during a slow catch-up is kept: every event is handled", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const { model, projection } = yield* balances({ name: `p-${category}`, category })
      yield* appendTo(`${category}-1`, ...Array.from({ length: 6 }, () => deposit(1)))
      const slow = {
        ...projection,
        handleBatch: (events: ReadonlyArray<unknown>) =>
          Effect.zipRight(Effect.sleep("150 millis"), projection.handleBatch(events as never))
      }
      const [status] = yield* Projection.catchUp(slow, { leaseTtl: "50 millis" })
      assert.strictEqual(status!.processed, 6)
      assert.strictEqual((yield* Ref.get(model)).get(`${category}-1`)!.balance, 6)
    }).pipe(Effect.provide(stores()))
  )

  it.live("database failures in a handler are retried as long as they last; bad data is poison", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const failures = yield* Ref.make(3)
      const seen = yield* Ref.make<ReadonlyArray<number>>([])
      const projection = Projection.make({
        name: `p-${category}`,
        events: Money,
        categories: [category],
        onPoison: "skip",
        batchSize: 1,
        retry: Schedule.recurs(1),
        handle: (event) =>
          event.amount === 23
            ? Effect.fail(new SqlError({ cause: { code: "23505" }, message: "duplicate key" }))
            : Effect.flatMap(
                Ref.getAndUpdate(failures, (n) => n - 1),
                (left) =>
                  left > 0
                    ? Effect.fail(new SqlError({ cause: { code: "40P01" }, message: "deadlock detected" }))
                    : Ref.update(seen, (s) => [...s, event.amount])
              )
      })
      yield* appendTo(`${category}-1`, deposit(1), deposit(23), deposit(2))
      yield* Projection.catchUp(projection)
      // three deadlocks outlast the handler's own retry (one), yet nothing is dead-lettered but the bad row
      assert.deepStrictEqual(yield* Ref.get(seen), [1, 2])
      const letters = yield* Projection.deadLetters(projection.name)
      assert.deepStrictEqual(
        letters.map((l) => l.event.version),
        [2]
      )
    }).pipe(Effect.provide(stores()))
  )

  it.live("closing the Layer's scope mid-batch keeps the batch's effects and its checkpoint together", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const name = `shutdown-${category}`
      for (let i = 0; i < 6; i++) yield* appendTo(`${category}-${i % 2}`, deposit(i))
      const handled = yield* Ref.make<ReadonlyArray<string>>([])
      const inBatch = yield* Deferred.make<void>()
      const projection = Projection.make({
        name,
        events: Money,
        categories: [category],
        batchSize: 4,
        // the batch's effect happens, then the scope closes while the batch is still running
        handleBatch: (batch) =>
          Effect.zipRight(
            Ref.update(handled, (ids) => [...ids, ...batch.map((d) => d.envelope.eventId)]),
            Effect.zipRight(Deferred.succeed(inBatch, undefined), Effect.sleep("200 millis"))
          )
      })
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(Projection.layer(projection), scope)
      yield* Deferred.await(inBatch)
      yield* Scope.close(scope, Exit.void)

      const [stored] = yield* Effect.flatMap(CheckpointStore.CheckpointStore, (s) => s.partitions({ name, version: 1 }))
      const all = yield* Stream.runCollect(
        Effect.flatMap(EventStore.EventStore, (s) => Effect.succeed(s.readAll({ categories: [category] }))).pipe(
          Stream.unwrap
        )
      )
      const upToCheckpoint = Chunk.toReadonlyArray(all)
        .filter((e) => Event.checkpointOrder(Event.checkpointOf(e), stored!.checkpoint) <= 0)
        .map((e) => e.eventId)
      assert.deepStrictEqual(yield* Ref.get(handled), upToCheckpoint, "effects and checkpoint parted")
      assert.strictEqual(upToCheckpoint.length, 4, "the batch under way was finished")
    }).pipe(Effect.provide(stores()))
  )

  it.live("rebuild empties the read model and replays every event", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const { model, projection } = yield* balances({ name: `p-${category}`, category })
      yield* appendTo(`${category}-1`, deposit(1), deposit(2))
      yield* Projection.catchUp(projection)
      const before = yield* Ref.get(model)
      yield* Projection.rebuild(projection)
      assert.strictEqual((yield* Ref.get(model)).size, 0)
      yield* Projection.catchUp(projection)
      assert.deepStrictEqual(yield* Ref.get(model), before)
    }).pipe(Effect.provide(stores()))
  )

  it.live("a rebuild requested from outside waits for a worker, then is done once by the running workers", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const truncated = yield* Ref.make(0)
      const { model, projection: base } = yield* balances({ name: `p-${category}`, category, partitions: 2 })
      const projection = {
        ...base,
        truncate: Effect.zipRight(
          Ref.update(truncated, (n) => n + 1),
          base.truncate
        )
      }
      const id = { name: projection.name, version: 1 }
      const store = yield* CheckpointStore.CheckpointStore
      const streams = Array.from({ length: 4 }, (_, i) => `${category}-${i}`)
      for (const streamId of streams) yield* appendTo(streamId, deposit(1), deposit(2))
      yield* Projection.catchUp(projection)
      const before = yield* Ref.get(model)
      // no worker runs: the request stays pending, visible to the operator
      yield* store.requestRebuild(id)
      const listed = (yield* store.projections).find((p) => p.id.name === id.name)
      assert.deepStrictEqual(listed, { id, partitions: 2, active: true, pendingRebuild: true })
      assert.strictEqual(yield* Ref.get(truncated), 0)
      const options = { pollInterval: "20 millis", leaseTtl: "600 millis" } as const
      const a = yield* Effect.fork(Projection.run(projection, { ...options, workerId: "a" }))
      const b = yield* Effect.fork(Projection.run(projection, { ...options, workerId: "b" }))
      yield* waitUntil(Effect.map(store.partitions(id), (partitions) => partitions.every((p) => !p.pendingRebuild)))
      yield* waitUntil(
        Effect.map(Ref.get(model), (m) => streams.every((s) => m.get(s)?.ids.length === before.get(s)!.ids.length))
      )
      assert.strictEqual(yield* Ref.get(truncated), 1, "two workers, one rebuild")
      assert.deepStrictEqual(yield* Ref.get(model), before, "replayed once into the emptied read model")
      // the runners catch up as usual after it
      yield* appendTo(streams[0]!, deposit(5))
      yield* waitUntil(Effect.map(Ref.get(model), (m) => m.get(streams[0]!)!.balance === 8))
      yield* Fiber.interrupt(a)
      yield* Fiber.interrupt(b)
    }).pipe(Effect.provide(stores()))
  )

  it.live("after a rebuild every partition is live again, one that never had an event too", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const { projection } = yield* balances({ name: `p-${category}`, category, partitions: 2 })
      const id = { name: projection.name, version: 1 }
      const store = yield* CheckpointStore.CheckpointStore
      // events in partition 0 only: partition 1 stays at the start of the log
      const streamId = Array.from({ length: 64 }, (_, i) => `${category}-${i}`).find(
        (s) => Event.partitionOf(s, 2) === 0
      )!
      yield* appendTo(streamId, deposit(1), deposit(2))
      const runner = yield* Effect.fork(
        Projection.run(projection, { pollInterval: "20 millis", leaseTtl: "600 millis" })
      )
      const allLive = Effect.map(store.partitions(id), (ps) => ps.length === 2 && ps.every((p) => p.live))
      yield* waitUntil(allLive)
      yield* store.requestRebuild(id)
      yield* waitUntil(Effect.map(store.partitions(id), (ps) => ps.every((p) => !p.pendingRebuild)))
      yield* waitUntil(allLive)
      yield* Fiber.interrupt(runner)
    }).pipe(Effect.provide(stores()))
  )

  it.live("a dead letter retried from outside is handled again and removed; failing again it stays", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const refusing = new Set([13, 17])
      const { model, projection } = yield* balances({
        name: `p-${category}`,
        category,
        batchSize: 1,
        onPoison: "skip",
        failOn: (amount) => refusing.has(amount)
      })
      const store = yield* CheckpointStore.CheckpointStore
      yield* appendTo(`${category}-1`, deposit(1), deposit(13), deposit(17), deposit(4))
      const runner = yield* Effect.fork(
        Projection.run(projection, { pollInterval: "20 millis", leaseTtl: "600 millis" })
      )
      yield* waitUntil(Effect.map(Projection.deadLetters(projection.name), (letters) => letters.length === 2))
      const [thirteen, seventeen] = yield* Projection.deadLetters(projection.name)
      assert.strictEqual((yield* Ref.get(model)).get(`${category}-1`)!.balance, 5)
      // 13 is handled now; 17 is still refused
      refusing.delete(13)
      yield* store.retryDeadLetter(projection.name, thirteen!.id)
      yield* store.retryDeadLetter(projection.name, seventeen!.id)
      yield* waitUntil(
        Effect.map(Projection.deadLetters(projection.name), (letters) => letters.every((l) => !l.retryRequested))
      )
      const [left] = yield* Projection.deadLetters(projection.name)
      assert.deepStrictEqual(
        (yield* Projection.deadLetters(projection.name)).map((l) => l.id),
        [seventeen!.id],
        "the handled letter is gone, the refused one stays"
      )
      assert.include(left!.error, "refusing 17")
      assert.isTrue(DateTime.greaterThanOrEqualTo(left!.at, seventeen!.at), "the time of the failed retry")
      const handled = (yield* Ref.get(model)).get(`${category}-1`)!
      assert.strictEqual(handled.balance, 18)
      assert.strictEqual(new Set(handled.ids).size, handled.ids.length, "each event handled once")
      assert.strictEqual(handled.ids.length, 3)
      yield* Fiber.interrupt(runner)
    }).pipe(Effect.provide(stores()))
  )

  it.live("a new version builds beside the old one and becomes active once caught up", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const name = `p-${category}`
      const v1 = yield* balances({ name, category })
      const v2 = yield* balances({ name, category, version: 2 })
      assert.isTrue(Option.isNone(yield* Projection.activeVersion(name)))
      yield* appendTo(`${category}-1`, deposit(1))
      yield* Projection.catchUp(v1.projection)
      assert.deepStrictEqual(yield* Projection.activeVersion(name), Option.some(1))
      yield* Projection.catchUp(v2.projection)
      assert.deepStrictEqual(yield* Projection.activeVersion(name), Option.some(2))
      assert.deepStrictEqual(yield* Ref.get(v2.model), yield* Ref.get(v1.model))
      // the old version catching up again does not take reads back
      yield* Projection.catchUp(v1.projection)
      assert.deepStrictEqual(yield* Projection.activeVersion(name), Option.some(2))
    }).pipe(Effect.provide(stores()))
  )

  it.live("changing the partition count of a stored version is refused", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      yield* Projection.catchUp((yield* balances({ name: `p-${category}`, category })).projection)
      const repartitioned = (yield* balances({ name: `p-${category}`, category, partitions: 2 })).projection
      const error = yield* Effect.flip(Projection.catchUp(repartitioned))
      assert.strictEqual(error._tag, "PartitionCountMismatch")
    }).pipe(Effect.provide(stores()))
  )

  it.live("two runners share 4 partitions: each takes two, every event is handled once, in stream order", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const { model, projection } = yield* balances({ name: `p-${category}`, category, partitions: 4, batchSize: 3 })
      const streams = Array.from({ length: 8 }, (_, i) => `${category}-${i}`)
      const options = { pollInterval: "20 millis", leaseTtl: "1500 millis" } as const
      const a = yield* Effect.fork(Projection.run(projection, { ...options, workerId: "a" }))
      const b = yield* Effect.fork(Projection.run(projection, { ...options, workerId: "b" }))
      const written = new Map<string, Array<string>>()
      for (let round = 0; round < 5; round++) {
        for (const streamId of streams) {
          const event = yield* deposit(1)
          yield* Effect.flatMap(EventStore.EventStore, (s) => s.append(streamId, [event]))
          written.set(streamId, [...(written.get(streamId) ?? []), event.eventId])
        }
      }
      yield* waitUntil(
        Effect.map(Ref.get(model), (m) => streams.every((s) => m.get(s)?.ids.length === written.get(s)!.length))
      )
      const m = yield* Ref.get(model)
      for (const s of streams) assert.deepStrictEqual(m.get(s)!.ids, written.get(s))
      yield* waitUntil(
        Effect.map(
          Effect.flatMap(Projection.Registry, (r) => r.statuses),
          (statuses) => statuses.every((s) => s.owned.length === 2)
        )
      )
      yield* Fiber.interrupt(a)
      // b takes a's partitions over
      yield* waitUntil(
        Effect.map(
          Effect.flatMap(Projection.Registry, (r) => r.statuses),
          (statuses) => statuses.length === 1 && statuses[0]!.owned.length === 4
        )
      )
      yield* appendTo(streams[0]!, deposit(1))
      yield* waitUntil(Effect.map(Ref.get(model), (m) => m.get(streams[0]!)!.ids.length === 6))
      yield* Fiber.interrupt(b)
    }).pipe(Effect.provide(stores()))
  )
})
