/**
 * Fault tests of the PostgreSQL store, each on its own throwaway server (never the shared one): a
 * server killed under load, a connection killed inside a transaction, and a transaction left open that
 * holds the read horizon back.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import pg from "pg"
import * as CheckpointStore from "../../src/CheckpointStore.js"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as Metrics from "../../src/Metrics.js"
import * as Projection from "../../src/Projection.js"
import * as Postgres from "../../src/pg/Postgres.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import { uniqueCategory } from "../support/ids.js"
import { throwawayPostgres } from "../support/servers.js"

/** Store + client on `url`, built in the current scope. */
const storeOn = (url: string, options: Partial<Postgres.Options> = {}) =>
  Effect.map(
    Layer.build(SqlEventStore.layer().pipe(Layer.provideMerge(Postgres.layer({ url, maxConnections: 4, ...options })))),
    (context) => ({
      store: Context.get(context, EventStore.EventStore),
      sql: Context.get(context, SqlClient.SqlClient)
    })
  )

/** Polls `effect` until its value passes `done` (at most 20 s). */
const waitFor = <A, E, R>(effect: Effect.Effect<A, E, R>, done: (a: A) => boolean) =>
  effect.pipe(
    Effect.filterOrFail(done, () => new Error("not yet")),
    Effect.retry(Schedule.spaced("50 millis")),
    Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("condition not reached in 20 s") })
  )

const threeEvents = Effect.all([1, 2, 3].map((n) => Event.make({ type: "Tick", data: { n } })))

const readCategory = (store: EventStore.EventStore["Type"], category: string) =>
  Effect.map(Stream.runCollect(store.readAll({ categories: [category] })), (chunk) => [...chunk])

/** Every stream of the category has versions 1..n, with n a multiple of 3 (appends of 3 are never split). */
const assertNoPartialAppend = (events: ReadonlyArray<Event.RecordedEvent>) => {
  const byStream = new Map<string, Array<number>>()
  for (const e of events) byStream.set(e.streamId, [...(byStream.get(e.streamId) ?? []), e.version])
  for (const [streamId, versions] of byStream) {
    assert.deepStrictEqual(
      versions,
      versions.map((_, i) => i + 1),
      `versions of ${streamId}`
    )
    assert.strictEqual(versions.length % 3, 0, `${streamId} holds part of an append`)
  }
}

describe("SqlEventStore on a failing PostgreSQL", () => {
  it.live(
    "a server killed during appends: typed failures, nothing half-written, the store recovers after restart",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const server = yield* throwawayPostgres
          const { store } = yield* storeOn(server.url)
          const category = yield* uniqueCategory
          const running = yield* Ref.make(true)
          const acknowledged: Array<string> = []
          const failures: Array<string> = []
          const writer = (w: number) =>
            Effect.gen(function* () {
              for (let i = 0; yield* Ref.get(running); i++) {
                const events = yield* threeEvents
                const exit = yield* Effect.exit(
                  store
                    .append(`${category}-${w}`, events)
                    .pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => "hung" }))
                )
                if (Exit.isSuccess(exit)) acknowledged.push(...events.map((e) => e.eventId))
                else {
                  const error = yield* Effect.flip(exit)
                  failures.push(typeof error === "string" ? error : error._tag)
                  yield* Effect.sleep("20 millis")
                }
              }
            })
          const writers = yield* Effect.fork(Effect.all([0, 1, 2, 3].map(writer), { concurrency: "unbounded" }))
          yield* Effect.sleep("400 millis")
          yield* server.kill
          yield* Effect.sleep("500 millis")
          yield* server.start
          const beforeRecovery = acknowledged.length
          yield* Effect.sleep("1500 millis")
          yield* Ref.set(running, false)
          yield* Fiber.join(writers)

          assert.isAbove(failures.length, 0, "no append failed while the server was down")
          assert.deepStrictEqual([...new Set(failures)], ["EventStoreError"])
          assert.isAbove(acknowledged.length, beforeRecovery, "no append succeeded after the restart")
          const stored = yield* readCategory(store, category)
          assertNoPartialAppend(stored)
          const storedIds = new Set(stored.map((e) => e.eventId))
          for (const id of acknowledged) assert.isTrue(storedIds.has(id), "an acknowledged event was lost")
        })
      ),
    120_000
  )

  it.live(
    "a connection killed inside a transaction leaves no partial append",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const server = yield* throwawayPostgres
          const { sql, store } = yield* storeOn(server.url)
          const admin = yield* storeOn(server.url)
          const streamId = `${yield* uniqueCategory}-1`
          const result = yield* Effect.exit(
            Effect.gen(function* () {
              yield* store.append(streamId, yield* threeEvents)
              const [{ pid }] = (yield* sql<{ readonly pid: number }>`select pg_backend_pid() as pid`) as [
                { readonly pid: number }
              ]
              // outside the transaction: any client's statements join the one in context
              yield* Effect.mapInputContext(
                admin.sql`select pg_terminate_backend(${pid}, 5000)`,
                (context: Context.Context<never>) => Context.omit(SqlClient.TransactionConnection)(context)
              )
              yield* store.append(streamId, yield* threeEvents)
            }).pipe(sql.withTransaction)
          )
          // the second append's own typed error, not a defect of the failed ROLLBACK
          assert.strictEqual(Exit.isFailure(result) && Cause.failureOption(result.cause)._tag, "Some")
          assert.strictEqual(Exit.isFailure(result) && Cause.dieOption(result.cause)._tag, "None")
          assert.strictEqual((yield* Effect.flip(result))._tag, "EventStoreError")
          assert.strictEqual(yield* store.streamVersion(streamId), 0)
          assert.strictEqual((yield* Effect.flip(Stream.runCollect(store.readStream(streamId))))._tag, "StreamNotFound")
          yield* store.append(streamId, yield* threeEvents)
          assert.strictEqual(yield* store.streamVersion(streamId), 3)
        })
      ),
    120_000
  )

  it.live(
    "an open transaction stalls readers and horizon names it; idle transactions of the store's connections are ended",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const server = yield* throwawayPostgres
          const { sql, store } = yield* storeOn(server.url, { idleInTransactionTimeout: "1 second" })
          const category = yield* uniqueCategory

          // a transaction elsewhere in the cluster that took a transaction id and sits there
          const other = new pg.Client({ connectionString: server.url })
          yield* Effect.acquireRelease(
            Effect.promise(() => other.connect()),
            () => Effect.promise(() => other.end())
          )
          yield* Effect.promise(() => other.query("begin; select pg_current_xact_id()"))
          const otherPid = (yield* Effect.promise(() => other.query<{ pid: number }>("select pg_backend_pid() as pid")))
            .rows[0]!.pid

          yield* store.append(`${category}-1`, yield* threeEvents)
          assert.deepStrictEqual(yield* readCategory(store, category), [], "a reader passed the open transaction")
          const horizon = yield* Effect.provideService(SqlEventStore.horizon, SqlClient.SqlClient, sql)
          assert.strictEqual(Option.getOrThrow(horizon.oldest).pid, otherPid)

          // what readers cannot see yet, and who holds it back
          const held = Option.getOrThrow(yield* store.heldBack({ categories: [category] }))
          assert.strictEqual(held.events, 3)
          assert.include(Option.getOrThrow(held.blocker), `backend ${otherPid}`)
          assert.isTrue(Option.isNone(yield* store.heldBack({ categories: [`${category}x`] })), "filtered out")

          // a live projection shows it: lag gauges, then `stalled` naming the transaction
          const name = `stall-${category}`
          const handled = yield* Ref.make(0)
          const projection = Projection.make({
            name,
            events: Schema.TaggedStruct("Tick", { n: Schema.Number }),
            categories: [category],
            handle: () => Ref.update(handled, (n) => n + 1)
          })
          const services = Context.add(
            yield* Layer.build(Layer.merge(CheckpointStore.layerMemory, Projection.layerRegistry)),
            EventStore.EventStore,
            store
          )
          const status = Effect.map(
            Effect.flatMap(Projection.Registry, (r) => r.statuses),
            (all) => all.find((s) => s.name === name)
          ).pipe(Effect.provide(services))
          const gauge = (metric: Metric.Metric.Gauge<number>) =>
            Effect.map(
              Metric.value(
                metric.pipe(
                  Metric.tagged("projection", name),
                  Metric.tagged("version", "1"),
                  Metric.tagged("partition", "0")
                )
              ),
              (g) => g.value
            )
          yield* Projection.run(projection, {
            leaseTtl: "600 millis",
            pollInterval: "50 millis",
            stallAfter: "1 second"
          }).pipe(Effect.provide(services), Effect.forkScoped)
          const stalled = yield* waitFor(
            status,
            (s) => s?.state === "stalled" && Option.isSome(s.owned[0]?.heldBack ?? Option.none())
          )
          assert.include(Option.getOrThrow(stalled!.lastError), `backend ${otherPid}`)
          assert.strictEqual(stalled!.lag.events, 3)
          assert.isAbove(stalled!.lag.seconds, 1)
          assert.strictEqual(yield* gauge(Metrics.projectionLagEvents), 3)
          assert.isAbove(yield* gauge(Metrics.projectionLagSeconds), 0)
          assert.strictEqual(yield* Ref.get(handled), 0)

          yield* Effect.promise(() => other.query("commit"))
          assert.strictEqual((yield* readCategory(store, category)).length, 3)
          const recovered = yield* waitFor(status, (s) => s?.state === "live" && s.lag.events === 0)
          assert.isTrue(Option.isNone(recovered!.owned[0]!.heldBack))
          assert.strictEqual(yield* Ref.get(handled), 3)
          yield* waitFor(gauge(Metrics.projectionLagEvents), (n) => n === 0)

          // the store's own connections end a transaction idle for longer than the timeout
          const idle = yield* Effect.exit(
            Effect.gen(function* () {
              yield* store.append(`${category}-2`, yield* threeEvents)
              yield* Effect.sleep("2500 millis")
              yield* sql`select 1`
            }).pipe(sql.withTransaction)
          )
          assert.isTrue(Exit.isFailure(idle), "an idle transaction survived the timeout")
          assert.strictEqual(yield* store.streamVersion(`${category}-2`), 0)
        })
      ),
    120_000
  )
})
