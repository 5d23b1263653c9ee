/**
 * Appends where positions are handed out in commit order (SQLite, MySQL/MariaDB), so a reader resuming
 * after a position never misses a later commit: the checkpoint's `transaction` is the position itself.
 * How each backend orders them, and the Gotchas: {@link make}.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Event from "../../Event.js"
import {
  type AppendResult,
  ConcurrencyConflict,
  type DuplicateCommand,
  StreamDeleted,
  UniqueConstraintViolation
} from "../../EventStore.js"
import { type PreparedAppend } from "../../internal/appendPreparation.js"
import { isDuplicateKey } from "../classify.js"
import * as Compiled from "./compiled.js"
import { type CommandRow, toDuplicate } from "../commandRecords.js"
import { deletedHard } from "./ddl.js"
import type { EventsOptions, SqlDialect } from "./dialect.js"

/** An event row as the serial append inserts it, before it has a position. */
export type EventInsert = {
  readonly stream_id: string
  readonly category: string
  readonly stream_hash: number
  readonly version: number
  readonly event_id: string
  readonly type: string
  readonly schema_version: number
  readonly data: string
  readonly metadata: string
  readonly recorded_at: number
}

/** The rows of an append to a stream at version `current`, recorded at `now` (epoch milliseconds). */
export const eventRows = (append: PreparedAppend, current: number, now: number): ReadonlyArray<EventInsert> =>
  append.events.map((e, i) => ({
    stream_id: append.streamId,
    category: append.category,
    stream_hash: append.streamHash,
    version: current + i + 1,
    event_id: e.eventId,
    type: e.type,
    schema_version: e.schemaVersion,
    data: e.dataJson,
    metadata: e.metadataJson,
    recorded_at: now
  }))

/** How a backend runs the steps of the serial append that differ (see {@link make}). */
export interface SerialSteps {
  /**
   * Runs `placeholder` (an INSERT of a row the append is about to lock, a no-op if the row exists) where
   * concurrent appends would otherwise lock a gap (MySQL); SQLite's one writer skips it.
   */
  readonly lockable: (placeholder: () => Effect.Effect<unknown, SqlError>) => Effect.Effect<void, SqlError>
  /** Inserts the append's rows and returns their positions, in commit order. */
  readonly insertEvents: (
    append: PreparedAppend,
    rows: ReadonlyArray<EventInsert>
  ) => Effect.Effect<ReadonlyArray<bigint>, SqlError>
  /** Runs an append again after the backend broke a lock cycle by rolling it back, where it can. */
  readonly retry: <A, E>(append: Effect.Effect<A, E>) => Effect.Effect<A, E>
  /**
   * Whether the append's event ids are looked for only when they could matter: on a version conflict, or
   * when the insert hits one (SQLite: a failed statement changes nothing, and nothing runs beside it).
   * Otherwise they are looked for before the version check, one more statement per append.
   */
  readonly idsCheckedLazily: boolean
}

/** What the serial append is built from. */
export interface SerialAppendOptions extends EventsOptions {
  readonly sql: SqlClient.SqlClient
  readonly dialect: SqlDialect
  readonly steps: SerialSteps
}

/**
 * Builds the append: one transaction (joining the caller's, if any).
 *
 * - **SQLite** has one writer at a time: positions come from the table's autoincrement.
 * - **MySQL/MariaDB (InnoDB)** runs writers concurrently: an append locks its stream's row (created first
 *   if missing, so two appends creating one stream queue instead of deadlocking), does its checks, and
 *   only then takes the positions from a one-row sequence table (`update ... set last = last + n`). That
 *   row's lock is held until the append commits, so positions are assigned in commit order: a later
 *   position cannot commit before an earlier one. Writers overlap in everything but that last step (and
 *   the commit); concurrent appends to different streams do not wait for each other's checks.
 *
 * **Gotchas** (MySQL): the positions' lock is held from the last step to the commit, so appends are
 * serialized for that stretch (the insert, and the commit's flush): the price of a skip-free global order
 * without a transaction horizon. An append inside a transaction of yours holds it until you commit: keep
 * such transactions short, and take streams in a consistent order when one transaction appends to
 * several (two that take them in opposite orders deadlock; InnoDB then ends one, which fails with a typed
 * error and commits nothing). Appends in their own transaction are retried after a deadlock.
 */
export const make = (options: SerialAppendOptions) => {
  const { dialect, sql, steps, tables: t } = options
  const forUpdate = dialect.forUpdate
  // the statements every append runs are compiled once and run on the append's transaction connection
  const run = Compiled.inTransaction(sql)
  const texts = {
    stream: Compiled.text(sql`select version, deleted from ${sql(t.streams)} where stream_id = ${""}${forUpdate}`, 1),
    newStream: Compiled.text(
      sql`insert into ${sql(t.streams)} (stream_id, version) values (${""}, 0) ${dialect.onConflictIgnore(["stream_id"])}`,
      1
    ),
    streamVersion: Compiled.text(
      sql`insert into ${sql(t.streams)} (stream_id, version) values (${""}, ${0})
        ${dialect.onConflictUpdate(["stream_id"], ["version"])}`,
      2
    ),
    newCommand: Compiled.text(
      sql`insert into ${sql(t.commands)} (command_id, stream_id, version, positions, recorded_at)
        values (${""}, '', 0, '[]', 0) ${dialect.onConflictIgnore(["command_id"])}`,
      1
    ),
    // a record within the TTL: recorded at or after the cutoff (epoch milliseconds, as `recordCommand` writes)
    command: Compiled.text(
      sql`select stream_id, version, positions from ${sql(t.commands)}
        where command_id = ${""} and recorded_at >= ${0}${forUpdate}`,
      2
    ),
    recordCommand: Compiled.text(
      sql`insert into ${sql(t.commands)} (command_id, stream_id, version, positions, recorded_at)
        values (${""}, ${""}, ${0}, ${""}, ${0})
        ${dialect.onConflictUpdate(["command_id"], ["stream_id", "version", "positions", "recorded_at"])}`,
      5
    )
  }

  /**
   * Locks the stream's row and returns its version, failing if the stream is deleted. MySQL: the row is
   * made first if missing, so the lock is on a row, never on a gap (gap locks of appends creating
   * different streams deadlock each other).
   */
  const lockStream = (streamId: string) =>
    Effect.gen(function* () {
      yield* steps.lockable(() => run(texts.newStream, [streamId]))
      const [stream] = (yield* run(texts.stream, [streamId])) as ReadonlyArray<{
        readonly version: number
        readonly deleted: number
      }>
      if (stream !== undefined && stream.deleted !== 0) {
        return yield* new StreamDeleted({ streamId, hard: stream.deleted === deletedHard })
      }
      return stream?.version ?? 0
    })

  /**
   * The command's record if it was handled within the TTL. On MySQL its row is locked first (created as a
   * placeholder if missing), so concurrent appends of one command queue and only the first writes.
   */
  const handledCommand = (commandId: string, now: number) =>
    Effect.gen(function* () {
      yield* steps.lockable(() => run(texts.newCommand, [commandId]))
      const [handled] = (yield* run(texts.command, [commandId, now - options.commandTtl])) as ReadonlyArray<CommandRow>
      return handled
    })

  const claimUniqueValues = (append: PreparedAppend) =>
    Effect.gen(function* () {
      for (const u of append.releases) {
        // only a value this stream holds (only it can claim one, and it is locked): no gap locks (MySQL)
        const [held] = yield* sql<{ readonly stream_id: string }>`select stream_id from ${sql(t.uniqueValues)}
          where constraint_name = ${u.constraint} and value = ${u.value} and stream_id = ${append.streamId}`
        if (held !== undefined) {
          yield* sql`delete from ${sql(t.uniqueValues)}
            where constraint_name = ${u.constraint} and value = ${u.value} and stream_id = ${append.streamId}`
        }
      }
      for (const u of append.claims) {
        // MySQL: claim first (a no-op when held), then read the holder under the row's lock (as for streams)
        yield* steps.lockable(
          () => sql`insert into ${sql(t.uniqueValues)} (constraint_name, value, stream_id)
            values (${u.constraint}, ${u.value}, ${append.streamId}) ${dialect.onConflictIgnore(["constraint_name", "value"])}`
        )
        const [holder] = yield* sql<{ readonly stream_id: string }>`select stream_id from ${sql(t.uniqueValues)}
          where constraint_name = ${u.constraint} and value = ${u.value}${forUpdate}`
        if (holder !== undefined && holder.stream_id !== append.streamId) {
          return yield* new UniqueConstraintViolation({ streamId: append.streamId, ...u, owner: holder.stream_id })
        }
        if (holder === undefined) {
          yield* sql`insert into ${sql(t.uniqueValues)} (constraint_name, value, stream_id)
            values (${u.constraint}, ${u.value}, ${append.streamId})`
        }
      }
    })

  const recordCommand = (commandId: string, result: AppendResult, now: number) =>
    run(texts.recordCommand, [
      commandId,
      result.streamId,
      result.version,
      JSON.stringify(result.positions.map(String)),
      now
    ])

  const insertEvents = (append: PreparedAppend, current: number, now: number) =>
    Effect.gen(function* () {
      const positions = yield* steps.insertEvents(append, eventRows(append, current, now))
      const version = current + append.events.length
      yield* run(texts.streamVersion, [append.streamId, version])
      return { streamId: append.streamId, version, positions }
    })

  /** The append's event ids already stored in its stream, with their versions. */
  const storedIds = (append: PreparedAppend, lock: Statement.Fragment) =>
    sql<{ readonly event_id: string; readonly version: number }>`
      select event_id, version from ${sql(t.events)}
      where stream_id = ${append.streamId} and event_id in ${sql.in(append.events.map((e) => e.eventId))}${lock}`

  const appendOnce = (append: PreparedAppend) =>
    Effect.gen(function* () {
      const current = yield* lockStream(append.streamId)
      const now = yield* Clock.currentTimeMillis
      // a handled command first: a replay of its append is a duplicate command, not a success
      if (append.commandId !== undefined) {
        const handled = yield* handledCommand(append.commandId, now)
        if (handled !== undefined) return yield* Effect.fail<DuplicateCommand>(toDuplicate(append.commandId, handled))
      }
      // a retried append whose events are stored already gets its original result, even if its expected
      // version no longer holds
      const satisfied = Event.satisfies(append.expectedVersion, current)
      if (current > 0 && append.events.length > 0 && (!satisfied || !steps.idsCheckedLazily)) {
        const stored = yield* storedIds(append, sql``)
        if (stored.length > 0) {
          return yield* options.resolveStored(append, new Map(stored.map((r) => [r.event_id, r.version])), current)
        }
      }
      if (!satisfied) {
        return yield* new ConcurrencyConflict({
          streamId: append.streamId,
          expected: append.expectedVersion,
          actual: current
        })
      }
      yield* claimUniqueValues(append)
      const result: AppendResult =
        append.events.length === 0
          ? { streamId: append.streamId, version: current, positions: [] }
          : yield* insertEvents(append, current, now).pipe(
              // the append's events are stored already: SQLite, where they were not looked for before
              // (`idsCheckedLazily`); MySQL, in a caller's transaction whose snapshot predates a commit of the
              // same events (the check above read the snapshot; the insert saw them). Read them as committed,
              // and resolve.
              Effect.catchIf(isDuplicateKey, (error) =>
                Effect.flatMap(storedIds(append, dialect.committedNow), (rows) =>
                  rows.length === 0
                    ? Effect.fail(error)
                    : options.resolveStored(append, new Map(rows.map((r) => [r.event_id, r.version])), current)
                )
              )
            )
      if (append.commandId !== undefined) yield* recordCommand(append.commandId, result, now)
      return result
    }).pipe(options.transaction)

  return (append: PreparedAppend) => steps.retry(appendOnce(append))
}
