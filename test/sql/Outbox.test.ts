/**
 * The outbox relay to NATS JetStream: exactly the committed events are published, in each stream's
 * order, and a relay stopped between the broker's ack and its checkpoint republishes while JetStream drops
 * the duplicates (on PostgreSQL, SQLite and MariaDB); a NATS server killed mid-relay loses nothing and
 * stores nothing twice (PostgreSQL).
 */
import { randomBytes } from "node:crypto"
import { jetstreamManager } from "@nats-io/jetstream"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as Nats from "../../src/nats/Nats.js"
import * as NatsPublisher from "../../src/nats/NatsPublisher.js"
import * as Outbox from "../../src/Outbox.js"
import * as Projection from "../../src/Projection.js"
import * as SqlCheckpointStore from "../../src/sql/SqlCheckpointStore.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import { natsUrl } from "../support/config.js"
import { isolatedPrefix, uniqueCategory } from "../support/ids.js"
import { throwawayNats } from "../support/servers.js"
import { mysqlWithPrefix, pgWithSchema, sqliteFile } from "../support/sql.js"

const schema = isolatedPrefix(import.meta.url)
const stores = Layer.mergeAll(SqlEventStore.layer({ schema }), SqlCheckpointStore.layer({ schema })).pipe(
  Layer.provideMerge(pgWithSchema(schema))
)
const mysqlPrefix = `${schema}_`
/** The stores the relay's core guarantees are checked on: every SQL dialect. */
const dialects = [
  ["PostgreSQL", stores],
  ["SQLite", Layer.mergeAll(SqlEventStore.layer(), SqlCheckpointStore.layer()).pipe(Layer.provideMerge(sqliteFile))],
  [
    "MariaDB",
    Layer.mergeAll(
      SqlEventStore.layer({ tablePrefix: mysqlPrefix }),
      SqlCheckpointStore.layer({ tablePrefix: mysqlPrefix })
    ).pipe(Layer.provideMerge(mysqlWithPrefix(mysqlPrefix)))
  ]
] as const

/** A publisher on its own connection and stream (deleted with the scope), with a way to read the stream. */
const jetStream = (url: string, storage: "file" | "memory" = "memory") =>
  Effect.gen(function* () {
    const id = randomBytes(4).toString("hex")
    const stream = `EES_OUTBOX_${id}`
    const context = yield* Layer.build(
      NatsPublisher.layer({ stream, subjectPrefix: `outbox_${id}`, storage, timeout: "1 second" }).pipe(
        Layer.provideMerge(Nats.layer({ servers: url }))
      )
    )
    const { connection } = Context.get(context, Nats.Nats)
    /** The message ids stored, in stream order. */
    const stored = Effect.tryPromise(async () => {
      const jsm = await jetstreamManager(connection)
      const info = await jsm.streams.info(stream)
      const ids: Array<string> = []
      for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
        const msg = await jsm.streams.getMessage(stream, { seq })
        ids.push(msg!.header.get("Nats-Msg-Id"))
      }
      return ids
    }).pipe(Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.intersect(Schedule.recurs(50)))))
    yield* Effect.addFinalizer(() =>
      Effect.promise(() =>
        jetstreamManager(connection)
          .then((jsm) => jsm.streams.delete(stream))
          .catch(() => false)
      )
    )
    return { publisher: Context.get(context, Outbox.Publisher), stored }
  })

const waitFor = <A, E, R>(effect: Effect.Effect<A, E, R>, done: (a: A) => boolean) =>
  effect.pipe(
    Effect.filterOrFail(done, () => "not yet"),
    Effect.retry(Schedule.spaced("25 millis")),
    Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("not reached in 30 s") })
  )

const append = (streamId: string, n: number) =>
  Effect.flatMap(EventStore.EventStore, (store) =>
    Effect.flatMap(Event.make({ type: "Deposited", data: { n } }), (event) =>
      Effect.as(store.append(streamId, [event]), event.eventId)
    )
  )

/** Runs the relay over `category` with `publisher`, in the current scope. */
const relayWith = (category: string, publisher: Outbox.Publisher["Type"], name: string) =>
  Layer.build(
    Outbox.relayLayer({ name, categories: [category], batchSize: 20, pollInterval: "50 millis" }).pipe(
      Layer.provide(Layer.succeed(Outbox.Publisher, publisher))
    )
  )

for (const [dialect, stores] of dialects) {
  describe(`Outbox relay (${dialect} to JetStream)`, () => {
    it.scopedLive("publishes exactly the committed events, in each stream's order", () =>
      Effect.gen(function* () {
        const category = yield* uniqueCategory
        const { publisher, stored } = yield* jetStream(natsUrl)
        const committed: Array<string> = []
        for (let i = 0; i < 30; i++) committed.push(yield* append(`${category}-${i % 3}`, i))
        // an append whose transaction rolls back
        const sql = yield* SqlClient.SqlClient
        const rolledBack = yield* Effect.flip(
          Effect.zipRight(append(`${category}-9`, 99), Effect.fail("roll back")).pipe(sql.withTransaction)
        )
        assert.strictEqual(rolledBack, "roll back")
        yield* relayWith(category, publisher, `outbox-${category}`)
        yield* waitFor(stored, (ids) => ids.length >= committed.length)
        yield* Effect.sleep("300 millis")
        // the streams were appended round-robin, so stream order and global order agree here
        assert.deepStrictEqual(yield* stored, committed)
      }).pipe(Effect.provide(stores))
    )

    it.scopedLive("a relay stopped between the ack and its checkpoint republishes; nothing is stored twice", () =>
      Effect.gen(function* () {
        const category = yield* uniqueCategory
        const { publisher, stored } = yield* jetStream(natsUrl)
        const failures = yield* Ref.make(2)
        const duplicates = yield* Ref.make(0)
        // the batch reaches JetStream, then the relay "dies" before moving its checkpoint
        const dying: Outbox.Publisher["Type"] = {
          ...publisher,
          publish: (events) =>
            Effect.flatMap(publisher.publish(events), (acks) =>
              Effect.zipRight(
                Ref.update(duplicates, (n) => n + acks.filter((a) => a.duplicate).length),
                Effect.flatMap(
                  Ref.getAndUpdate(failures, (n) => n - 1),
                  (left) =>
                    left > 0
                      ? Effect.fail(new Outbox.PublishError({ operation: "publish", detail: "died" }))
                      : Effect.succeed(acks)
                )
              )
            )
        }
        const events: Array<string> = []
        for (let i = 0; i < 10; i++) events.push(yield* append(`${category}-1`, i))
        yield* relayWith(category, dying, `outbox-${category}`)
        yield* waitFor(Ref.get(failures), (n) => n < 0)
        yield* Effect.sleep("200 millis")
        assert.deepStrictEqual(yield* stored, events)
        assert.isAtLeast(yield* Ref.get(duplicates), 10, "the republished batch was acked as duplicates")
      }).pipe(Effect.provide(stores))
    )
  })
}

describe("Outbox relay (PostgreSQL to JetStream)", () => {
  it.scopedLive(
    "a NATS server killed mid-relay: after its restart every event is in the stream exactly once",
    () =>
      Effect.gen(function* () {
        const category = yield* uniqueCategory
        const server = yield* throwawayNats
        const { publisher, stored } = yield* jetStream(server.url, "file")
        yield* relayWith(category, publisher, `outbox-${category}`)
        const writing = yield* Effect.fork(
          Effect.forEach(
            Array.from({ length: 150 }, (_, i) => i),
            (i) => Effect.zipLeft(append(`${category}-${i % 5}`, i), Effect.sleep("5 millis"))
          )
        )
        yield* waitFor(stored, (ids) => ids.length >= 20)
        yield* server.kill
        yield* Effect.sleep("1 second")
        yield* server.start
        const written = yield* Fiber.join(writing)
        yield* waitFor(
          stored.pipe(Effect.orElseSucceed(() => [] as Array<string>)),
          (ids) => ids.length >= written.length
        )
        yield* Effect.sleep("500 millis")
        const ids = yield* stored
        assert.strictEqual(new Set(ids).size, ids.length, "an event stored twice")
        assert.deepStrictEqual([...ids].sort(), [...written].sort())
      }).pipe(Effect.provide(stores)),
    90_000
  )

  it.scopedLive("integration messages enqueued in a transaction are published only if it commits", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const { publisher, stored } = yield* jetStream(natsUrl)
      const sql = yield* SqlClient.SqlClient
      yield* sql`create table if not exists ${sql(`${schema}.orders`)} (id text primary key)`
      const placeOrder = (id: string, fail: boolean) =>
        Effect.gen(function* () {
          yield* sql`insert into ${sql(`${schema}.orders`)} values (${id})`
          const result = yield* Outbox.enqueue({ topic: category, key: id, type: "OrderPlaced", data: { id } })
          if (fail) return yield* Effect.fail("roll back")
          return result
        }).pipe(sql.withTransaction)
      yield* placeOrder("kept", false)
      assert.strictEqual(yield* Effect.flip(placeOrder("dropped", true)), "roll back")
      const orders = yield* sql<{ id: string }>`select id from ${sql(`${schema}.orders`)}`
      assert.deepStrictEqual(
        orders.map((o) => o.id),
        ["kept"]
      )
      yield* relayWith(category, publisher, `outbox-${category}`)
      const ids = yield* waitFor(stored, (ids) => ids.length >= 1)
      yield* Effect.sleep("300 millis")
      const [kept] = yield* Effect.flatMap(EventStore.EventStore, (store) =>
        Stream.runCollect(store.readStream(`${category}-kept`))
      ).pipe(Effect.map((chunk) => Array.from(chunk)))
      assert.deepStrictEqual(ids, [kept!.eventId])
      assert.deepStrictEqual(yield* stored, [kept!.eventId])
    }).pipe(Effect.provide(stores))
  )

  it.scopedLive("an event larger than the server's max payload is parked; the others are published", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const { publisher, stored } = yield* jetStream(natsUrl)
      const small1 = yield* append(`${category}-1`, 1)
      const big = yield* Effect.flatMap(EventStore.EventStore, (store) =>
        Effect.flatMap(Event.make({ type: "Deposited", data: { note: "x".repeat(1_100_000) } }), (event) =>
          Effect.as(store.append(`${category}-1`, [event]), event.eventId)
        )
      ).pipe(Effect.provide(SqlEventStore.layer({ schema, limits: { maxEventBytes: 2_000_000 } })))
      const small2 = yield* append(`${category}-1`, 2)
      yield* relayWith(category, publisher, `outbox-${category}`)
      yield* waitFor(stored, (ids) => ids.length >= 2)
      assert.deepStrictEqual(yield* stored, [small1, small2])
      // the batch's publishes are pipelined: the others may be stored before the big one is parked
      const letters = yield* waitFor(Projection.deadLetters(`outbox-${category}`), (letters) => letters.length > 0)
      assert.deepStrictEqual(yield* stored, [small1, small2])
      assert.deepStrictEqual(
        letters.map((l) => l.event.eventId),
        [big]
      )
      assert.include(letters[0]!.error, "max_payload")
    }).pipe(Effect.provide(stores))
  )
})
