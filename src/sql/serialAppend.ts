/**
 * Appends where positions are handed out in commit order (SQLite, MySQL/MariaDB), so a reader resuming
 * after a position never misses a later commit: the checkpoint's `transaction` is the position itself.
 * How each backend orders them, and the Gotchas: {@link make}.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Event from "../Event.js"
import {
  type AppendResult,
  ConcurrencyConflict,
  type DuplicateCommand,
  type InvalidAppend,
  UniqueConstraintViolation
} from "../EventStore.js"
import { type PreparedAppend } from "../internal/appendPreparation.js"
import * as BackendLimits from "./backendLimits.js"
import type { Tables } from "./migrations.js"
import * as PgAppend from "./pgAppend.js"
import { mysqlErrno, withTransaction } from "./transaction.js"

export interface SerialAppendOptions {
  readonly sql: SqlClient.SqlClient
  readonly tables: Tables
  readonly dialect: "sqlite" | "mysql"
  readonly commandTtl: number
  /** MySQL: the server's `max_allowed_packet`, which an INSERT of the append's rows must fit (see `backendLimits`). */
  readonly packet: number | undefined
  /** The original result of an append whose events are (partly) stored already, in a stream at `current`. */
  readonly resolveStored: (
    append: PreparedAppend,
    stored: ReadonlyMap<string, number>,
    current: number
  ) => Effect.Effect<AppendResult, InvalidAppend | ConcurrencyConflict | SqlError>
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
  const { dialect, sql, tables: t } = options
  const mysql = dialect === "mysql"
  const forUpdate = mysql ? sql` for update` : sql``

  const versionOf = (streamId: string) =>
    Effect.map(
      sql<{
        readonly version: number
      }>`select version from ${sql(t.streams)} where stream_id = ${streamId}${forUpdate}`,
      (rows) => rows[0]?.version
    )

  /**
   * Locks the stream's row and returns its version. MySQL: the row is made first if missing, so the lock
   * is on a row, never on a gap (gap locks of appends creating different streams deadlock each other).
   */
  const lockStream = (streamId: string) =>
    Effect.gen(function* () {
      if (mysql) {
        yield* sql`insert into ${sql(t.streams)} (stream_id, version) values (${streamId}, 0)
          on duplicate key update version = version`
      }
      return (yield* versionOf(streamId)) ?? 0
    })

  /**
   * The command's record if it was handled within the TTL. On MySQL its row is locked first (created as a
   * placeholder if missing), so concurrent appends of one command queue and only the first writes.
   */
  const handledCommand = (commandId: string, now: number) =>
    Effect.gen(function* () {
      if (mysql) {
        yield* sql`insert into ${sql(t.commands)} (command_id, stream_id, version, positions, recorded_at)
          values (${commandId}, '', 0, '[]', 0) on duplicate key update command_id = command_id`
      }
      const [handled] = yield* sql<PgAppend.CommandRow>`select stream_id, version, positions from ${sql(t.commands)}
        where command_id = ${commandId} and recorded_at > ${now - options.commandTtl}${forUpdate}`
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
        if (mysql) {
          yield* sql`insert into ${sql(t.uniqueValues)} (constraint_name, value, stream_id)
            values (${u.constraint}, ${u.value}, ${append.streamId})
            on duplicate key update constraint_name = constraint_name`
        }
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

  const recordCommand = (commandId: string, result: AppendResult, now: number) => {
    const row = {
      command_id: commandId,
      stream_id: result.streamId,
      version: result.version,
      positions: JSON.stringify(result.positions.map(String)),
      recorded_at: now
    }
    return mysql
      ? sql`insert into ${sql(t.commands)} ${sql.insert(row)} on duplicate key update stream_id = values(stream_id),
          version = values(version), positions = values(positions), recorded_at = values(recorded_at)`
      : sql`insert into ${sql(t.commands)} ${sql.insert(row)}
          on conflict (command_id) do update set stream_id = excluded.stream_id, version = excluded.version,
            positions = excluded.positions, recorded_at = excluded.recorded_at`
  }

  /** The first of `count` positions, taken last: its lock orders commits (see the module doc). */
  const takePositions = (count: number) =>
    Effect.gen(function* () {
      yield* sql`update ${sql(t.sequence)} set last = last + ${count} where id = 1`
      const [row] = yield* sql<{ readonly last: number | string }>`select last from ${sql(t.sequence)} where id = 1`
      if (row === undefined)
        return yield* Effect.die(new Error(`${t.sequence} has no row: the store's tables are damaged`))
      return Number(row.last) - count + 1
    })

  const insertEvents = (append: PreparedAppend, current: number, now: number) =>
    Effect.gen(function* () {
      const first = mysql ? yield* takePositions(append.events.length) : undefined
      const rows = append.events.map((e, i) => ({
        ...(first === undefined ? {} : { position: first + i }),
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
      const positions =
        first === undefined
          ? (yield* sql<{
              readonly position: number
            }>`insert into ${sql(t.events)} ${sql.insert(rows)} returning position`).map((r) => BigInt(r.position))
          : yield* Effect.as(
              // in runs that fit a packet each (one, unless the append is large)
              Effect.forEach(
                BackendLimits.mysqlChunks(append.events, rows, options.packet ?? Number.MAX_SAFE_INTEGER),
                (run) => sql`insert into ${sql(t.events)} ${sql.insert(run)}`,
                { discard: true }
              ),
              rows.map((_, i) => BigInt(first + i))
            )
      const version = current + append.events.length
      yield* mysql
        ? sql`update ${sql(t.streams)} set version = ${version} where stream_id = ${append.streamId}`
        : sql`insert into ${sql(t.streams)} (stream_id, version) values (${append.streamId}, ${version})
            on conflict (stream_id) do update set version = excluded.version`
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
      const now = DateTime.toEpochMillis(yield* DateTime.now)
      // a handled command first: a replay of its append is a duplicate command, not a success
      if (append.commandId !== undefined) {
        const handled = yield* handledCommand(append.commandId, now)
        if (handled !== undefined)
          return yield* Effect.fail<DuplicateCommand>(PgAppend.toDuplicate(append.commandId, handled))
      }
      if (current > 0 && append.events.length > 0) {
        const stored = yield* storedIds(append, sql``)
        if (stored.length > 0) {
          return yield* options.resolveStored(append, new Map(stored.map((r) => [r.event_id, r.version])), current)
        }
      }
      if (!Event.satisfies(append.expectedVersion, current)) {
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
              // MySQL, in a caller's transaction whose snapshot predates a commit of the same events: the
              // check above read the snapshot; the insert saw them. Read them as committed, and resolve.
              Effect.catchIf(isDuplicateKey, (error) =>
                Effect.flatMap(storedIds(append, sql` lock in share mode`), (rows) =>
                  rows.length === 0
                    ? Effect.fail(error)
                    : options.resolveStored(append, new Map(rows.map((r) => [r.event_id, r.version])), current)
                )
              )
            )
      if (append.commandId !== undefined) yield* recordCommand(append.commandId, result, now)
      return result
    }).pipe(withTransaction(sql))

  return (append: PreparedAppend) => (mysql ? retryDeadlocks(appendOnce(append)) : appendOnce(append))
}

/**
 * InnoDB breaks lock cycles (two appends creating one stream, say) by rolling one transaction back: an
 * append that ran its own transaction is tried again; one inside the caller's transaction fails with it.
 */
const retryDeadlocks = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (outer) =>
    Option.isSome(outer)
      ? effect
      : Effect.retry(effect, {
          times: 10,
          schedule: Schedule.exponential("2 millis").pipe(Schedule.jittered),
          while: isDeadlock
        })
  )

const isDuplicateKey = (error: unknown): error is SqlError => mysqlErrno(error) === 1062

const isDeadlock = (error: unknown): boolean => mysqlErrno(error) === 1213 || mysqlErrno(error) === 1205
