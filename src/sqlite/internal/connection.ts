/**
 * The one better-sqlite3 connection of `Sqlite.layer`, opened in the Layer's scope, with its statements
 * prepared once (a bounded cache by text) and run synchronously. It is both the `Connection` the
 * `SqlClient` is made over and what the hot path runs on directly: one object, so that a transaction begun
 * either way is joined by statements of the other. Driver errors become `SqlError`s carrying the driver's
 * error as their cause, as `@effect/sql-sqlite-node` makes them, so the SQL services classify them alike.
 *
 * @internal
 */
import { createRequire } from "node:module"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as HotPath from "../../sql/HotPath.js"

/** The part of a better-sqlite3 statement used here (the package has no types of its own). */
interface DriverStatement {
  readonly reader: boolean
  all(...params: ReadonlyArray<unknown>): Array<unknown>
  run(...params: ReadonlyArray<unknown>): { readonly changes: number; readonly lastInsertRowid: number | bigint }
  raw(raw: boolean): DriverStatement
}

/** The part of a better-sqlite3 database used here. */
export interface DriverDatabase {
  prepare(text: string): DriverStatement
  pragma(text: string): unknown
  close(): void
  serialize(): Uint8Array
  backup(destination: string): Promise<{ readonly totalPages: number; readonly remainingPages: number }>
  loadExtension(path: string): void
  readonly inTransaction: boolean
}

/** The connection (see the module doc). */
export interface SqliteConnection extends Connection {
  readonly database: DriverDatabase
  /** Runs one statement on the connection as it is: its rows (none for a statement that reads none). */
  readonly run: (text: string, params?: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<any>, SqlError>
  /** {@link run}, with rows as arrays of their values (`executeValues`). */
  readonly values: (
    text: string,
    params?: ReadonlyArray<unknown>
  ) => Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError>
  /** The same statements, run synchronously (see `HotPath.SyncStatements`): they throw the driver's error. */
  readonly sync: Pick<HotPath.SyncStatements, "rows" | "changes">
}

/** Prepared statements kept, by text: the services' texts are fixed, so a few dozen are in use. */
const cacheCapacity = 256

/** Opens `filename` (in WAL mode, which `:memory:` ignores), closed with the scope. */
export const open = (filename: string): Effect.Effect<SqliteConnection, SqlError, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.try({
        try: () => {
          const Database = createRequire(import.meta.url)("better-sqlite3") as new (filename: string) => DriverDatabase
          const database = new Database(filename)
          database.pragma("journal_mode = WAL")
          return database
        },
        catch: (cause) => new SqlError({ cause, message: `could not open the SQLite database ${filename}` })
      }),
      (database) => Effect.sync(() => database.close())
    ),
    make
  )

const make = (database: DriverDatabase): SqliteConnection => {
  const prepared = new Map<string, DriverStatement>()
  const prepare = (text: string) => {
    let statement = prepared.get(text)
    if (statement === undefined) {
      statement = database.prepare(text)
      // past the capacity a new text replaces the oldest: texts built per call (a batch's insert) come and go
      if (prepared.size >= cacheCapacity) prepared.delete(prepared.keys().next().value!)
      prepared.set(text, statement)
    }
    return statement
  }
  const attempt = <A>(f: () => A) =>
    Effect.try({ try: f, catch: (cause) => new SqlError({ cause, message: "Failed to execute statement" }) })
  const rowsOf = (statement: DriverStatement, params: ReadonlyArray<unknown>): ReadonlyArray<any> => {
    if (statement.reader) return statement.all(...params)
    statement.run(...params)
    return []
  }
  const run = (text: string, params: ReadonlyArray<unknown> = []) => attempt(() => rowsOf(prepare(text), params))
  // statements kept in raw mode (rows as arrays), apart from the others: no switching back and forth per call
  const preparedRaw = new Map<string, DriverStatement>()
  const prepareRaw = (text: string) => {
    let statement = preparedRaw.get(text)
    if (statement === undefined) {
      statement = database.prepare(text)
      if (statement.reader) statement.raw(true)
      if (preparedRaw.size >= cacheCapacity) preparedRaw.delete(preparedRaw.keys().next().value!)
      preparedRaw.set(text, statement)
    }
    return statement
  }
  const values = (text: string, params: ReadonlyArray<unknown> = []) =>
    attempt((): ReadonlyArray<ReadonlyArray<unknown>> => rowsOf(prepareRaw(text), params))
  const sync: SqliteConnection["sync"] = {
    rows: (text, params) => rowsOf(prepare(text), params),
    changes: (text, params) => prepare(text).run(...params)
  }
  const execute = (text: string, params: ReadonlyArray<unknown>, transformRows: Transform | undefined) =>
    transformRows === undefined ? run(text, params) : Effect.map(run(text, params), transformRows)
  return {
    database,
    run,
    values,
    sync,
    execute,
    // BEGIN, COMMIT and SAVEPOINT come this way: prepared once too
    executeUnprepared: execute,
    executeRaw: (text, params) =>
      attempt(() => {
        const statement = prepare(text)
        return statement.reader ? statement.all(...params) : statement.run(...params)
      }),
    executeValues: values,
    executeStream: (text, params, transformRows) =>
      Stream.unwrap(Effect.map(execute(text, params, transformRows), Stream.fromIterable))
  }
}

type Transform = <A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>
