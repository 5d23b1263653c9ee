/**
 * What the SQL services share about transactions: {@link guardTransactions} (a guarded copy of a client:
 * a failed COMMIT or ROLLBACK is typed, never a defect; public as `SqlTransactions.guard`) and
 * {@link withTransaction} (guarded, and typed when MySQL ended the enclosing transaction).
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"

/**
 * Runs `effect` in a guarded transaction of `sql` (a savepoint inside an enclosing one). MySQL ends a
 * transaction on a deadlock or a lock wait timeout by rolling it all back, savepoints included, so a nested
 * transaction's `ROLLBACK TO SAVEPOINT` fails: that failure becomes a typed `SqlError` saying the enclosing
 * transaction has ended, which each service maps to its own error.
 */
export const withTransaction =
  (sql: SqlClient.SqlClient) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
    (isGuarded(sql) ? sql.withTransaction : guarded(sql.withTransaction))(effect)

const guardedKey = Symbol.for("effect-eventsourcing/sql/guardedTransactions")

/**
 * A copy of `client` whose `withTransaction` is guarded; `client` itself is left as it was (it may be the
 * user's). A client guarded already is returned as it is.
 *
 * `@effect/sql`'s `withTransaction` turns a failed COMMIT or ROLLBACK into a defect (`Effect.orDie` around
 * them). On a connection that is gone (a terminated backend, a killed connection, a server restart) the
 * ROLLBACK after a failed statement always fails, so the caller's typed error became a defect. A guarded
 * client keeps the transaction's own failure when its ROLLBACK fails (the server ends a transaction whose
 * connection is gone), and fails with a typed `SqlError` when its COMMIT fails.
 *
 * The copy is callable like the client and has all of its own members (driver ones too: a `PgClient`'s
 * `json`, `listen`, `notify`), sharing the client's pool and connections: statements of either join a
 * transaction of the other. Its `safe` is the copy, and so is `withoutTransforms()` (or a guarded copy of
 * its own). The client Layers of the backends provide guarded clients; `SqlEventStore` guards a copy for
 * its own use.
 */
export const guardTransactions = <C extends SqlClient.SqlClient>(client: C): C => {
  if (isGuarded(client)) return client
  const call = client as unknown as (...args: ReadonlyArray<unknown>) => unknown
  const copy = (...args: ReadonlyArray<unknown>): unknown => call(...args)
  Object.setPrototypeOf(copy, Object.getPrototypeOf(client))
  const member = (value: unknown): PropertyDescriptor => ({
    value,
    enumerable: true,
    writable: true,
    configurable: true
  })
  Object.defineProperties(copy, {
    ...Object.getOwnPropertyDescriptors(client),
    withTransaction: member(guarded(client.withTransaction)),
    safe: member(copy),
    // enumerable: a copy made by spreading the client (`withoutTransforms`) stays marked
    [guardedKey]: member(true)
  })
  return copy as unknown as C
}

/** Whether `client`'s transactions are guarded (see {@link guardTransactions}). */
export const isGuarded = (client: SqlClient.SqlClient): boolean =>
  (client as unknown as Record<symbol, unknown>)[guardedKey] === true

/**
 * `withTransaction` whose failed COMMIT or ROLLBACK (a defect there) is a typed failure: the body's own
 * failure when the ROLLBACK after it failed, a typed `SqlError` when the COMMIT failed or when the ROLLBACK
 * failed after BEGIN or SAVEPOINT did (the body never ran).
 */
const guarded =
  (withTransaction: SqlClient.SqlClient["withTransaction"]): SqlClient.SqlClient["withTransaction"] =>
  <R, E, A>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
    Effect.suspend(() => {
      let body: Exit.Exit<A, E> | undefined
      return withTransaction(
        Effect.onExit(effect, (exit) =>
          Effect.sync(() => {
            body = exit
          })
        )
      ).pipe(
        Effect.catchAllDefect((defect): Effect.Effect<A, E | SqlError> => {
          if (!(defect instanceof SqlError)) return Effect.die(defect)
          if (body === undefined) {
            // BEGIN or SAVEPOINT failed (its error is lost), then the ROLLBACK after it
            return Effect.fail(
              new SqlError({ cause: defect, message: "the transaction could not begin: its connection failed" })
            )
          }
          if (Exit.isFailure(body)) {
            return isLostSavepoint(defect)
              ? Effect.fail(
                  new SqlError({
                    cause: defect,
                    message:
                      "the database rolled the enclosing transaction back (a deadlock or a lock wait timeout): it has ended"
                  })
                )
              : // the ROLLBACK failed: the connection is gone, and the server ends its transaction
                body
          }
          return Effect.fail(
            new SqlError({
              cause: defect,
              message: "the transaction's COMMIT failed: it may or may not have committed"
            })
          )
        })
      )
    })

const isLostSavepoint = (defect: unknown): boolean => mysqlErrno(defect) === 1305

/** The MySQL error number behind an `SqlError`, if any. */
const mysqlErrno = (error: unknown): unknown =>
  error instanceof SqlError ? (error.cause as { readonly errno?: unknown } | undefined)?.errno : undefined

/** Whether `error` says the enclosing transaction has ended (see the module doc). */
export const isTransactionEnded = (error: unknown): boolean => error instanceof SqlError && isLostSavepoint(error.cause)
