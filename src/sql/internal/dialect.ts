/**
 * The dialect record: everything the SQL services do differently on PostgreSQL, SQLite and MySQL/MariaDB,
 * implemented once per backend (`pg/internal/dialect.ts`, `sqlite/internal/dialect.ts`,
 * `mysql/internal/dialect.ts`) and chosen once per service, when it is built ({@link of}). The services
 * hold no dialect conditional: they ask the record for a statement's differing part, or for a behaviour.
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as Event from "../../Event.js"
import {
  type AppendResult,
  type ConcurrencyConflict,
  type DuplicateCommand,
  EventStoreError,
  type HeldBack,
  type InvalidAppend,
  type StreamDeleted,
  type UniqueConstraintViolation
} from "../../EventStore.js"
import type { PreparedAppend } from "../../internal/appendPreparation.js"
import * as MysqlDialect from "../../mysql/internal/dialect.js"
import * as PgDialect from "../../pg/internal/dialect.js"
import * as SqliteDialect from "../../sqlite/internal/dialect.js"
import type { BackendLimits } from "../backendLimits.js"
import type * as HotPath from "../HotPath.js"
import type { CommandRow } from "../commandRecords.js"
import type { Service, Tables } from "../migrations.js"

/** A backend's statements and behaviours, as the SQL services use them (see the module doc). */
export interface SqlDialect {
  /** The backend, as named in messages. */
  readonly name: string
  /** The backend's bounds on an append, read from the server (see `backendLimits`). */
  readonly limits: Effect.Effect<BackendLimits, SqlError>
  /** The event store's part (appends and global reads); writers it starts live in the scope. */
  readonly events: (options: EventsOptions) => Effect.Effect<EventsDialect, never, Scope.Scope>
  /** The condition on a command record's `recorded_at` that it is older than `ttlMillis` at `nowMillis`. */
  readonly commandExpired: (ttlMillis: number, nowMillis: number) => Statement.Fragment
  /** The end of an INSERT whose rows are skipped when their `key` is taken. */
  readonly onConflictIgnore: (key: ReadonlyArray<string>) => Statement.Fragment
  /** The end of an INSERT whose rows, when their `key` is taken, set the stored row's `columns` to theirs. */
  readonly onConflictUpdate: (key: ReadonlyArray<string>, columns: ReadonlyArray<string>) => Statement.Fragment
  /**
   * Inserts `row` into `table` unless its `key` is taken; whether it did. On MySQL an `INSERT IGNORE`
   * (no `RETURNING` there), which also stores a value too long for its column cut: check lengths first.
   */
  readonly insertNew: (
    table: string,
    row: Readonly<Record<string, unknown>>,
    key: ReadonlyArray<string>
  ) => Effect.Effect<boolean, SqlError>
  /** Runs an UPDATE or a DELETE and returns how many rows it matched. */
  readonly matched: (statement: Statement.Statement<unknown>) => Effect.Effect<number, SqlError>
  /**
   * Runs an UPDATE and returns the rows it updated as `select` reads them: `returning` those `columns`
   * where the backend can, or `select` under the update's locks, in one transaction.
   */
  readonly updateReturning: <Row extends object>(
    update: Statement.Statement<unknown>,
    columns: Statement.Fragment,
    select: Statement.Statement<Row>
  ) => Effect.Effect<ReadonlyArray<Row>, SqlError>
  /** The end of a SELECT that locks the rows it reads to the transaction's end (nothing on SQLite's one writer). */
  readonly forUpdate: Statement.Fragment
  /** As {@link forUpdate}, skipping rows another transaction holds. */
  readonly forUpdateSkipLocked: Statement.Fragment
  /**
   * The end of a SELECT, inside a transaction, that must read what is committed now rather than the
   * transaction's snapshot (MySQL's REPEATABLE READ takes it at the first read): a shared lock there.
   */
  readonly committedNow: Statement.Fragment
  /** Whether transactions run side by side on several connections (so rows are locked); SQLite runs one at a time. */
  readonly concurrentTransactions: boolean
  /** The UTF-8 byte length of a text column's value. */
  readonly byteLength: (column: string) => Statement.Fragment
  /** The events table's stored columns (not the generated ones), which the archive table has too. */
  readonly eventColumns: ReadonlyArray<string>
  /**
   * The condition that an event's `recorded_at` (in `column`) is before `millis` (epoch milliseconds): on
   * PostgreSQL a time of the server's clock, elsewhere of the store's.
   */
  readonly recordedBefore: (column: string, millis: number) => Statement.Fragment
  /** The category of a stream id column's value (see `Event.categoryOf`: the part before a first `-` past the start). */
  readonly categoryOf: (column: string) => Statement.Fragment
  readonly ddl: Ddl
}

/** What the event store gives its dialect part. */
export interface EventsOptions {
  readonly tables: Tables
  readonly commandTtl: number
  /**
   * Runs an append's transaction (a savepoint inside the caller's): the hot path's where the backend has
   * one (see `HotPath`), else the client's `withTransaction`.
   */
  readonly transaction: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>
  /** Statements run synchronously inside `transaction`, where the hot path has them (see `HotPath`). */
  readonly synchronous: HotPath.SyncStatements | undefined
  /** PostgreSQL: group commit (see `SqlEventStore.Options`). */
  readonly groupCommit: false | { readonly maxBatch?: number; readonly writers?: number } | undefined
  readonly limits: BackendLimits
  /** The original result of an append whose events are (partly) stored already, in a stream at `current`. */
  readonly resolveStored: (
    append: PreparedAppend,
    stored: ReadonlyMap<string, number>,
    current: number
  ) => Effect.Effect<AppendResult, InvalidAppend | ConcurrencyConflict | SqlError>
}

/** A backend's DDL: column types, and what `migrate` does differently. */
export interface Ddl {
  /** A text column that is part of a key (`length`: its bound where keys must be bounded; default 255). */
  readonly key: (length?: number) => Statement.Fragment
  /** A column holding a JSON document. */
  readonly longText: Statement.Fragment
  /** The end of every CREATE TABLE. */
  readonly tableOptions: Statement.Fragment
  /** An auto-increment primary key column's type. */
  readonly serialKey: Statement.Fragment
  /** Serializes concurrent migration runs, from inside the run's transaction. */
  readonly lockMigrations: (t: Tables, service: Service) => Effect.Effect<void, unknown>
  /** Ends {@link lockMigrations}'s lock, whatever happened (before the connection goes back to the pool). */
  readonly unlockMigrations: (t: Tables, service: Service) => Effect.Effect<void>
  /** Creates the configured schema if missing (PostgreSQL only: the others fail). */
  readonly createSchema: (schema: string) => Effect.Effect<void, unknown>
  /** Creates the Migrator's table ahead of its probe where a failed probe would abort the run's transaction. */
  readonly createMigrationsTable: (table: string) => Effect.Effect<void, unknown>
  /** The event store's tables (events, streams, unique values, commands) and, on PostgreSQL, its functions. */
  readonly createEventTables: (t: Tables) => Effect.Effect<void, unknown>
  /** The archive of events moved out of the log (see `EventStore` `archiveStream`): the events' columns, keyed by stream and version. */
  readonly createArchiveTable: (t: Tables) => Effect.Effect<void, unknown>
  /** The tenant of a tenant-scoped stream as a column computed from its id, indexed (see `migrations`). */
  readonly addTenantColumn: (t: Tables) => Effect.Effect<void, unknown>
}

/**
 * The dialect of `sql`, chosen once: a service builds it when it is built. A client of another database
 * fails with a permanent `EventStoreError` (each service maps it to its own error).
 */
export const of = (sql: SqlClient.SqlClient): Effect.Effect<SqlDialect, EventStoreError> =>
  sql.onDialectOrElse({
    pg: () => Effect.succeed(PgDialect.make(sql)),
    sqlite: () => Effect.succeed(SqliteDialect.make(sql)),
    mysql: () => Effect.succeed(MysqlDialect.make(sql)),
    orElse: () =>
      Effect.fail(
        new EventStoreError({
          operation: "configure",
          cause: new Error("the SQL services support PostgreSQL, SQLite and MySQL/MariaDB"),
          transient: false
        })
      )
  })

/**
 * An event row as the dialect's `columns` select it, read as an array of its values: the drivers build an
 * array cheaper than an object with a property per column (about 0.1-0.25 ms less per 1,000 rows with `pg`).
 * The recorded time is in epoch milliseconds (PostgreSQL sends a number: cheaper to read than a timestamp);
 * the transaction id is PostgreSQL's only (elsewhere the position is the transaction).
 */
export type EventValues = readonly [
  position: string | number,
  streamId: string,
  category: string,
  version: number,
  eventId: string,
  type: string,
  schemaVersion: number,
  data: unknown,
  metadata: unknown,
  recordedAt: number,
  transactionId?: string
]

/** Where a column is in {@link EventValues}. */
export const eventColumn = { version: 3 } as const

/** The dialect-specific part of the SQL event store. */
export interface EventsDialect {
  /** The select list of an {@link EventValues} row, in its order. */
  readonly columns: Statement.Fragment
  /** A stored JSON column as its value (PostgreSQL's driver parsed it already; elsewhere it is text). */
  readonly json: (column: unknown) => unknown
  /** Appends, in the caller's transaction if there is one. */
  readonly append: (
    append: PreparedAppend
  ) => Effect.Effect<
    AppendResult,
    | ConcurrencyConflict
    | InvalidAppend
    | UniqueConstraintViolation
    | DuplicateCommand
    | StreamDeleted
    | EventStoreError
    | SqlError
  >
  /** Up to `limit` rows after `after` in the store's no-skip global order, with the filters' conditions. */
  readonly readAllPage: (
    after: Event.Checkpoint,
    filters: ReadonlyArray<Statement.Fragment>,
    limit: number
  ) => Statement.Statement<object>
  /** The checkpoint of the last event `readAll` would return now, if any. */
  readonly head: Effect.Effect<Option.Option<Event.Checkpoint>, SqlError>
  /** The record of a command handled within `ttlMillis` of now, if any. */
  readonly findCommand: (commandId: string, ttlMillis: number) => Effect.Effect<Option.Option<CommandRow>, SqlError>
  /** The committed events `readAll` cannot return yet (see `EventStore.HeldBack`): none but on PostgreSQL. */
  readonly heldBack: (filters: ReadonlyArray<Statement.Fragment>) => Effect.Effect<Option.Option<HeldBack>, SqlError>
}
