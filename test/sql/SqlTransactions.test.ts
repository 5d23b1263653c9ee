/**
 * Guarded transactions (`src/sql/SqlTransactions.ts`): a guarded copy keeps every member of the client
 * and leaves the client as it was; `SqlEventStore` does not alter the client it is given; the backend
 * Layers provide one guarded client under both tags; `layerGuarded` makes a transaction whose connection is
 * killed fail typed on a client of the user's own (without it, the same transaction dies).
 */
import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { MysqlClient } from "@effect/sql-mysql2"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as Mysql from "../../src/mysql/Mysql.js"
import * as Postgres from "../../src/pg/Postgres.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import * as SqlTransactions from "../../src/sql/SqlTransactions.js"
import { mysqlUrl, pgUrl } from "../support/config.js"
import { isolatedPrefix, uniqueCategory } from "../support/ids.js"

const schema = isolatedPrefix(import.meta.url)

/** A PostgreSQL client of the user's own (not `Postgres.layer`'s), built in the current scope. */
const ownClient = Effect.map(
  Layer.build(PgClient.layer({ url: Redacted.make(pgUrl), maxConnections: 2 })),
  (context) => ({ pg: Context.get(context, PgClient.PgClient), sql: Context.get(context, SqlClient.SqlClient) })
)

/** The id of the connection `sql` runs on (in a transaction: the transaction's). */
const backendPid = (sql: SqlClient.SqlClient) =>
  Effect.map(sql<{ readonly pid: number }>`select pg_backend_pid() as pid`, ([row]) => row!.pid)

/**
 * Terminates backend `pid` from a client of its own, outside the current transaction (statements of any
 * client join the transaction in context), and waits (up to 5 s) until it is gone.
 */
const terminate = (pid: number) =>
  Effect.scoped(
    Effect.flatMap(Layer.build(Postgres.layer({ url: pgUrl, maxConnections: 1 })), (context) => {
      const admin = Context.get(context, SqlClient.SqlClient)
      return admin`select pg_terminate_backend(${pid}, 5000)`
    })
  ).pipe(
    Effect.mapInputContext((context: Context.Context<never>) => Context.omit(SqlClient.TransactionConnection)(context))
  )

/** A transaction of `sql` whose connection is terminated under it, then used again. */
const killedTransaction = (sql: SqlClient.SqlClient) =>
  Effect.exit(
    Effect.gen(function* () {
      yield* terminate(yield* backendPid(sql))
      yield* sql`select 1`
    }).pipe(sql.withTransaction)
  )

describe("SqlTransactions", () => {
  it.live("guard makes a copy with every member of the client, and leaves the client as it was", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const { pg } = yield* ownClient
        const withTransaction = pg.withTransaction
        const keys = Reflect.ownKeys(pg)
        const guarded = SqlTransactions.guard(pg)

        assert.notStrictEqual(guarded, pg)
        assert.strictEqual(pg.withTransaction, withTransaction)
        assert.deepStrictEqual(Reflect.ownKeys(pg), keys)
        assert.isFalse(SqlTransactions.isGuarded(pg))
        assert.isTrue(SqlTransactions.isGuarded(guarded))
        assert.notStrictEqual(guarded.withTransaction, withTransaction)
        assert.strictEqual(SqlTransactions.guard(guarded), guarded, "a guarded client is not wrapped twice")
        assert.strictEqual(guarded.safe, guarded)
        assert.strictEqual(pg.safe, pg)
        assert.isTrue(SqlTransactions.isGuarded(guarded.withoutTransforms()))
        // every other member is the client's own (`notify`, `listen`, `json`, `config`, `reserve`, ...)
        for (const key of keys) {
          if (key !== "withTransaction" && key !== "safe") {
            assert.strictEqual(Reflect.get(guarded, key), Reflect.get(pg, key), String(key))
          }
        }
        assert.strictEqual(guarded.onDialectOrElse({ pg: () => "pg", orElse: () => "other" }), "pg")

        // statements, helpers, the driver's members, a reserved connection
        const [row] = yield* guarded<{ readonly n: number; readonly a: string }>`
          select ${1}::int as n, ${guarded.json({ a: "x" })}::jsonb ->> 'a' as a`
        assert.deepStrictEqual(row, { n: 1, a: "x" })
        assert.deepStrictEqual(yield* guarded.unsafe<{ readonly n: number }>("select 2::int as n"), [{ n: 2 }])
        assert.strictEqual(
          (yield* guarded`select 1 from ${guarded("pg_class")} where relname in ${guarded.in(["pg_class"])}`).length,
          1
        )
        const reserved = yield* Effect.scoped(
          Effect.flatMap(guarded.reserve, (connection) =>
            connection.executeUnprepared("select 3::int as n", [], undefined)
          )
        )
        assert.deepStrictEqual(reserved, [{ n: 3 }])
        const channel = `c${(yield* uniqueCategory).toLowerCase()}`
        const heard = yield* Effect.fork(Stream.runCollect(Stream.take(guarded.listen(channel), 1)))
        // the LISTEN is asynchronous: notify until it is heard (`notify` itself sends a bind parameter,
        // which NOTIFY does not take: `pg_notify`)
        const payloads = yield* Effect.raceFirst(
          Fiber.join(heard),
          Effect.forever(Effect.zipRight(guarded`select pg_notify(${channel}, 'hello')`, Effect.sleep("50 millis")))
        ).pipe(Effect.timeout("10 seconds"))
        assert.deepStrictEqual(Chunk.toReadonlyArray(payloads), ["hello"])

        // one transaction for both: the client's statements join the copy's transaction
        const [inside, outside] = yield* Effect.all([backendPid(guarded), backendPid(pg)]).pipe(guarded.withTransaction)
        assert.strictEqual(inside, outside)
      })
    )
  )

  it.live("SqlEventStore leaves the client it is given as it was", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const { sql } = yield* ownClient
        yield* Effect.addFinalizer(() => Effect.orDie(sql`drop schema if exists ${sql(schema)} cascade`))
        const withTransaction = sql.withTransaction
        const keys = Reflect.ownKeys(sql)
        const context = yield* Layer.build(SqlEventStore.layer({ schema })).pipe(
          Effect.provideService(SqlClient.SqlClient, sql)
        )
        const store = Context.get(context, EventStore.EventStore)
        const streamId = `${yield* uniqueCategory}-1`
        yield* store.append(streamId, [yield* Event.make({ type: "Tick", data: {} })])
        assert.strictEqual(yield* store.streamVersion(streamId), 1)

        assert.strictEqual(sql.withTransaction, withTransaction)
        assert.deepStrictEqual(Reflect.ownKeys(sql), keys)
        assert.isFalse(SqlTransactions.isGuarded(sql))
      })
    )
  )

  it.live("layerGuarded: a transaction whose connection is killed fails typed; unguarded, it dies", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const context = yield* Layer.build(
          Layer.provideMerge(
            SqlTransactions.layerGuarded,
            PgClient.layer({ url: Redacted.make(pgUrl), maxConnections: 2 })
          )
        )
        const sql = Context.get(context, SqlClient.SqlClient)
        const pg = Context.get(context, PgClient.PgClient)
        assert.isTrue(SqlTransactions.isGuarded(sql))
        assert.isFalse(SqlTransactions.isGuarded(pg), "the driver's tag keeps the unguarded client")

        const guarded = yield* killedTransaction(sql)
        assert.isTrue(Exit.isFailure(guarded))
        if (Exit.isFailure(guarded)) {
          assert.strictEqual(
            Cause.dieOption(guarded.cause)._tag,
            "None",
            `not a defect: ${Cause.pretty(guarded.cause)}`
          )
        }
        // the body's own failure: its statement on the lost connection
        assert.strictEqual((yield* Effect.flip(guarded))._tag, "SqlError")

        // what the Layer is for: `@effect/sql`'s own transaction dies on the failed ROLLBACK
        const unguarded = yield* killedTransaction(pg)
        assert.isTrue(Exit.isFailure(unguarded) && Cause.dieOption(unguarded.cause)._tag === "Some")
      })
    )
  )

  it.live("the backend Layers provide one guarded client under both tags", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const postgres = yield* Layer.build(Postgres.layer({ url: pgUrl, maxConnections: 1 }))
        assert.strictEqual(Context.get(postgres, PgClient.PgClient), Context.get(postgres, SqlClient.SqlClient))
        assert.isTrue(SqlTransactions.isGuarded(Context.get(postgres, SqlClient.SqlClient)))

        const mysql = yield* Layer.build(Mysql.layer({ url: mysqlUrl, maxConnections: 1 }))
        const client = Context.get(mysql, SqlClient.SqlClient)
        assert.strictEqual(Context.get(mysql, MysqlClient.MysqlClient), client)
        assert.isTrue(SqlTransactions.isGuarded(client))
        assert.deepStrictEqual(yield* client<{ readonly n: number }>`select 1 as n`, [{ n: 1 }])
      })
    )
  )
})
