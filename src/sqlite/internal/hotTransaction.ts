/**
 * Transactions on SQLite's one connection without `@effect/sql`'s per-transaction work (a span, a scope, a
 * connection acquired through the client): the hot path's `transaction` (see `sql/HotPath`). Statements
 * through the `SqlClient` inside it join it, as they join a client transaction, and a client transaction
 * or another of these inside it is a savepoint. Also the synchronous one of its `synchronous` statements.
 *
 * @internal
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type { SqliteConnection } from "./connection.js"

/**
 * The transaction runner over `connection`; `locked` holds the connection (in its turn) for a transaction
 * of its own. Inside an enclosing transaction (the connection is held already) it is a savepoint.
 *
 * Like a guarded client transaction (`SqlTransactions.guard`), it never dies: a failed ROLLBACK keeps the
 * body's failure, and a failed COMMIT, rolled back, fails with a typed `SqlError`.
 */
export const make =
  (connection: SqliteConnection, locked: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
    Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (enclosing) =>
      Option.isSome(enclosing)
        ? savepoint(connection, enclosing.value[1] + 1, effect)
        : locked(transaction(connection, effect))
    )

/**
 * The synchronous transaction runner over `connection` (see `HotPath.SyncStatements`): BEGIN, the body and
 * COMMIT (or ROLLBACK) in one step, holding the connection, with no Effect between its statements.
 */
export const makeSynchronous =
  (connection: SqliteConnection, locked: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>) =>
  <A>(body: () => A | undefined): Effect.Effect<A | undefined, SqlError> =>
    locked(
      Effect.suspend(() => {
        const run = (text: string) => Either.try(() => connection.sync.changes(text, []))
        const begun = run("BEGIN")
        if (Either.isLeft(begun)) return Effect.fail(new SqlError({ cause: begun.left, message: "BEGIN failed" }))
        const answer = Either.try(body)
        if (Either.isLeft(answer) || answer.right === undefined) {
          endTransaction(connection)
          return Either.isLeft(answer) ? Effect.die(answer.left) : Effect.succeed(undefined)
        }
        const committed = run("COMMIT")
        if (Either.isRight(committed)) return Effect.succeed(answer.right)
        endTransaction(connection)
        return Effect.fail(
          new SqlError({ cause: committed.left, message: "the transaction's COMMIT failed; it was rolled back" })
        )
      })
    )

const transaction = <A, E, R>(connection: SqliteConnection, effect: Effect.Effect<A, E, R>) =>
  Effect.uninterruptibleMask((restore) =>
    Effect.zipRight(
      connection.run("BEGIN"),
      Effect.flatMap(
        Effect.exit(
          restore(
            // statements through the `SqlClient` join the transaction
            Effect.provideService(effect, SqlClient.TransactionConnection, [connection, 0])
          )
        ),
        (exit) =>
          Exit.isSuccess(exit)
            ? connection.run("COMMIT").pipe(
                Effect.catchAll((cause) =>
                  Effect.zipRight(
                    rollback(connection),
                    Effect.fail(new SqlError({ cause, message: "the transaction's COMMIT failed; it was rolled back" }))
                  )
                ),
                Effect.zipRight(exit)
              )
            : Effect.zipRight(rollback(connection), exit)
      )
    )
  )

const savepoint = <A, E, R>(connection: SqliteConnection, depth: number, effect: Effect.Effect<A, E, R>) =>
  Effect.uninterruptibleMask((restore) => {
    const name = `ees_${depth}`
    return Effect.zipRight(
      connection.run(`SAVEPOINT ${name}`),
      // the enclosing transaction's connection and depth stay in context: a savepoint nested in this one is
      // named alike, and SQLite's savepoints of one name nest (RELEASE and ROLLBACK TO take the latest)
      Effect.flatMap(Effect.exit(restore(effect)), (exit) =>
        Effect.zipRight(
          Exit.isSuccess(exit)
            ? connection.run(`RELEASE ${name}`)
            : // a failed ROLLBACK TO (the connection broke) keeps the body's failure
              Effect.ignore(Effect.zipRight(connection.run(`ROLLBACK TO ${name}`), connection.run(`RELEASE ${name}`))),
          exit
        )
      )
    )
  })

/** {@link rollback}, synchronously. */
const endTransaction = (connection: SqliteConnection): void => {
  // a failure: the connection broke, and SQLite ends the transaction with it
  if (connection.database.inTransaction) Either.try(() => connection.sync.changes("ROLLBACK", []))
}

/** Ends the transaction if it is still open (SQLite may have ended it on an error); a failure is ignored. */
const rollback = (connection: SqliteConnection) =>
  Effect.suspend(() => (connection.database.inTransaction ? Effect.ignore(connection.run("ROLLBACK")) : Effect.void))
