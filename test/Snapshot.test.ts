/**
 * Snapshots: the SnapshotStore conformance suite (test/suites/SnapshotStoreSuite.ts) on every store, and
 * how the command handler uses a snapshot store (reads only later events; a failing store never fails a
 * command).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Aggregate from "../src/Aggregate.js"
import * as EventStore from "../src/EventStore.js"
import * as MemoryEventStore from "../src/MemoryEventStore.js"
import * as Snapshot from "../src/Snapshot.js"
import * as SqlEventStore from "../src/sql/SqlEventStore.js"
import * as SqlSnapshotStore from "../src/sql/SqlSnapshotStore.js"
import { isolatedPrefix } from "./support/ids.js"
import { mysqlWithPrefix, pgWithSchema, sqliteMemory } from "./support/sql.js"
import { counter, suite } from "./suites/SnapshotStoreSuite.js"

/** Snapshots are what these handlers load from, not their cache of folded states. */
const uncached = { cacheCapacity: 0 }

/** The memory store, counting the events its stream reads return. */
const countingStore = Effect.gen(function* () {
  const inner = yield* MemoryEventStore.make()
  const reads = { events: 0 }
  const store = EventStore.EventStore.of({
    ...inner,
    readStream: (id, options) => Stream.tap(inner.readStream(id, options), () => Effect.sync(() => reads.events++)),
    readStreamPage: (id, options) =>
      Effect.tap(inner.readStreamPage(id, options), (page) => Effect.sync(() => (reads.events += page.events.length)))
  })
  return { store, reads }
})

/** Writes (over any there) a snapshot row whose state is not JSON, straight into `table`. */
const unreadableIn = (table: string) => (streamId: string, version: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.asVoid(
      Effect.zipRight(
        sql`delete from ${sql(table)} where stream_id = ${streamId} and version = ${version}`,
        sql`insert into ${sql(table)} ${sql.insert({
          stream_id: streamId,
          version,
          state_version: 1,
          state: "{not json",
          taken_at: 0
        })}`
      )
    )
  )

suite("Snapshot.layerMemory", Layer.merge(Snapshot.layerMemory(), MemoryEventStore.layer()))
suite(
  "SqlSnapshotStore on SQLite",
  Layer.merge(SqlSnapshotStore.layer(), SqlEventStore.layer()).pipe(Layer.provideMerge(sqliteMemory)),
  { unreadable: unreadableIn("es_snapshots") }
)
const schema = isolatedPrefix(import.meta.url)
suite(
  "SqlSnapshotStore on PostgreSQL",
  Layer.merge(SqlSnapshotStore.layer({ schema }), SqlEventStore.layer({ schema })).pipe(
    Layer.provideMerge(pgWithSchema(schema))
  ),
  { unreadable: unreadableIn(`${schema}.es_snapshots`) }
)
const mysqlPrefix = `${schema}_`
suite(
  "SqlSnapshotStore on MariaDB",
  Layer.merge(
    SqlSnapshotStore.layer({ tablePrefix: mysqlPrefix }),
    SqlEventStore.layer({ tablePrefix: mysqlPrefix })
  ).pipe(Layer.provideMerge(mysqlWithPrefix(mysqlPrefix))),
  { unreadable: unreadableIn(`${mysqlPrefix}snapshots`) }
)

describe("Snapshot and Aggregate", () => {
  layer(Snapshot.layerMemory())((it) => {
    it.effect("with a snapshot, loading reads only the events after it", () =>
      Effect.gen(function* () {
        const { reads, store } = yield* countingStore
        const handle = Aggregate.handler(counter(), uncached)
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
          stats: Effect.fail(new Snapshot.SnapshotStoreError({ operation: "stats", cause: "down" })),
          prune: () => Effect.fail(new Snapshot.SnapshotStoreError({ operation: "prune", cause: "down" })),
          deleteStream: () => Effect.fail(new Snapshot.SnapshotStoreError({ operation: "deleteStream", cause: "down" }))
        })
        const handle = Aggregate.handler(counter(), uncached)
        for (let i = 0; i < 12; i++) {
          yield* handle("y", { add: 1 }).pipe(Effect.provideService(Snapshot.SnapshotStore, broken))
        }
        const result = yield* handle("y", { add: 1 }).pipe(Effect.provideService(Snapshot.SnapshotStore, broken))
        assert.strictEqual(result.version, 13)
      }).pipe(Effect.provide(MemoryEventStore.layer()))
    )
  })
})
