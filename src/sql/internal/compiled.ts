/**
 * Statements compiled once per store and run with their parameters per call, on the enclosing transaction's
 * connection: the serial append's (SQLite, MySQL), which runs in a transaction of its own.
 *
 * @internal
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as HotPath from "../HotPath.js"

/**
 * Runs a statement whose text is compiled already on the enclosing transaction's connection, without the
 * client's per-statement work (building and compiling the statement, a span); outside a transaction,
 * through the client. For the statements of an append, which runs in a transaction of its own.
 */
export const inTransaction =
  (sql: SqlClient.SqlClient): HotPath.Run =>
  (text, params) =>
    Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (transaction) =>
      Option.isSome(transaction)
        ? transaction.value[0].execute(text, params, undefined)
        : Effect.withTracerEnabled(sql.unsafe(text, params), false)
    )

/**
 * As {@link inTransaction}, answering what the driver answers for the statement itself rather than rows:
 * for a SQLite statement that returns none, `{ changes, lastInsertRowid }` (both SQLite drivers).
 */
export const rawInTransaction =
  (sql: SqlClient.SqlClient) =>
  (text: string, params: ReadonlyArray<unknown>): Effect.Effect<unknown, SqlError> =>
    Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (transaction) =>
      Option.isSome(transaction)
        ? transaction.value[0].executeRaw(text, params)
        : Effect.withTracerEnabled(sql.unsafe(text, params).raw, false)
    )

/**
 * The text of `statement`, compiled once for a client, to be run with its parameters given per call (in
 * the order of the template's values). Dies when the statement has not `params` parameters: a fragment of
 * it brought values of its own, and the text cannot be run with the caller's alone.
 */
export const text = (statement: Statement.Statement<unknown>, params: number): string => {
  const [text, values] = statement.compile()
  if (values.length !== params)
    throw new Error(`a compiled statement has ${values.length} parameters, not ${params}: ${text}`)
  return text
}
