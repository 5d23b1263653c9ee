/**
 * An SQLite client Layer for the embedded default: a file (or `:memory:`) in WAL mode with full
 * synchronous commits, so an acknowledged append survives a power loss. Its single connection is handed
 * out first come, first served, and its transactions fail typed, never with a defect: {@link layer}.
 */
import { SqliteClient } from "@effect/sql-sqlite-node"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlConnection from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as FairLock from "../internal/fairLock.js"
import * as HotPath from "../sql/HotPath.js"
import { guardTransactions } from "../sql/transaction.js"
import * as Connection from "./internal/connection.js"
import * as HotTransaction from "./internal/hotTransaction.js"

/** Options of {@link layer}. */
export interface Options {
  /** Database file path, or `":memory:"`. */
  readonly filename: string
  /** `FULL` (default) survives power loss; `NORMAL` in WAL mode only survives process crashes. */
  readonly synchronous?: "FULL" | "NORMAL"
}

/**
 * `SqlClient` (also as `SqliteClient`) for the SQL services, and the event store's `HotPath`.
 *
 * The `SqlClient` it provides hands the single connection out first come, first served: a statement
 * or transaction waits for the ones requested before it, and no statement runs inside another fiber's
 * transaction. (`@effect/sql-sqlite-node`'s client, a semaphore, lets a fiber that has just released the
 * connection take it again ahead of the waiting ones; the driver being synchronous, writers that keep
 * writing then starve every reader, a projection runner included, until they stop. Its plain statements
 * also only wait for the semaphore, then run unguarded, so they could read another fiber's uncommitted rows.)
 *
 * Its transactions never die on a failed COMMIT or ROLLBACK: they fail with their own error, or a typed
 * `SqlError` (see `SqlTransactions`).
 *
 * The connection is better-sqlite3's, opened here rather than by `@effect/sql-sqlite-node`, so that the
 * event store's hot path (appends, a stream's pages) runs on it directly, in the same first-come order:
 * through `@effect/sql` a statement costs some 10 µs of client work inside a transaction and 30 µs
 * outside one, and a transaction 40 µs, where the driver takes about 1 µs; an append is a transaction of
 * three or four statements.
 *
 * **Gotchas**: one process writes a database file at a time; within the process, the client serializes
 * statements and transactions on its single connection. `:memory:` lives as long as the Layer. The
 * `SqliteClient` it provides is this client (with `export`, `backup` and `loadExtension` on the same
 * connection), not one made by `SqliteClient.layer`.
 */
export const layer = (
  options: Options
): Layer.Layer<SqliteClient.SqliteClient | SqlClient.SqlClient | HotPath.HotPath, SqlError> =>
  Layer.scopedContext(
    Effect.gen(function* () {
      const connection = yield* Connection.open(options.filename)
      yield* connection.run(`pragma synchronous = ${options.synchronous === "NORMAL" ? "NORMAL" : "FULL"}`)
      yield* connection.run("pragma busy_timeout = 5000")
      const lock = yield* FairLock.make
      const turn = yield* eventLoopTurns
      /** Runs `effect` holding the connection, in its turn. */
      const locked = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.zipRight(turn, lock.withLock(effect))
      const statement: SqlConnection.Connection = {
        execute: (sql, params, transformRows) => locked(connection.execute(sql, params, transformRows)),
        executeRaw: (sql, params) => locked(connection.executeRaw(sql, params)),
        executeValues: (sql, params) => locked(connection.executeValues(sql, params)),
        executeUnprepared: (sql, params, transformRows) =>
          locked(connection.executeUnprepared(sql, params, transformRows)),
        executeStream: (sql, params, transformRows) =>
          Stream.unwrapScoped(Effect.as(lock.take, connection.executeStream(sql, params, transformRows)))
      }
      const client = guardTransactions(
        yield* SqlClient.make({
          acquirer: Effect.succeed(statement),
          transactionAcquirer: Effect.as(Effect.zipRight(turn, lock.take), connection),
          compiler: Statement.makeCompilerSqlite(),
          spanAttributes: [["db.system.name", "sqlite"]]
        })
      )
      const sqliteClient: SqliteClient.SqliteClient = Object.assign(client, {
        [SqliteClient.TypeId]: SqliteClient.TypeId,
        config: { filename: options.filename },
        export: Effect.try({
          try: () => connection.database.serialize(),
          catch: (cause) => new SqlError({ cause, message: "Failed to export database" })
        }),
        backup: (destination: string) =>
          Effect.tryPromise({
            try: () => connection.database.backup(destination),
            catch: (cause) => new SqlError({ cause, message: "Failed to backup database" })
          }),
        loadExtension: (path: string) =>
          Effect.try({
            try: () => connection.database.loadExtension(path),
            catch: (cause) => new SqlError({ cause, message: "Failed to load extension" })
          })
      }) as unknown as SqliteClient.SqliteClient
      const hotPath: HotPath.HotPath["Type"] = {
        outsideTransaction: (text, params, options) =>
          locked(options?.arrays === true ? connection.values(text, params) : connection.run(text, params)),
        transaction: HotTransaction.make(connection, locked),
        synchronous: { ...connection.sync, transaction: HotTransaction.makeSynchronous(connection, locked) }
      }
      return Context.make(SqlClient.SqlClient, client).pipe(
        Context.add(SqliteClient.SqliteClient, sqliteClient),
        Context.add(HotPath.HotPath, hotPath)
      )
    })
  ).pipe(Layer.provide(Reactivity.layer))

/**
 * Lets the event loop turn (timers, sockets: an HTTP request, a runner's poll) once the connection has been
 * busy for a few milliseconds since the loop last turned. The driver is synchronous, so fibers that keep
 * writing would otherwise run from one microtask to the next and hold every timer and socket back until
 * they stop. The first statement after the loop turned schedules the next turn (a `setImmediate`) and
 * starts the clock; a statement that finds the budget spent waits for that turn, with every other such.
 */
const eventLoopTurns: Effect.Effect<Effect.Effect<void>> = Effect.sync(() => {
  const budgetMillis = 4
  let busySince = 0
  /** The fibers waiting for the scheduled turn; `undefined` once it came (the loop turned). */
  let waiting: Array<() => void> | undefined
  const scheduleTurn = () => {
    const woken: Array<() => void> = (waiting = [])
    busySince = performance.now()
    setImmediate(() => {
      waiting = undefined
      woken.forEach((wake) => wake())
    })
  }
  const nextTurn = Effect.async<void>((resume) => {
    const wake = () => resume(Effect.void)
    const mine = waiting!
    mine.push(wake)
    return Effect.sync(() => {
      const index = mine.indexOf(wake)
      if (index !== -1) mine.splice(index, 1)
    })
  })
  return Effect.suspend(() => {
    if (waiting === undefined) {
      scheduleTurn()
      return Effect.void
    }
    return performance.now() - busySince < budgetMillis ? Effect.void : nextTurn
  })
})
