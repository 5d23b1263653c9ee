import { assert, describe, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Aggregate from "../src/Aggregate.js"
import * as EventStore from "../src/EventStore.js"
import * as MemoryEventStore from "../src/MemoryEventStore.js"
import * as Snapshot from "../src/Snapshot.js"
import * as SqlEventStore from "../src/sql/SqlEventStore.js"
import * as SqlSnapshotStore from "../src/sql/SqlSnapshotStore.js"
import { isolatedPrefix, uniqueCategory } from "./support/ids.js"
import { mysqlWithPrefix, pgWithSchema, sqliteMemory } from "./support/sql.js"

const Added = Schema.TaggedStruct("Added", { n: Schema.Int })
const Tally = Schema.Struct({ total: Schema.Int, count: Schema.Int })

const counter = (snapshotVersion = 1) =>
  Aggregate.make({
    category: "Tally",
    events: Added,
    initialState: { total: 0, count: 0 } as typeof Tally.Type,
    evolve: (s, e) => ({ total: s.total + e.n, count: s.count + 1 }),
    decide: (command: { readonly add: number }) => [Added.make({ n: command.add })],
    snapshot: { state: Tally, version: snapshotVersion, strategy: Snapshot.everyNEvents(10) }
  })

/** The memory store, counting the events its stream reads return. */
const countingStore = Effect.gen(function* () {
  const inner = yield* MemoryEventStore.make()
  const reads = { events: 0 }
  const store = EventStore.EventStore.of({
    ...inner,
    readStream: (id, options) => Stream.tap(inner.readStream(id, options), () => Effect.sync(() => reads.events++))
  })
  return { store, reads }
})

const snapshotStoreSuite = <E>(
  name: string,
  storeLayer: Layer.Layer<Snapshot.SnapshotStore | EventStore.EventStore, E>
) =>
  describe(name, () => {
    layer(storeLayer, { timeout: "60 seconds" })((it) => {
      it.effect("keeps the newest snapshots of a stream, reports counts and sizes", () =>
        Effect.gen(function* () {
          const store = yield* Snapshot.SnapshotStore
          const streamId = `${yield* uniqueCategory}-1`
          const before = yield* store.stats
          for (const version of [10, 20, 30, 40]) {
            yield* store.save({
              streamId,
              version,
              stateVersion: 1,
              state: { total: version },
              takenAt: DateTime.unsafeMake(0)
            })
          }
          const latest = Option.getOrThrow(yield* store.load(streamId))
          assert.deepStrictEqual([latest.version, latest.state], [40, { total: 40 }])
          const after = yield* store.stats
          assert.strictEqual(after.count - before.count, 3)
          assert.isAbove(after.bytes, before.bytes)
          assert.isTrue(Option.isNone(yield* store.load(`${streamId}-none`)))
        })
      )

      it.effect("handling loads from the latest snapshot, reads only later events, and saves new ones", () =>
        Effect.gen(function* () {
          const id = yield* uniqueCategory
          const handle = Aggregate.handler(counter())
          for (let i = 1; i <= 25; i++) yield* handle(id, { add: i })
          const store = yield* Snapshot.SnapshotStore
          const latest = Option.getOrThrow(yield* store.load(`Tally-${id}`))
          assert.deepStrictEqual([latest.version, latest.state], [20, { total: 210, count: 20 }])
          const result = yield* handle(id, { add: 1 })
          assert.strictEqual(result.version, 26)
        })
      )

      it.effect("a corrupt snapshot or one of another state version is ignored and the state rebuilt", () =>
        Effect.gen(function* () {
          const id = yield* uniqueCategory
          const store = yield* Snapshot.SnapshotStore
          const handle = Aggregate.handler(counter())
          for (let i = 1; i <= 5; i++) yield* handle(id, { add: 1 })
          yield* store.save({
            streamId: `Tally-${id}`,
            version: 5,
            stateVersion: 1,
            state: { total: "garbage" },
            takenAt: DateTime.unsafeMake(0)
          })
          const warnings: Array<string> = []
          const capture = Logger.make(({ logLevel, message }) => {
            if (logLevel._tag === "Warning") warnings.push([message].flat().map(String).join(" "))
          })
          yield* handle(id, { add: 1 }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
          // ignored with a warning that names it
          assert.isTrue(
            warnings.some((w) => w.startsWith(`ignoring the snapshot of Tally-${id}@5`)),
            `no warning: ${JSON.stringify(warnings)}`
          )
          for (let i = 2; i <= 5; i++) yield* handle(id, { add: 1 })
          // the strategy saved a fresh, correct snapshot at 10 over the corrupt one
          assert.deepStrictEqual(Option.getOrThrow(yield* store.load(`Tally-${id}`)).state, { total: 10, count: 10 })
          // a new state version ignores snapshots of the old one (this one decodes, but is wrong on purpose)
          yield* store.save({
            streamId: `Tally-${id}`,
            version: 10,
            stateVersion: 1,
            state: { total: 999, count: 10 },
            takenAt: DateTime.unsafeMake(0)
          })
          yield* Aggregate.handler(counter(2))(id, { add: 1 })
          const latest = Option.getOrThrow(yield* store.load(`Tally-${id}`))
          assert.deepStrictEqual([latest.version, latest.stateVersion, latest.state], [11, 2, { total: 11, count: 11 }])
          const events = yield* Effect.flatMap(EventStore.EventStore, (s) =>
            Stream.runCollect(s.readStream(`Tally-${id}`))
          )
          assert.strictEqual(Chunk.size(events), 11)
        })
      )
    })
  })

snapshotStoreSuite("Snapshot.layerMemory", Layer.merge(Snapshot.layerMemory(), MemoryEventStore.layer()))
snapshotStoreSuite(
  "SqlSnapshotStore on SQLite",
  Layer.merge(SqlSnapshotStore.layer(), SqlEventStore.layer()).pipe(Layer.provide(sqliteMemory))
)
const schema = isolatedPrefix(import.meta.url)
snapshotStoreSuite(
  "SqlSnapshotStore on PostgreSQL",
  Layer.merge(SqlSnapshotStore.layer({ schema }), SqlEventStore.layer({ schema })).pipe(
    Layer.provide(pgWithSchema(schema))
  )
)
const mysqlPrefix = `${schema}_`
snapshotStoreSuite(
  "SqlSnapshotStore on MariaDB",
  Layer.merge(
    SqlSnapshotStore.layer({ tablePrefix: mysqlPrefix }),
    SqlEventStore.layer({ tablePrefix: mysqlPrefix })
  ).pipe(Layer.provide(mysqlWithPrefix(mysqlPrefix)))
)

describe("Snapshot and Aggregate", () => {
  layer(Snapshot.layerMemory())((it) => {
    it.effect("with a snapshot, loading reads only the events after it", () =>
      Effect.gen(function* () {
        const { reads, store } = yield* countingStore
        const handle = Aggregate.handler(counter())
        const run = <A, E>(effect: Effect.Effect<A, E, EventStore.EventStore>) =>
          Effect.provideService(effect, EventStore.EventStore, store)
        for (let i = 0; i < 23; i++) yield* run(handle("x", { add: 1 }))
        reads.events = 0
        yield* run(handle("x", { add: 1 }))
        assert.strictEqual(reads.events, 3, "events 21-23 only")
      })
    )

    it.effect("a snapshot store that fails never fails the command", () =>
      Effect.gen(function* () {
        const broken = Snapshot.SnapshotStore.of({
          load: () => Effect.fail(new Snapshot.SnapshotStoreError({ operation: "load", cause: "down" })),
          save: () => Effect.fail(new Snapshot.SnapshotStoreError({ operation: "save", cause: "down" })),
          stats: Effect.fail(new Snapshot.SnapshotStoreError({ operation: "stats", cause: "down" }))
        })
        const handle = Aggregate.handler(counter())
        for (let i = 0; i < 12; i++) {
          yield* handle("y", { add: 1 }).pipe(Effect.provideService(Snapshot.SnapshotStore, broken))
        }
        const result = yield* handle("y", { add: 1 }).pipe(Effect.provideService(Snapshot.SnapshotStore, broken))
        assert.strictEqual(result.version, 13)
      }).pipe(Effect.provide(MemoryEventStore.layer()))
    )
  })
})
