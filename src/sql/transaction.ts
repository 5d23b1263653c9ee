/**
 * What the SQL services share about transactions and MySQL's ways:
 *
 * - {@link withTransaction}: `sql.withTransaction`, with MySQL's way of ending a transaction on a deadlock
 *   or a lock wait timeout: InnoDB rolls the whole transaction back, savepoints included, so a nested
 *   transaction's `ROLLBACK TO SAVEPOINT` fails. That failure (a defect in `@effect/sql`) becomes a typed
 *   `SqlError` saying the enclosing transaction has ended, which each service maps to its own error.
 * - {@link matched} and {@link rowCount}: how many rows a statement touched, where MySQL has no `RETURNING`.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"

/** Runs `effect` in a transaction of `sql` (a savepoint inside an enclosing one). */
export const withTransaction =
  (sql: SqlClient.SqlClient) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
    sql.withTransaction(effect).pipe(
      Effect.catchAllDefect((defect) =>
        isLostSavepoint(defect)
          ? Effect.fail(
              new SqlError({
                cause: defect,
                message:
                  "the database rolled the enclosing transaction back (a deadlock or a lock wait timeout): it has ended"
              })
            )
          : Effect.die(defect)
      )
    )

const isLostSavepoint = (defect: unknown): boolean => mysqlErrno(defect) === 1305

/** The MySQL error number behind an `SqlError`, if any. */
export const mysqlErrno = (error: unknown): unknown =>
  error instanceof SqlError ? (error.cause as { readonly errno?: unknown } | undefined)?.errno : undefined

/**
 * MySQL: the rows the connection's last statement changed (matched, for an UPDATE: mysql2 asks for found
 * rows). Run it in the statement's transaction, so both use one connection of the pool.
 */
export const rowCount = (sql: SqlClient.SqlClient): Effect.Effect<number, SqlError> =>
  Effect.map(sql<{ readonly n: number | string }>`select row_count() as n`, ([row]) => Number(row?.n ?? 0))

/** Runs an UPDATE and returns how many rows it matched. */
export const matched = (
  sql: SqlClient.SqlClient,
  update: Statement.Statement<unknown>
): Effect.Effect<number, SqlError> =>
  sql.onDialectOrElse({
    mysql: () => withTransaction(sql)(Effect.zipRight(update, rowCount(sql))),
    orElse: () => Effect.map(sql`${update} returning 1`, (rows) => rows.length)
  })

/** Whether `error` says the enclosing transaction has ended (see the module doc). */
export const isTransactionEnded = (error: unknown): boolean => error instanceof SqlError && isLostSavepoint(error.cause)
