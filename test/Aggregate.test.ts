import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Aggregate from "../src/Aggregate.js"
import * as Event from "../src/Event.js"
import * as EventStore from "../src/EventStore.js"
import * as MemoryEventStore from "../src/MemoryEventStore.js"
import * as Snapshot from "../src/Snapshot.js"
import * as Upcaster from "../src/Upcaster.js"
import * as SqlEventStore from "../src/sql/SqlEventStore.js"
import * as SqlSnapshotStore from "../src/sql/SqlSnapshotStore.js"
import { isolatedPrefix } from "./support/ids.js"
import { mysqlWithPrefix, pgWithSchema, sqliteMemory } from "./support/sql.js"
import { suite } from "./suites/AggregateSuite.js"

suite("Aggregate on the memory store", (options) => MemoryEventStore.layer(options))
suite("Aggregate on SQLite", (options) => SqlEventStore.layer(options).pipe(Layer.provide(sqliteMemory)))
const schema = isolatedPrefix(import.meta.url)
suite("Aggregate on PostgreSQL", (options) =>
  SqlEventStore.layer({ ...options, schema }).pipe(Layer.provide(pgWithSchema(schema)))
)
suite("Aggregate on MariaDB", (options) =>
  SqlEventStore.layer({ ...options, tablePrefix: `${schema}_` }).pipe(Layer.provide(mysqlWithPrefix(`${schema}_`)))
)

const Counted = Schema.TaggedStruct("Counted", { by: Schema.Int })
const Counter = Aggregate.make({
  category: "Counter",
  events: Counted,
  versions: { Counted: 2 },
  upcasters: [Upcaster.step({ type: "Counted", from: 1, upcast: (old) => ({ by: old.n }) })],
  initialState: 0,
  evolve: (total, event) => total + event.by,
  decide: (command: { readonly add: number }, total) =>
    total + command.add > 10 ? [] : [Counted.make({ by: command.add })]
})

describe("Aggregate", () => {
  it.effect("loads through the codec: events stored at an older version are upcast before evolve", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      yield* store.append("Counter-1", [yield* Event.make({ type: "Counted", schemaVersion: 1, data: { n: 4 } })])
      const handle = Aggregate.handler(Counter)
      const result = yield* handle("1", { add: 5 })
      assert.deepStrictEqual([result.version, result.events], [2, [Counted.make({ by: 5 })]])
      // deciding no events appends nothing and reports the unchanged version
      const none = yield* handle("1", { add: 5 })
      assert.deepStrictEqual([none.version, none.events.length, none.positions.length], [2, 0, 0])
    }).pipe(Effect.provide(MemoryEventStore.layer()))
  )

  it.effect("conflicts are retried by the schedule and surface once it gives up", () =>
    Effect.gen(function* () {
      const inner = yield* MemoryEventStore.make()
      let attempts = 0
      // a store where another writer always got there first
      const contended = EventStore.EventStore.of({
        ...inner,
        append: (streamId) =>
          Effect.suspend(() => {
            attempts++
            return Effect.fail(new EventStore.ConcurrencyConflict({ streamId, expected: Event.NoStream, actual: 1 }))
          })
      })
      const error = yield* Effect.flip(
        Aggregate.handler(Counter)("2", { add: 1 }).pipe(Effect.provideService(EventStore.EventStore, contended))
      )
      assert.strictEqual(error._tag, "ConcurrencyConflict")
      assert.strictEqual(attempts, 6)
    })
  )

  it.effect("a cached state is never used on another history of its stream (deleted and written again)", () =>
    Effect.gen(function* () {
      // one store object whose database is replaced under it, as a restore or a delete-and-rewrite would
      let inner = yield* MemoryEventStore.make()
      const swappable = EventStore.EventStore.of({
        append: (...args) => Effect.suspend(() => inner.append(...args)),
        readStream: (...args) => Stream.suspend(() => inner.readStream(...args)),
        readStreamPage: (...args) => Effect.suspend(() => inner.readStreamPage(...args)),
        readAll: (...args) => Stream.suspend(() => inner.readAll(...args)),
        readAllPage: (...args) => Effect.suspend(() => inner.readAllPage(...args)),
        streamVersion: (...args) => Effect.suspend(() => inner.streamVersion(...args)),
        findCommand: (...args) => Effect.suspend(() => inner.findCommand(...args)),
        head: Effect.suspend(() => inner.head),
        heldBack: (...args) => Effect.suspend(() => inner.heldBack(...args)),
        deleteStream: (...args) => Effect.suspend(() => inner.deleteStream(...args)),
        undeleteStream: (...args) => Effect.suspend(() => inner.undeleteStream(...args)),
        hardDeleteStream: (...args) => Effect.suspend(() => inner.hardDeleteStream(...args)),
        truncateStream: (...args) => Effect.suspend(() => inner.truncateStream(...args)),
        archiveStream: (...args) => Effect.suspend(() => inner.archiveStream(...args)),
        applyRetention: (...args) => Effect.suspend(() => inner.applyRetention(...args))
      })
      const handle = Aggregate.handler(Counter)
      const run = <A, E>(effect: Effect.Effect<A, E, EventStore.EventStore>) =>
        Effect.provideService(effect, EventStore.EventStore, swappable)
      yield* run(handle("3", { add: 1 }))
      yield* run(handle("3", { add: 1 }))
      // the state cached at version 2 is 2; the new history holds 4, 4, 1 at versions 1 to 3
      inner = yield* MemoryEventStore.make()
      for (const by of [4, 4, 1]) yield* run(Aggregate.handler(Counter)("3", { add: by }))
      // 9 + 2 > 10: nothing decided; on the cached state folded on (2 + 1 = 3) it would append
      const result = yield* run(handle("3", { add: 2 }))
      assert.deepStrictEqual([result.version, result.events.length], [3, 0])
    })
  )

  it("a category with '-' or a broken codec declaration is a wiring error at definition", () => {
    assert.throws(() => Aggregate.make({ ...definition, category: "Bad-Category" }))
    assert.throws(() => Aggregate.make({ ...definition, versions: { Counted: 3 } }), /no upcaster from Counted v1/)
  })
})

const definition = {
  category: "Counter",
  events: Counted,
  initialState: 0,
  evolve: (total: number, event: typeof Counted.Type) => total + event.by,
  decide: () => []
}

/** Records the count of events before it: its data shows the state the command was decided on. */
const Seen = Schema.TaggedStruct("Seen", { before: Schema.Int })
const Tally = Aggregate.make({
  category: "Tally",
  events: Seen,
  initialState: 0,
  evolve: (count: number) => count + 1,
  decide: (_: { readonly tick: true }, count) => [Seen.make({ before: count })],
  snapshot: { state: Schema.Int, strategy: Snapshot.everyNEvents(5) }
})

describe("Aggregate on a deleted stream", () => {
  it.effect("a command fails with StreamDeleted, cached or not, and works again once undeleted", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const cached = Aggregate.handler(Counter)
      const uncached = Aggregate.handler(Counter, { cacheCapacity: 0 })
      yield* cached("9", { add: 1 })
      yield* store.deleteStream("Counter-9")
      for (const handle of [cached, uncached]) {
        const error = yield* Effect.flip(handle("9", { add: 1 }))
        assert.deepStrictEqual([error._tag, error._tag === "StreamDeleted" && error.hard], ["StreamDeleted", false])
      }
      yield* store.undeleteStream("Counter-9")
      assert.strictEqual((yield* cached("9", { add: 1 })).version, 2)
      yield* store.hardDeleteStream("Counter-9")
      const error = yield* Effect.flip(cached("9", { add: 1 }))
      assert.deepStrictEqual([error._tag, error._tag === "StreamDeleted" && error.hard], ["StreamDeleted", true])
    }).pipe(Effect.provide(MemoryEventStore.layer()))
  )
})

describe("Aggregate on a truncated stream", () => {
  const stores = {
    memory: Layer.merge(MemoryEventStore.layer(), Snapshot.layerMemory()),
    SQLite: Layer.merge(SqlEventStore.layer(), SqlSnapshotStore.layer()).pipe(Layer.provide(sqliteMemory))
  }
  for (const [name, storeLayer] of Object.entries(stores)) {
    it.effect(`loads as before when a snapshot covers the truncated events (${name})`, () =>
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const cached = Aggregate.handler(Tally)
        const uncached = Aggregate.handler(Tally, { cacheCapacity: 0 })
        for (let i = 0; i < 7; i++) yield* cached("1", { tick: true })
        // the snapshot is at version 5: versions 1-5 go
        assert.strictEqual(yield* store.truncateStream("Tally-1", 6), 5)
        const fresh = yield* uncached("1", { tick: true })
        assert.deepStrictEqual([fresh.version, fresh.events], [8, [Seen.make({ before: 7 })]])
        // a handler that cached version 7 reads on from there, finding the version 8 it did not write
        const again = yield* cached("1", { tick: true })
        assert.deepStrictEqual([again.version, again.events], [9, [Seen.make({ before: 8 })]])
      }).pipe(Effect.provide(storeLayer))
    )
  }
})
