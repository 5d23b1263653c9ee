/**
 * Connections lost under the SQL stores (PostgreSQL and MariaDB; SQLite has no connection to lose): an
 * append inside the caller's transaction, an append in the store's own transaction, and a projection
 * batch, each on a connection the test kills. Every failure is the service's own typed error, never a
 * defect, and a runner retries (status `stalled`) until connections come back.
 *
 * The tests run on the shared servers but kill only connections of their own pools: the one running
 * their transaction (`pg_backend_pid()`, `CONNECTION_ID()`), or the one waiting on a lock they hold,
 * found by their own table name.
 */
import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as CheckpointStore from "../../src/CheckpointStore.js"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as Projection from "../../src/Projection.js"
import * as Mysql from "../../src/mysql/Mysql.js"
import * as Postgres from "../../src/pg/Postgres.js"
import * as SqlCheckpointStore from "../../src/sql/SqlCheckpointStore.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import * as SqlTransactions from "../../src/sql/SqlTransactions.js"
import { mysqlUrl, pgUrl } from "../support/config.js"
import { isolatedPrefix, uniqueCategory } from "../support/ids.js"
import { mysqlWithPrefix, pgWithSchema } from "../support/sql.js"

const schema = isolatedPrefix(import.meta.url)
const prefix = `${schema}_`

interface Backend {
  readonly name: string
  /** The stores and their client. */
  readonly stores: Layer.Layer<EventStore.EventStore | CheckpointStore.CheckpointStore | SqlClient.SqlClient, unknown>
  /** A client of its own, to kill the test's connections from. */
  readonly admin: Layer.Layer<SqlClient.SqlClient, unknown>
  /** The id of the connection `sql` runs on (in a transaction: the transaction's). */
  readonly connectionId: (sql: SqlClient.SqlClient) => Effect.Effect<number, unknown>
  /** Ends connection `id` from the server side. */
  readonly kill: (admin: SqlClient.SqlClient, id: number) => Effect.Effect<unknown, unknown>
}

/**
 * Runs `effect` outside the current transaction: statements of any client join the transaction in
 * context (its connection is found by a tag all clients share), so the admin's must leave it.
 */
const outside = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.mapInputContext(effect, (context: Context.Context<never>) =>
    Context.omit(SqlClient.TransactionConnection)(context)
  )

const backends: ReadonlyArray<Backend> = [
  {
    name: "PostgreSQL",
    stores: Layer.provideMerge(
      Layer.mergeAll(SqlEventStore.layer({ schema }), SqlCheckpointStore.layer({ schema })),
      pgWithSchema(schema)
    ),
    admin: Postgres.layer({ url: pgUrl, maxConnections: 2 }),
    connectionId: (sql) => Effect.map(sql<{ readonly id: number }>`select pg_backend_pid() as id`, ([row]) => row!.id),
    // waits (up to 5 s) until the backend is gone
    kill: (admin, id) => outside(admin`select pg_terminate_backend(${id}, 5000)`)
  },
  {
    name: "MariaDB",
    stores: Layer.provideMerge(
      Layer.mergeAll(SqlEventStore.layer({ tablePrefix: prefix }), SqlCheckpointStore.layer({ tablePrefix: prefix })),
      mysqlWithPrefix(prefix)
    ),
    admin: Mysql.layer({ url: mysqlUrl, maxConnections: 2 }),
    connectionId: (sql) =>
      Effect.map(sql<{ readonly id: number | string }>`select connection_id() as id`, ([row]) => Number(row!.id)),
    kill: (admin, id) => outside(admin.unsafe(`kill connection ${Math.trunc(id)}`))
  }
]

const ticks = (count: number) =>
  Effect.all(Array.from({ length: count }, (_, n) => Event.make({ type: "Tick", data: { n } })))

/** The typed error an exit failed with; fails the test if it is a defect or an interruption. */
const typedFailure = <A, E>(exit: Exit.Exit<A, E>): E => {
  assert.isTrue(Exit.isFailure(exit), "the effect succeeded")
  const cause = (exit as Exit.Failure<A, E>).cause
  const failure = Cause.failureOption(cause)
  assert.isTrue(
    Option.isSome(failure) && Cause.dieOption(cause)._tag === "None",
    `a typed failure, not a defect: ${Cause.pretty(cause)}`
  )
  return Option.getOrThrow(failure)
}

/** Polls `effect` until its value passes `done` (at most 30 s). */
const waitFor = <A, E, R>(effect: Effect.Effect<A, E, R>, done: (a: A) => boolean) =>
  effect.pipe(
    Effect.filterOrFail(done, () => new Error("not yet")),
    Effect.retry(Schedule.spaced("50 millis")),
    Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("condition not reached in 30 s") })
  )

describe("SqlEventStore on a PostgreSQL client of the user's own, connections lost", () => {
  // not `Postgres.layer`'s client: the store leaves it as it is, and the caller's transactions on it are
  // guarded by `SqlTransactions.layerGuarded`, provided over it (without it, a failed ROLLBACK is a defect)
  const own = `${schema}_own`
  const stores = Layer.provideMerge(
    SqlEventStore.layer({ schema: own }),
    Layer.provideMerge(SqlTransactions.layerGuarded, PgClient.layer({ url: Redacted.make(pgUrl), maxConnections: 4 }))
  )
  it.live("an append inside the caller's transaction whose connection is killed fails with EventStoreError", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const sql = yield* SqlClient.SqlClient
        const admin = Context.get(yield* Layer.build(backends[0]!.admin), SqlClient.SqlClient)
        yield* Effect.addFinalizer(() => Effect.orDie(admin`drop schema if exists ${admin(own)} cascade`))
        const streamId = `${yield* uniqueCategory}-1`
        const exit = yield* Effect.exit(
          Effect.gen(function* () {
            yield* store.append(streamId, yield* ticks(2))
            yield* backends[0]!.kill(admin, yield* backends[0]!.connectionId(sql))
            yield* store.append(streamId, yield* ticks(2))
          }).pipe(sql.withTransaction)
        )
        assert.strictEqual((typedFailure(exit) as { readonly _tag: string })._tag, "EventStoreError")
        assert.strictEqual(yield* store.streamVersion(streamId), 0)
      }).pipe(Effect.provide(stores))
    )
  )
})

for (const backend of backends) {
  describe(`SQL stores on ${backend.name}, connections lost`, () => {
    it.live(
      "an append inside the caller's transaction whose connection is killed fails with a transient EventStoreError",
      () =>
        Effect.scoped(
          Effect.gen(function* () {
            const store = yield* EventStore.EventStore
            const sql = yield* SqlClient.SqlClient
            const admin = Context.get(yield* Layer.build(backend.admin), SqlClient.SqlClient)
            const streamId = `${yield* uniqueCategory}-1`
            const exit = yield* Effect.exit(
              Effect.gen(function* () {
                yield* store.append(streamId, yield* ticks(2))
                yield* backend.kill(admin, yield* backend.connectionId(sql))
                yield* store.append(streamId, yield* ticks(2))
              }).pipe(sql.withTransaction)
            )
            const error = typedFailure(exit)
            assert.strictEqual((error as { readonly _tag: string })._tag, "EventStoreError")
            assert.isTrue((error as EventStore.EventStoreError).transient, "a lost connection is transient")
            // nothing of the transaction was committed, and the store goes on
            assert.strictEqual(yield* store.streamVersion(streamId), 0)
            yield* store.append(streamId, yield* ticks(2))
            assert.strictEqual(yield* store.streamVersion(streamId), 2)
          }).pipe(Effect.provide(backend.stores))
        ),
      60_000
    )

    it.live(
      "a projection whose batch connections are terminated retries as stalled and recovers",
      () =>
        Effect.scoped(
          Effect.gen(function* () {
            const store = yield* EventStore.EventStore
            const sql = yield* SqlClient.SqlClient
            const admin = Context.get(yield* Layer.build(backend.admin), SqlClient.SqlClient)
            const category = yield* uniqueCategory
            const name = `lost_${category}`
            const down = yield* Ref.make(true)
            const killed = yield* Ref.make(0)
            const handled = yield* Ref.make(0)
            const projection = Projection.make({
              name,
              events: Schema.TaggedStruct("Tick", { n: Schema.Number }),
              categories: [category],
              // while "down", the batch's connection is killed under it: its checkpoint cannot commit
              handle: () =>
                Effect.gen(function* () {
                  if (yield* Ref.get(down)) {
                    yield* backend.kill(admin, yield* backend.connectionId(sql))
                    yield* Ref.update(killed, (n) => n + 1)
                  } else {
                    yield* Ref.update(handled, (n) => n + 1)
                  }
                })
            })
            yield* store.append(`${category}-1`, yield* ticks(3))
            const services = Context.merge(yield* Layer.build(Projection.layerRegistry), yield* Effect.context<never>())
            const status = Effect.map(
              Effect.flatMap(Projection.Registry, (r) => r.statuses),
              (all) => all.find((s) => s.name === name)
            ).pipe(Effect.provide(services))
            yield* Projection.run(projection, { leaseTtl: "3 seconds", pollInterval: "50 millis" }).pipe(
              Effect.provide(services),
              Effect.forkScoped
            )
            const stalled = yield* waitFor(status, (s) => s?.state === "stalled" && Option.isSome(s.lastError))
            assert.strictEqual(stalled!.owned.length, 1)
            assert.isAtLeast(yield* Ref.get(killed), 1)
            assert.strictEqual(yield* Ref.get(handled), 0)

            // connections come back: the same partition commits the batch
            yield* Ref.set(down, false)
            const recovered = yield* waitFor(status, (s) => s?.state === "live")
            assert.strictEqual(yield* Ref.get(handled), 3)
            assert.strictEqual(recovered!.owned[0]!.processed, 3)
          }).pipe(Effect.provide(backend.stores))
        ),
      60_000
    )
  })
}

describe("SqlEventStore on MariaDB, connections lost", () => {
  it.live(
    "an append whose own transaction's connection is killed fails with a transient EventStoreError",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          const admin = Context.get(yield* Layer.build(backends[1]!.admin), SqlClient.SqlClient)
          const streamId = `${yield* uniqueCategory}-1`
          yield* store.append(streamId, yield* ticks(1))
          // a transaction of the test's holds the stream's row: the append waits for it, in its transaction
          const locked = yield* Deferred.make<void>()
          const release = yield* Deferred.make<void>()
          const holder = yield* Effect.fork(
            Effect.gen(function* () {
              yield* admin`select version from ${admin(`${prefix}streams`)} where stream_id = ${streamId} for update`
              yield* Deferred.succeed(locked, undefined)
              yield* Deferred.await(release)
            }).pipe(admin.withTransaction)
          )
          yield* Deferred.await(locked)
          const appending = yield* Effect.fork(Effect.exit(store.append(streamId, yield* ticks(1))))
          // the store's connection waiting on the lock: the one statement naming this test's table
          const [waiting] = yield* waitFor(
            admin<{ readonly id: number | string }>`select id from information_schema.processlist
              where info like ${`%${prefix}streams%`} and id <> connection_id()`,
            (rows) => rows.length === 1
          )
          yield* backends[1]!.kill(admin, Number(waiting!.id))
          const exit = yield* Fiber.join(appending)
          yield* Deferred.succeed(release, undefined)
          yield* Fiber.join(holder)
          const error = typedFailure(exit)
          assert.strictEqual((error as { readonly _tag: string })._tag, "EventStoreError")
          assert.isTrue((error as EventStore.EventStoreError).transient, "a lost connection is transient")
          assert.strictEqual(yield* store.streamVersion(streamId), 1)
          yield* store.append(streamId, yield* ticks(1))
          assert.strictEqual(yield* store.streamVersion(streamId), 2)
        }).pipe(Effect.provide(backends[1]!.stores))
      ),
    60_000
  )
})
