/**
 * Group commit on SQLite: concurrent appends share one transaction (one commit), yet each keeps its own
 * checks and fails alone; an append inside the caller's transaction joins it.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Stream from "effect/Stream"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as Metrics from "../../src/Metrics.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import { uniqueCategory } from "../support/ids.js"
import { sqliteFile } from "../support/sql.js"

const tick = Event.make({ type: "Tick", data: {} })

/** Appends committed in transactions of more than one append, so far. */
const groupedAppends = Effect.map(Metric.value(Metrics.appendBatchSize), (histogram) => {
  const single = histogram.buckets.find(([bound]) => bound === 1)?.[1] ?? 0
  return histogram.sum - single
})

describe("SqlEventStore group commit on SQLite", () => {
  layer(SqlEventStore.layer().pipe(Layer.provideMerge(sqliteFile)), { excludeTestServices: true })((it) => {
    it.effect("of 100 concurrent appends one conflicting append fails alone, and they share transactions", () =>
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const category = yield* uniqueCategory
        const before = yield* groupedAppends
        const exits = yield* Effect.forEach(
          Array.from({ length: 100 }, (_, i) => i),
          (i) =>
            Effect.flatMap(tick, (e) =>
              Effect.exit(
                store.append(`${category}-${i}`, [e], { expectedVersion: i === 37 ? Event.Exact(5) : Event.NoStream })
              )
            ),
          { concurrency: "unbounded" }
        )
        exits.forEach((exit, i) => assert.strictEqual(Exit.isSuccess(exit), i !== 37, `append ${i}`))
        assert.strictEqual((yield* Effect.flip(exits[37]!))._tag, "ConcurrencyConflict")
        assert.strictEqual(yield* store.streamVersion(`${category}-37`), 0)
        assert.isAbove((yield* groupedAppends) - before, 50, "appends were not grouped")
      })
    )

    it.effect("a taken unique value or a duplicate command fails its own append only, writing nothing", () =>
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const category = yield* uniqueCategory
        const taken = { constraint: `seat-${category}`, value: "1A" }
        const freed = { constraint: `seat-${category}`, value: "2B" }
        yield* store.append(`${category}-owner`, [yield* tick], { claims: [taken], commandId: `done-${category}` })
        yield* store.append(`${category}-3`, [yield* tick], { claims: [freed] })
        const exits = yield* Effect.forEach(
          Array.from({ length: 40 }, (_, i) => i),
          (i) =>
            Effect.flatMap(tick, (e) =>
              Effect.exit(
                store.append(`${category}-${i}`, [e], {
                  // releases a value first, then fails on the taken one: the release is rolled back too
                  ...(i === 3 ? { releases: [freed], claims: [taken] } : {}),
                  ...(i === 4 ? { commandId: `done-${category}` } : {})
                })
              )
            ),
          { concurrency: "unbounded" }
        )
        assert.strictEqual((yield* Effect.flip(exits[3]!))._tag, "UniqueConstraintViolation")
        assert.strictEqual((yield* Effect.flip(exits[4]!))._tag, "DuplicateCommand")
        assert.strictEqual(exits.filter(Exit.isSuccess).length, 38)
        assert.strictEqual(yield* store.streamVersion(`${category}-3`), 1)
        // 2B is still held by stream 3
        const claim = yield* Effect.flip(store.append(`${category}-other`, [yield* tick], { claims: [freed] }))
        assert.strictEqual(claim._tag, "UniqueConstraintViolation")
      })
    )

    it.effect("an append refused after its events were inserted is undone alone; the others commit", () =>
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const sql = yield* SqlClient.SqlClient
        const category = yield* uniqueCategory
        const doomed = `${category}-13`
        // the stream row's write comes after the events' insert: refusing it leaves the events to undo
        yield* sql.unsafe(`create trigger refuse_${category} before insert on es_streams
          when new.stream_id = '${doomed}' begin select raise(abort, 'refused'); end`)
        const before = yield* groupedAppends
        const exits = yield* Effect.forEach(
          Array.from({ length: 40 }, (_, i) => i),
          (i) =>
            Effect.flatMap(Effect.all([tick, tick]), (events) => Effect.exit(store.append(`${category}-${i}`, events))),
          { concurrency: "unbounded" }
        )
        exits.forEach((exit, i) => assert.strictEqual(Exit.isSuccess(exit), i !== 13, `append ${i}`))
        const error = yield* Effect.flip(exits[13]!)
        assert.strictEqual(error._tag, "EventStoreError")
        assert.strictEqual(yield* store.streamVersion(doomed), 0)
        const stored = yield* Stream.runCollect(store.readAll({ categories: [category] }))
        assert.strictEqual(stored.length, 39 * 2)
        assert.isFalse([...stored].some((e) => e.streamId === doomed))
        assert.isAbove((yield* groupedAppends) - before, 20, "appends were not grouped")
      })
    )

    it.effect("appends to one stream in one group are ordered and checked against each other", () =>
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const id = `${yield* uniqueCategory}-1`
        yield* store.append(id, [yield* tick])
        const exits = yield* Effect.forEach(
          Array.from({ length: 30 }),
          () => Effect.flatMap(tick, (e) => Effect.exit(store.append(id, [e], { expectedVersion: Event.Exact(1) }))),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(exits.filter(Exit.isSuccess).length, 1)
        assert.strictEqual(yield* store.streamVersion(id), 2)
      })
    )

    it.effect("an append inside the caller's transaction joins it: rolled back with it", () =>
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const sql = yield* SqlClient.SqlClient
        const id = `${yield* uniqueCategory}-1`
        const failed = yield* Effect.flip(
          sql.withTransaction(Effect.zipRight(store.append(id, [yield* tick]), Effect.fail("changed my mind")))
        )
        assert.strictEqual(failed, "changed my mind")
        assert.strictEqual(yield* store.streamVersion(id), 0)
      })
    )
  })
})
