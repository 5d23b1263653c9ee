/**
 * `sql.withTransaction` for the SQL services, with MySQL's way of ending a transaction on a deadlock or a
 * lock wait timeout: InnoDB rolls the whole transaction back, savepoints included, so a nested
 * transaction's `ROLLBACK TO SAVEPOINT` fails. That failure (a defect in `@effect/sql`) becomes a typed
 * `SqlError` saying the enclosing transaction has ended, which each service maps to its own error.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
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

const isLostSavepoint = (defect: unknown): boolean =>
  defect instanceof SqlError && (defect.cause as { readonly errno?: unknown } | undefined)?.errno === 1305

/** Whether `error` says the enclosing transaction has ended (see the module doc). */
export const isTransactionEnded = (error: unknown): boolean => error instanceof SqlError && isLostSavepoint(error.cause)
