/**
 * Each backend's own limits (see `src/sql/backendLimits.ts`): an append that passes the configured
 * `EventStore.Limits` but not what the backend takes is refused with `InvalidAppend` naming the backend's
 * limit, before anything reaches the server; limits configured beyond the backend's are lowered to them;
 * an append within them is stored, however its rows must travel.
 */
import { randomUUID } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Stream from "effect/Stream"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import { isolatedPrefix, uniqueCategory } from "../support/ids.js"
import { mysqlWithPrefix, pgWithSchema, sqliteMemory } from "../support/sql.js"

const schema = isolatedPrefix(import.meta.url)
const prefix = `${schema}_`

const sqlite = (limits: Partial<EventStore.Limits>) =>
  SqlEventStore.layer({ limits }).pipe(Layer.provideMerge(sqliteMemory))
const mariadb = (limits: Partial<EventStore.Limits>) =>
  SqlEventStore.layer({ tablePrefix: prefix, limits }).pipe(Layer.provideMerge(mysqlWithPrefix(prefix)))
const postgres = (limits: Partial<EventStore.Limits>) =>
  SqlEventStore.layer({ schema, limits }).pipe(Layer.provideMerge(pgWithSchema(schema)))

/** `count` small events, made without the cost of a UUID generator per event. */
const small = (count: number): ReadonlyArray<Event.EventData> =>
  Array.from({ length: count }, (_, n) => ({
    eventId: `00000000-0000-7000-8000-${n.toString(16).padStart(12, "0")}`,
    type: "Tick",
    schemaVersion: 1,
    data: { n }
  }))

/** One event whose data is a string of `length` ASCII characters (its JSON: `length + 2` bytes), no metadata. */
const sized = (length: number, n = 0) =>
  Effect.sync((): Event.EventData => ({
    eventId: randomUUID(),
    type: "Blob",
    schemaVersion: 1,
    data: `${n}`.padEnd(length, "x")
  }))

const refusal = (streamId: string, events: ReadonlyArray<Event.EventData>) =>
  Effect.flatMap(EventStore.EventStore, (store) => Effect.flip(store.append(streamId, events)))

/**
 * 100,000 events are refused as TooManyEvents, the detail naming the backend's limit (`mentions`); one more
 * than `most` is refused too, and `most` are stored.
 */
const tooManyEvents = (most: number, mentions: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const streamId = `${yield* uniqueCategory}-1`
    const error = yield* refusal(streamId, small(100_000))
    assert.strictEqual(error._tag, "InvalidAppend")
    if (error._tag !== "InvalidAppend") return
    assert.strictEqual(error.reason, "TooManyEvents")
    for (const mention of mentions) assert.include(error.detail, mention)
    assert.strictEqual((yield* refusal(streamId, small(most + 1)))._tag, "InvalidAppend")
    const stored = yield* store.append(streamId, small(most))
    assert.strictEqual(stored.version, most)
  })

describe("backend limits on SQLite", () => {
  it.live("more events than SQLite binds in one statement: refused naming the limit; as many as it binds: stored", () =>
    // the limit in effect is the backend's: 10 variables per event
    tooManyEvents(3276, ["SQLITE_MAX_VARIABLE_NUMBER", "32766"]).pipe(
      Effect.provide(sqlite({ maxEventsPerAppend: 100_000 }))
    )
  )

  it.live("limits configured above SQLite's are lowered to them when the store is built, with a warning", () =>
    Effect.gen(function* () {
      const warnings: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel._tag === "Warning") warnings.push(Array.isArray(message) ? message.join(" ") : String(message))
      })
      yield* Effect.scoped(Layer.build(sqlite({ maxEventsPerAppend: 100_000, maxEventBytes: 2e9 }))).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
      assert.isTrue(
        warnings.some((w) => w.includes("maxEventsPerAppend 100000") && w.includes("using 3276")),
        warnings.join("\n")
      )
      assert.isTrue(
        warnings.some((w) => w.includes("maxEventBytes 2000000000") && w.includes("using 1000000000")),
        warnings.join("\n")
      )
    })
  )
})

describe("backend limits on MariaDB", () => {
  it.live("more events than a statement has placeholders for: refused naming the limit; as many as fit: stored", () =>
    tooManyEvents(5957, ["65535 placeholders"]).pipe(Effect.provide(mariadb({ maxEventsPerAppend: 100_000 })))
  )

  it.live("an event over max_allowed_packet: refused naming it; one at the limit in effect: stored", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const sql = yield* SqlClient.SqlClient
      const [{ packet }] = (yield* sql<{
        readonly packet: number | string
      }>`select @@max_allowed_packet as packet`) as [{ readonly packet: number | string }]
      const streamId = `${yield* uniqueCategory}-1`
      const error = yield* refusal(streamId, [yield* sized(Number(packet) + 1)])
      assert.strictEqual(error._tag, "InvalidAppend")
      if (error._tag !== "InvalidAppend") return
      assert.strictEqual(error.reason, "EventTooLarge")
      assert.include(error.detail, "max_allowed_packet")
      // the largest event in effect: data JSON plus the metadata's "{}" at the limit
      const largest = Number(packet) - 4096 - 1024
      assert.strictEqual((yield* refusal(streamId, [yield* sized(largest - 3)]))._tag, "InvalidAppend")
      yield* store.append(streamId, [yield* sized(largest - 4)])
      const [read] = yield* Stream.runCollect(store.readStream(streamId)).pipe(Effect.map(Chunk.toReadonlyArray))
      assert.strictEqual((read!.data as string).length, largest - 4)
    }).pipe(Effect.provide(mariadb({ maxEventBytes: 64 * 1024 * 1024 })))
  )

  it.live("an append larger than max_allowed_packet in all is stored, in several statements", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const streamId = `${yield* uniqueCategory}-1`
      // 20 events of 1 MiB each (the default limit): more than the 16 MiB packet of a default server
      const events = yield* Effect.all(Array.from({ length: 20 }, (_, n) => sized(1024 * 1024 - 4, n)))
      const result = yield* store.append(streamId, events)
      assert.strictEqual(result.version, 20)
      const read = yield* Stream.runCollect(store.readStream(streamId)).pipe(Effect.map(Chunk.toReadonlyArray))
      assert.deepStrictEqual(
        read.map((e) => [e.eventId, (e.data as string).slice(0, 2)]),
        events.map((e) => [e.eventId, (e.data as string).slice(0, 2)])
      )
      assert.deepStrictEqual(
        read.map((e) => e.position),
        result.positions,
        "positions in order across the statements"
      )
      // retried as a whole, it is answered with the original result (idempotent append)
      assert.deepStrictEqual(yield* store.append(streamId, events), result)
    }).pipe(Effect.provide(mariadb({})))
  )
})

describe("backend limits on PostgreSQL", () => {
  it.live(
    "an append whose JSON exceeds what one jsonb argument holds: refused naming the limit",
    () =>
      Effect.gen(function* () {
        const streamId = `${yield* uniqueCategory}-1`
        // two events of 130 MiB, each within the configured limit, 260 MiB together
        const events = [yield* sized(130 * 1024 * 1024, 1), yield* sized(130 * 1024 * 1024, 2)]
        const error = yield* refusal(streamId, events)
        assert.strictEqual(error._tag, "InvalidAppend")
        if (error._tag !== "InvalidAppend") return
        assert.strictEqual(error.reason, "TooManyEvents")
        assert.include(error.detail, "jsonb")
        assert.include(error.detail, "268435455")
        const store = yield* EventStore.EventStore
        assert.strictEqual(yield* store.streamVersion(streamId), 0)
      }).pipe(Effect.provide(postgres({ maxEventBytes: 200 * 1024 * 1024 }))),
    120_000
  )
})
