/**
 * Proof of guarantee 4 on PostgreSQL: 16 writers append inside transactions that stay open for a random
 * while, so positions are taken in one order and committed in another. A follower using `readAll` with
 * the store's (transaction, position) checkpoint must see every event exactly once, never going back.
 * A naive follower reading `position > last` in the same run must miss some: that shows the test
 * really produces the out-of-order commits that break naive readers. A projection runner (the runner of
 * projections, the outbox relay and sagas) live in the same run must handle every event exactly once.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as Projection from "../../src/Projection.js"
import * as SqlCheckpointStore from "../../src/sql/SqlCheckpointStore.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import { isolatedPrefix, uniqueCategory } from "../support/ids.js"
import { settle } from "../support/settle.js"
import { mysqlWithPrefix, pgWithSchema } from "../support/sql.js"

const schema = isolatedPrefix(import.meta.url)
const Live = Layer.merge(SqlEventStore.layer({ schema }), SqlCheckpointStore.layer({ schema })).pipe(
  Layer.provideMerge(pgWithSchema(schema))
)

/**
 * Polls until `writing` turns false, then once more after `settled` (when every write is visible);
 * returns the event ids seen, in order.
 */
const poll = (
  writing: Ref.Ref<boolean>,
  readAfter: (checkpoint: Event.Checkpoint) => Effect.Effect<ReadonlyArray<Event.RecordedEvent>, unknown>,
  settled: Effect.Effect<void, unknown>
) =>
  Effect.gen(function* () {
    const seen: Array<string> = []
    let checkpoint = Event.start
    const once = Effect.gen(function* () {
      for (const event of yield* readAfter(checkpoint)) {
        seen.push(event.eventId)
        checkpoint = Event.checkpointOf(event)
      }
    })
    while (yield* Ref.get(writing)) {
      yield* once
      yield* Effect.sleep("2 millis")
    }
    yield* settled
    yield* once
    return seen
  })

/**
 * A projection runner (the runner of projections, the outbox relay and sagas) following the category in
 * small batches, live throughout; `check` waits until it handled as many events as were written (every
 * write is visible once the followers settled), then checks it handled each exactly once.
 */
const runnerFollowing = (category: string) =>
  Effect.gen(function* () {
    const handled: Array<string> = []
    const fiber = yield* Projection.run(
      Projection.make({
        name: `order-${category}`,
        events: Schema.TaggedStruct("Tick", { w: Schema.Number }),
        categories: [category],
        batchSize: 7,
        handleBatch: (batch) => Effect.sync(() => handled.push(...batch.map((d) => d.envelope.eventId)))
      }),
      { pollInterval: "5 millis" }
    ).pipe(Effect.fork)
    const check = (written: ReadonlyArray<string>) =>
      Effect.gen(function* () {
        yield* Effect.sleep("10 millis").pipe(
          Effect.repeat({ until: () => handled.length >= written.length }),
          Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("the runner fell behind") })
        )
        yield* Fiber.interrupt(fiber)
        assert.strictEqual(new Set(handled).size, handled.length, "the runner handled an event twice")
        assert.deepStrictEqual([...handled].sort(), [...written].sort(), "the runner missed events")
      })
    return { check }
  })

describe("SqlEventStore global order on PostgreSQL", () => {
  layer(Live, { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.effect(
      "a checkpointed follower sees every event exactly once while transactions commit out of order; a naive one skips",
      () =>
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          const sql = yield* SqlClient.SqlClient
          const category = yield* uniqueCategory
          const writing = yield* Ref.make(true)

          const checkpointed = (after: Event.Checkpoint) =>
            Effect.gen(function* () {
              const events = yield* Stream.runCollect(store.readAll({ after, categories: [category], batchSize: 50 }))
              const list = [...events]
              list.reduce((previous, event) => {
                const next = Event.checkpointOf(event)
                assert.isTrue(
                  Event.checkpointOrder(next, previous) > 0,
                  `went backwards: ${next.transaction}/${next.position} after ${previous.transaction}/${previous.position}`
                )
                return next
              }, after)
              return list
            })
          // the bug the horizon prevents: trusting position order
          const naive = (after: Event.Checkpoint) =>
            sql<{ readonly event_id: string; readonly position: string }>`
              select event_id::text as event_id, position::text as position from ${sql(`${schema}.es_events`)}
              where category = ${category} and position > ${String(after.position)}::bigint order by position`.pipe(
              Effect.map((rows) =>
                rows.map(
                  (r) => ({ eventId: r.event_id, position: BigInt(r.position), transaction: 0n }) as Event.RecordedEvent
                )
              )
            )

          const settled = Effect.provideService(settle, EventStore.EventStore, store)
          const followers = yield* Effect.all([poll(writing, checkpointed, settled), poll(writing, naive, settled)], {
            concurrency: "unbounded"
          }).pipe(Effect.fork)
          const runner = yield* runnerFollowing(category)

          const writer = (w: number) =>
            Effect.forEach(Array.from({ length: 10 }), () =>
              Effect.gen(function* () {
                const events = yield* Effect.all(
                  Array.from({ length: yield* Random.nextIntBetween(1, 4) }, () =>
                    Event.make({ type: "Tick", data: { w } })
                  )
                )
                yield* store.append(`${category}-${w}`, events)
                // the transaction stays open after taking its positions: later positions commit first
                yield* Effect.sleep(`${yield* Random.nextIntBetween(0, 25)} millis`)
                return events.map((e) => e.eventId)
              }).pipe(sql.withTransaction)
            )
          const written = (yield* Effect.forEach(
            Array.from({ length: 16 }, (_, w) => w),
            writer,
            {
              concurrency: "unbounded"
            }
          )).flat(2)
          yield* Ref.set(writing, false)
          const [seen, naiveSeen] = yield* Fiber.join(followers)

          assert.strictEqual(new Set(seen).size, seen.length, "an event was delivered twice")
          assert.deepStrictEqual([...seen].sort(), [...written].sort(), "the checkpointed follower missed events")
          assert.isBelow(
            new Set(naiveSeen).size,
            written.length,
            "the naive follower saw everything: no out-of-order commit happened"
          )
          yield* runner.check(written)
        }),
      60_000
    )
  })
})

/**
 * The same proof on MariaDB (with the runner too), where positions are taken last in the append's transaction under a lock held
 * to the commit (see `serialAppend`). Each writer also inserts a row into a control table with an
 * AUTO_INCREMENT id before appending, in the same transaction: ids are taken in one order and committed in
 * another, so a naive follower of the control table misses some. The event follower must miss none.
 */
const mysqlPrefix = `${schema}_`
const MysqlLive = Layer.merge(
  SqlEventStore.layer({ tablePrefix: mysqlPrefix }),
  SqlCheckpointStore.layer({ tablePrefix: mysqlPrefix })
).pipe(Layer.provideMerge(mysqlWithPrefix(mysqlPrefix)))

describe("SqlEventStore global order on MariaDB", () => {
  layer(MysqlLive, { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.effect(
      "a follower sees every event exactly once while transactions commit out of order; a naive auto-increment one skips",
      () =>
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          const sql = yield* SqlClient.SqlClient
          const category = yield* uniqueCategory
          const control = `${mysqlPrefix}control_${category.toLowerCase()}`
          yield* sql`create table ${sql(control)} (id bigint auto_increment primary key, event_id char(36) not null)`
          const writing = yield* Ref.make(true)

          const checkpointed = (after: Event.Checkpoint) =>
            Effect.map(Stream.runCollect(store.readAll({ after, categories: [category], batchSize: 50 })), (events) => [
              ...events
            ])
          const naive = (after: Event.Checkpoint) =>
            sql<{ readonly event_id: string; readonly id: number }>`
              select event_id, id from ${sql(control)} where id > ${Number(after.position)} order by id`.pipe(
              Effect.map((rows) =>
                rows.map(
                  (r) => ({ eventId: r.event_id, position: BigInt(r.id), transaction: 0n }) as Event.RecordedEvent
                )
              )
            )

          const followers = yield* Effect.all(
            [poll(writing, checkpointed, Effect.void), poll(writing, naive, Effect.void)],
            { concurrency: "unbounded" }
          ).pipe(Effect.fork)
          const runner = yield* runnerFollowing(category)

          const writer = (w: number) =>
            Effect.forEach(Array.from({ length: 6 }), () =>
              Effect.gen(function* () {
                const event = yield* Event.make({ type: "Tick", data: { w } })
                yield* sql`insert into ${sql(control)} (event_id) values (${event.eventId})`
                yield* Effect.sleep(`${yield* Random.nextIntBetween(0, 10)} millis`)
                yield* store.append(`${category}-${w}`, [event])
                yield* Effect.sleep(`${yield* Random.nextIntBetween(0, 5)} millis`)
                return event.eventId
              }).pipe(sql.withTransaction)
            )
          const written = (yield* Effect.forEach(
            Array.from({ length: 16 }, (_, w) => w),
            writer,
            { concurrency: "unbounded" }
          )).flat()
          yield* Ref.set(writing, false)
          const [seen, naiveSeen] = yield* Fiber.join(followers)

          assert.strictEqual(new Set(seen).size, seen.length, "an event was delivered twice")
          assert.deepStrictEqual([...seen].sort(), [...written].sort(), "the follower missed events")
          assert.isBelow(
            new Set(naiveSeen).size,
            written.length,
            "the naive follower saw everything: no out-of-order commit happened"
          )
          yield* runner.check(written)
        }),
      60_000
    )
  })
})
