/**
 * A faster way for the event store's hot statements (the append calls, `readStream`'s and `readAll`'s pages)
 * to reach the database outside a transaction, provided by a backend's client Layer that has one (`Postgres.layer`: straight on its `pg`
 * pool, without `@effect/sql`'s per-statement work); the store uses it when it is in context and goes
 * through the `SqlClient` otherwise. Inside a transaction a statement always goes through the client, on
 * the transaction's connection.
 *
 * A hot path may prepare a statement (parse and plan it once per connection, as `Postgres.layer` does unless
 * told not to): only statements whose plan cannot depend on their arguments, with texts fixed per store, are
 * run so, and a connection then holds a small, bounded set of them. Others (`readAll`'s pages, whose
 * filters vary) are run with `prepare: false`.
 */
import * as Context from "effect/Context"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

/** Runs one statement (text and parameters), answering its rows (as objects, or as arrays if asked). */
export type Run = (
  text: string,
  params: ReadonlyArray<unknown>,
  options?: RunOptions
) => Effect.Effect<ReadonlyArray<any>, SqlError>

/** Options of a {@link Run}. */
export interface RunOptions {
  /**
   * `false` for a statement whose best plan may depend on its arguments or whose text varies with them
   * (a filtered `readAll` page): the hot path never keeps it prepared. Default true.
   */
  readonly prepare?: boolean
  /**
   * Rows as arrays of their values, in the select list's order, instead of objects: cheaper for the
   * drivers to build, for the store's own reads whose columns it knows (see `EventValues`). Default false.
   */
  readonly arrays?: boolean
}

/** The hot path of the `SqlClient` it was provided with (see the module doc). */
export class HotPath extends Context.Tag("effect-eventsourcing/sql/HotPath")<
  HotPath,
  {
    /** Runs a statement on a connection of its own, never inside a transaction. */
    readonly outsideTransaction: Run
    /**
     * Runs `effect` as one transaction (a savepoint inside an enclosing one) whose statements through the
     * client join it, where the backend has a faster way than the client's `withTransaction`
     * (`Sqlite.layer`: on its one connection).
     */
    readonly transaction?: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>
    /**
     * Statements run synchronously, and a transaction to run them in, where the driver is synchronous
     * (`Sqlite.layer`): a group of appends then takes no Effect per statement.
     */
    readonly synchronous?: SyncStatements
  }
>() {}

/**
 * Synchronous statements on a connection (see {@link HotPath} `synchronous`); each throws the driver's error.
 * Run them only inside the hot path's `transaction` or their own `transaction`, which hold the connection.
 */
export interface SyncStatements {
  /**
   * Runs `body` as one transaction of its own, holding the connection (never inside another transaction):
   * committed if it returns a value, rolled back if it returns `undefined` (the answer then). A failed BEGIN
   * or COMMIT (rolled back) fails with a `SqlError`; `body` throwing is a defect (rolled back too).
   */
  readonly transaction: <A>(body: () => A | undefined) => Effect.Effect<A | undefined, SqlError>
  /** Runs a statement and returns its rows (none for a statement that returns none). */
  readonly rows: (text: string, params: ReadonlyArray<unknown>) => ReadonlyArray<any>
  /** Runs a statement that returns no rows: the rows it changed and the last rowid it inserted (SQLite). */
  readonly changes: (
    text: string,
    params: ReadonlyArray<unknown>
  ) => { readonly changes: number; readonly lastInsertRowid: number | bigint }
}

/** The two ways to run a hot statement on `sql`. */
export interface Runners {
  /** Through the client: the only way inside a transaction. No `sql.execute` span: the operation has its own. */
  readonly viaClient: Run
  /** On the hot path if there is one, else through the client; never inside a transaction. */
  readonly outsideTransaction: Run
  /** On the transaction's connection inside one (through the client), else as {@link outsideTransaction}. */
  readonly anywhere: Run
}

/** How hot statements run on `sql`, given the hot path in context, if any. */
export const runners = (sql: SqlClient.SqlClient, hotPath: Option.Option<HotPath["Type"]>): Runners => {
  const viaClient: Run = (text, params, options) => {
    const statement = sql.unsafe(text, params)
    return Effect.withTracerEnabled(options?.arrays === true ? statement.values : statement, false)
  }
  const outsideTransaction = Option.match(hotPath, { onNone: () => viaClient, onSome: (h) => h.outsideTransaction })
  return {
    viaClient,
    outsideTransaction,
    anywhere: Option.isNone(hotPath)
      ? viaClient
      : (text, params, options) =>
          Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (transaction) =>
            (Option.isSome(transaction) ? viaClient : outsideTransaction)(text, params, options)
          )
  }
}
