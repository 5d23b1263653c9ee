/**
 * Fault tests of the PostgreSQL store, each on its own throwaway server (never the shared one): a
 * server killed under load, a connection killed inside a transaction, and a transaction left open that
 * holds the read horizon back.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import pg from "pg"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as Postgres from "../../src/sql/Postgres.js"
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
              yield* admin.sql`select pg_terminate_backend(${pid})`
              yield* store.append(streamId, yield* threeEvents)
            }).pipe(sql.withTransaction)
          )
          assert.isTrue(Exit.isFailure(result))
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

          yield* Effect.promise(() => other.query("commit"))
          assert.strictEqual((yield* readCategory(store, category)).length, 3)

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
