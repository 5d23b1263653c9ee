/**
 * An SQLite client Layer for the embedded default: a file (or `:memory:`) in WAL mode with full
 * synchronous commits, so an acknowledged append survives a power loss. Its single connection is handed
 * out first come, first served, and its transactions fail typed, never with a defect: {@link layer}.
 */
import { SqliteClient } from "@effect/sql-sqlite-node"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as FairLock from "../internal/fairLock.js"
import { guardTransactions } from "../sql/transaction.js"

/** Options of {@link layer}. */
export interface Options {
  /** Database file path, or `":memory:"`. */
  readonly filename: string
  /** `FULL` (default) survives power loss; `NORMAL` in WAL mode only survives process crashes. */
  readonly synchronous?: "FULL" | "NORMAL"
}

/**
 * `SqliteClient` and `SqlClient` for the SQL services.
 *
 * The `SqlClient` it provides hands the single connection out first come, first served: a statement
 * or transaction waits for the ones requested before it, and no statement runs inside another fiber's
 * transaction. (`SqliteClient`'s own lock lets a fiber that has just released the connection take it
 * again ahead of the waiting ones; the driver being synchronous, writers that keep writing then starve
 * every reader, a projection runner included, until they stop. A plain statement also only waits for
 * the lock, then runs unguarded, so it could read another fiber's uncommitted rows.)
 *
 * Its transactions never die on a failed COMMIT or ROLLBACK: they fail with their own error, or a typed
 * `SqlError` (see `SqlTransactions`).
 *
 * **Gotchas**: one process writes a database file at a time; within the process, the client serializes
 * statements and transactions on its single connection. `:memory:` lives as long as the Layer. Code that
 * uses the `SqliteClient` service directly bypasses the first-come order (not the serialization).
 */
export const layer = (
  options: Options
): Layer.Layer<SqliteClient.SqliteClient | SqlClient.SqlClient, ConfigError.ConfigError | SqlError> =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe(`pragma synchronous = ${options.synchronous === "NORMAL" ? "NORMAL" : "FULL"}`)
      yield* sql`pragma busy_timeout = 5000`
    })
  ).pipe(Layer.provideMerge(fairClient), Layer.provideMerge(SqliteClient.layer({ filename: options.filename })))

/** The `SqlClient` over `SqliteClient`'s connection, handed out in request order (see the module doc). */
const fairClient: Layer.Layer<SqlClient.SqlClient, never, SqliteClient.SqliteClient> = Layer.scoped(
  SqlClient.SqlClient,
  Effect.gen(function* () {
    const sqlite = yield* SqliteClient.SqliteClient
    const lock = yield* FairLock.make
    const turn = yield* eventLoopTurns
    /** Runs `f` on the connection, holding this lock and then `SqliteClient`'s (uncontended but for direct users). */
    const locked = <A>(f: (connection: Connection) => Effect.Effect<A, SqlError>) =>
      Effect.zipRight(turn, lock.withLock(Effect.scoped(Effect.flatMap(sqlite.reserve, f))))
    const statement: Connection = {
      execute: (sql, params, transformRows) => locked((c) => c.execute(sql, params, transformRows)),
      executeRaw: (sql, params) => locked((c) => c.executeRaw(sql, params)),
      executeValues: (sql, params) => locked((c) => c.executeValues(sql, params)),
      executeUnprepared: (sql, params, transformRows) => locked((c) => c.executeUnprepared(sql, params, transformRows)),
      executeStream: (sql, params, transformRows) =>
        Stream.unwrapScoped(
          Effect.zipRight(
            lock.take,
            Effect.map(sqlite.reserve, (c) => c.executeStream(sql, params, transformRows))
          )
        )
    }
    return guardTransactions(
      yield* SqlClient.make({
        acquirer: Effect.succeed(statement),
        transactionAcquirer: Effect.zipRight(Effect.zipRight(turn, lock.take), sqlite.reserve),
        compiler: Statement.makeCompilerSqlite(),
        spanAttributes: [["db.system.name", "sqlite"]]
      })
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
