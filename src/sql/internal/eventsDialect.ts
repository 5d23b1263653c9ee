/**
 * What `SqlEventStore` asks of a dialect: the statements that differ between PostgreSQL (a read horizon,
 * one append function) and the backends whose positions are commit order (SQLite, MySQL/MariaDB: a
 * serial append). The store chooses the record once, when it is built, and holds no dialect conditional.
 *
 * @internal
 */
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Event from "../../Event.js"
import type {
  AppendResult,
  ConcurrencyConflict,
  DuplicateCommand,
  EventStoreError,
  HeldBack,
  InvalidAppend,
  UniqueConstraintViolation
} from "../../EventStore.js"
import type { PreparedAppend } from "../../internal/appendPreparation.js"
import type { CommandRow } from "../pgAppend.js"

/** An event row as the dialect's `columns` select it. */
export interface EventRow {
  readonly position: string | number
  /** PostgreSQL only: the position is the transaction elsewhere. */
  readonly transaction_id?: string
  readonly stream_id: string
  readonly category: string
  readonly version: number
  readonly event_id: string
  readonly type: string
  readonly schema_version: number
  readonly data: unknown
  readonly metadata: unknown
  /** Epoch milliseconds (PostgreSQL sends a number: cheaper to read than a timestamp). */
  readonly recorded_at: number
}

/** The dialect-specific part of the SQL event store. */
export interface EventsDialect {
  /** The select list of an {@link EventRow}. */
  readonly columns: Statement.Fragment
  /** A stored JSON column as its value (PostgreSQL's driver parsed it already; elsewhere it is text). */
  readonly json: (column: unknown) => unknown
  /** Appends, in the caller's transaction if there is one. */
  readonly append: (
    append: PreparedAppend
  ) => Effect.Effect<
    AppendResult,
    ConcurrencyConflict | InvalidAppend | UniqueConstraintViolation | DuplicateCommand | EventStoreError | SqlError
  >
  /** Up to `limit` rows after `after` in the store's no-skip global order, with the filters' conditions. */
  readonly readAllPage: (
    after: Event.Checkpoint,
    filters: ReadonlyArray<Statement.Fragment>,
    limit: number
  ) => Effect.Effect<ReadonlyArray<EventRow>, SqlError>
  /** The checkpoint of the last event `readAll` would return now, if any. */
  readonly head: Effect.Effect<Option.Option<Event.Checkpoint>, SqlError>
  /** The record of a command handled within `ttlMillis` of now, if any. */
  readonly findCommand: (commandId: string, ttlMillis: number) => Effect.Effect<Option.Option<CommandRow>, SqlError>
  /** The committed events `readAll` cannot return yet (see `EventStore.HeldBack`): none but on PostgreSQL. */
  readonly heldBack: (filters: ReadonlyArray<Statement.Fragment>) => Effect.Effect<Option.Option<HeldBack>, SqlError>
}
