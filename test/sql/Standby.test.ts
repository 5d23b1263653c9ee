/**
 * Readers on a PostgreSQL hot standby (`SqlEventStore.layerStandby`), on a throwaway primary and its
 * streaming replica: 16 writers append on the primary inside transactions that stay open for a random
 * while (positions taken in one order, committed in another); a checkpointed follower and a projection
 * runner on the standby must see every event exactly once, never going back, while a naive follower
 * (`position > last`) on the standby misses some (the out-of-order commits really happened, and reached
 * the standby as they were). The runner's status shows the standby's lag, growing while replay is paused.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as CheckpointStore from "../../src/CheckpointStore.js"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as Postgres from "../../src/pg/Postgres.js"
import * as Projection from "../../src/Projection.js"
import * as SqlCheckpointStore from "../../src/sql/SqlCheckpointStore.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import { uniqueCategory } from "../support/ids.js"
import { caughtUp, eventually, query, throwawayStandby } from "../support/pgStandby.js"
import { throwawayPostgres } from "../support/servers.js"

/** Reads everything after `after` on `store`, checking the checkpoints only move forward. */
const readAfter = (store: EventStore.EventStore["Type"], category: string, after: Event.Checkpoint) =>
  Effect.map(Stream.runCollect(store.readAll({ after, categories: [category], batchSize: 50 })), (events) => {
    let previous = after
    for (const event of events) {
      const next = Event.checkpointOf(event)
      assert.isTrue(
        Event.checkpointOrder(next, previous) > 0,
        `went backwards: ${next.transaction}/${next.position} after ${previous.transaction}/${previous.position}`
      )
      previous = next
    }
    return [...events]
  })

describe("SqlEventStore on a PostgreSQL hot standby", () => {
  it.scopedLive(
    "followers on the standby see every event exactly once while writers commit out of order on the primary",
    () =>
      Effect.gen(function* () {
        const primary = yield* throwawayPostgres
        const standby = yield* throwawayStandby(primary)
        const writes = yield* Layer.build(
          Layer.merge(SqlEventStore.layer(), SqlCheckpointStore.layer()).pipe(
            Layer.provideMerge(Postgres.layer({ url: primary.url, maxConnections: 20 }))
          )
        )
        // the tables reach the standby by replication
        yield* caughtUp(primary, standby)
        const reads = yield* Layer.build(
          Layer.merge(
            SqlEventStore.layerStandby(),
            Layer.effectContext(Effect.map(SqlClient.SqlClient, (sql) => Context.make(StandbySql, sql)))
          ).pipe(Layer.provide(Postgres.layer({ url: standby.url, maxConnections: 5 })))
        )
        const primaryStore = Context.get(writes, EventStore.EventStore)
        const sql = Context.get(writes, SqlClient.SqlClient)
        const standbyStore = Context.get(reads, EventStore.EventStore)
        const standbySql = Context.get(reads, StandbySql)
        const category = yield* uniqueCategory

        // writes go to the primary: every write is refused at once, as permanent
        const standbyWrites: ReadonlyArray<Effect.Effect<unknown, { readonly _tag: string }>> = [
          standbyStore.append(`${category}-x`, [yield* tick(0)]),
          standbyStore.truncateStream(`${category}-x`, 2),
          standbyStore.archiveStream(`${category}-x`),
          standbyStore.applyRetention({ category, maxCount: 1 })
        ]
        for (const write of standbyWrites) {
          const refused = yield* Effect.flip(write)
          assert.strictEqual(refused._tag, "EventStoreError")
          assert.isFalse((refused as EventStore.EventStoreError).transient)
        }

        const writing = yield* Ref.make(true)
        const follow = (
          read: (after: Event.Checkpoint) => Effect.Effect<ReadonlyArray<Event.RecordedEvent>, unknown>
        ) =>
          Effect.gen(function* () {
            const seen: Array<string> = []
            let checkpoint = Event.start
            while (yield* Ref.get(writing)) {
              for (const event of yield* read(checkpoint)) {
                seen.push(event.eventId)
                checkpoint = Event.checkpointOf(event)
              }
              yield* Effect.sleep("2 millis")
            }
            return { seen, more: Effect.map(read(checkpoint), (events) => events.map((e) => e.eventId)) }
          })
        const naive = (after: Event.Checkpoint) =>
          standbySql<{ readonly event_id: string; readonly position: string }>`
            select event_id::text as event_id, position::text as position from es_events
            where category = ${category} and position > ${String(after.position)}::bigint order by position`.pipe(
            Effect.map((rows) =>
              rows.map((r) => ({ eventId: r.event_id, position: BigInt(r.position), transaction: 0n }) as never)
            )
          )
        const followers = yield* Effect.all(
          [follow((after) => readAfter(standbyStore, category, after)), follow(naive)],
          { concurrency: "unbounded" }
        ).pipe(Effect.fork)

        // a projection runner reading the standby, its checkpoints on the primary
        const handled: Array<string> = []
        const registry = yield* Layer.build(Projection.layerRegistry)
        const runner = yield* Projection.run(
          Projection.make({
            name: `standby-${category}`,
            events: Schema.TaggedStruct("Tick", { w: Schema.Number }),
            categories: [category],
            batchSize: 7,
            handleBatch: (batch) => Effect.sync(() => handled.push(...batch.map((d) => d.envelope.eventId)))
          }),
          { pollInterval: "5 millis" }
        ).pipe(
          Effect.provideService(EventStore.EventStore, standbyStore),
          Effect.provideService(CheckpointStore.CheckpointStore, Context.get(writes, CheckpointStore.CheckpointStore)),
          Effect.provide(registry),
          Effect.fork
        )

        const writer = (w: number) =>
          Effect.forEach(Array.from({ length: 10 }), () =>
            Effect.gen(function* () {
              const events = yield* Effect.all(
                Array.from({ length: yield* Random.nextIntBetween(1, 4) }, () => tick(w))
              )
              yield* primaryStore.append(`${category}-${w}`, events)
              // the transaction stays open after taking its positions: later positions commit first
              yield* Effect.sleep(`${yield* Random.nextIntBetween(0, 25)} millis`)
              return events.map((e) => e.eventId)
            }).pipe(sql.withTransaction)
          )
        const written = (yield* Effect.forEach(
          Array.from({ length: 16 }, (_, w) => w),
          writer,
          { concurrency: "unbounded" }
        )).flat(2)
        yield* caughtUp(primary, standby)
        yield* Ref.set(writing, false)
        const [checkpointed, naiveFollower] = yield* Fiber.join(followers)
        // whatever the standby's read horizon held back a moment ago is readable by now
        const seen = [...checkpointed.seen]
        yield* eventually(
          "the follower to read every event",
          Effect.map(checkpointed.more, (more) => {
            seen.push(...more)
            return seen.length >= written.length
          })
        )
        const naiveSeen = [...naiveFollower.seen, ...(yield* naiveFollower.more)]

        assert.strictEqual(new Set(seen).size, seen.length, "an event was delivered twice")
        assert.deepStrictEqual([...seen].sort(), [...written].sort(), "the follower on the standby missed events")
        assert.isBelow(
          new Set(naiveSeen).size,
          written.length,
          "the naive follower saw everything: no out-of-order commit happened"
        )
        yield* eventually(
          "the runner to handle every event",
          Effect.sync(() => handled.length >= written.length)
        )
        assert.strictEqual(new Set(handled).size, handled.length, "the runner handled an event twice")
        assert.deepStrictEqual([...handled].sort(), [...written].sort(), "the runner missed events")

        // the runner's status shows the standby's lag: none to speak of while it keeps up ...
        const status = Effect.map(
          Effect.flatMap(Context.get(registry, Projection.Registry).statuses, (all) =>
            Effect.succeed(all.find((s) => s.name === `standby-${category}`))
          ),
          (s) => Option.getOrThrow(Option.fromNullable(s))
        )
        const before = yield* status
        assert.isTrue(Option.isSome(before.replica), "no replica lag in the status of a runner on a standby")
        assert.isTrue(Option.getOrThrow(before.replica).receiving)
        // ... and growing while the standby receives WAL it does not replay
        yield* query(standby.url, "select pg_wal_replay_pause()")
        yield* primaryStore.append(`${category}-late`, [yield* tick(99)])
        yield* eventually(
          "the status to show WAL waiting to be replayed",
          Effect.map(status, (s) =>
            Option.exists(s.replica, (lag) => lag.bytes > 0 && lag.seconds > 0 && s.lag.seconds >= lag.seconds)
          )
        )
        yield* query(standby.url, "select pg_wal_replay_resume()")
        yield* eventually(
          "the runner to handle the late event",
          Effect.sync(() => handled.length === written.length + 1)
        )
        yield* eventually(
          "the status to show the standby caught up",
          Effect.map(status, (s) => Option.exists(s.replica, (lag) => lag.bytes === 0 && lag.seconds === 0))
        )
        yield* Fiber.interrupt(runner)
      }),
    180_000
  )
})

class StandbySql extends Context.Tag("test/StandbySql")<StandbySql, SqlClient.SqlClient>() {}

const tick = (w: number) => Event.make({ type: "Tick", data: { w } })
