/**
 * Group commit on PostgreSQL: concurrent appends share transactions, yet each keeps its own checks and
 * fails alone.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import { isolatedPrefix, uniqueCategory } from "../support/ids.js"
import { settle } from "../support/settle.js"
import { pgWithSchema } from "../support/sql.js"

const schema = isolatedPrefix(import.meta.url)
const Live = SqlEventStore.layer({ schema, groupCommit: { maxBatch: 100, writers: 1 } }).pipe(
  Layer.provide(pgWithSchema(schema))
)

const tick = Event.make({ type: "Tick", data: {} })

describe("SqlEventStore group commit", () => {
  layer(Live, { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.effect("of 100 concurrent appends one conflicting append fails alone, and they share transactions", () =>
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const category = yield* uniqueCategory
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
        const failure = yield* Effect.flip(exits[37]!)
        assert.strictEqual(failure._tag, "ConcurrencyConflict")
        yield* settle
        const events = [...(yield* Stream.runCollect(store.readAll({ categories: [category] })))]
        assert.strictEqual(events.length, 99)
        const transactions = new Set(events.map((e) => e.transaction))
        assert.isBelow(transactions.size, 50, "appends were not grouped")
      })
    )

    it.effect("a taken unique value or a duplicate command fails its own append only", () =>
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const category = yield* uniqueCategory
        const taken = { constraint: `seat-${category}`, value: "1A" }
        yield* store.append(`${category}-owner`, [yield* tick], { claims: [taken], commandId: `done-${category}` })
        const exits = yield* Effect.forEach(
          Array.from({ length: 40 }, (_, i) => i),
          (i) =>
            Effect.flatMap(tick, (e) =>
              Effect.exit(
                store.append(`${category}-${i}`, [e], {
                  ...(i === 3 ? { claims: [taken] } : {}),
                  ...(i === 4 ? { commandId: `done-${category}` } : {})
                })
              )
            ),
          { concurrency: "unbounded" }
        )
        assert.strictEqual((yield* Effect.flip(exits[3]!))._tag, "UniqueConstraintViolation")
        assert.strictEqual((yield* Effect.flip(exits[4]!))._tag, "DuplicateCommand")
        assert.strictEqual(exits.filter(Exit.isSuccess).length, 38)
        assert.strictEqual(yield* store.streamVersion(`${category}-3`), 0)
        assert.strictEqual(yield* store.streamVersion(`${category}-4`), 0)
      })
    )

    it.effect("appends to one stream in one batch are ordered and checked against each other", () =>
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
  })
})
