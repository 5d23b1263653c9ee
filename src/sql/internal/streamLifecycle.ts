/**
 * The SQL event store's stream lifecycle (see `EventStore`'s "Stream lifecycle"): soft delete and its
 * undo, hard delete, truncation, archiving and retention, dialect-free. Each runs in one transaction holding
 * the stream's row lock, which appends take too: an append concurrent with a deletion either commits before
 * it (and is deleted with the stream) or sees the tombstone after it. A tombstone is the streams row's
 * `deleted` column (see {@link Ddl.deletedSoft}); the row and its version stay. Archiving moves rows to the
 * archive table in its transaction; retention finds the streams to cut by one query per page of streams,
 * then truncates them one transaction each.
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as Statement from "@effect/sql/Statement"
import { SqlError } from "@effect/sql/SqlError"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Event from "../../Event.js"
import {
  ConcurrencyConflict,
  type DeleteStreamOptions,
  type EventStore,
  type EventStoreError,
  type RetentionCut,
  StreamDeleted,
  StreamNotFound
} from "../../EventStore.js"
import type { Tables } from "../migrations.js"
import { withTransaction } from "../transaction.js"
import * as Ddl from "./ddl.js"
import type * as Dialect from "./dialect.js"

/** What the operations are built from. */
export interface Options {
  readonly sql: SqlClient.SqlClient
  readonly dialect: Dialect.SqlDialect
  readonly tables: Tables
  readonly failWith: (operation: string) => (cause: SqlError) => EventStoreError
}

type Lifecycle = Pick<
  EventStore["Type"],
  "deleteStream" | "undeleteStream" | "hardDeleteStream" | "truncateStream" | "archiveStream" | "applyRetention"
>

/** Streams a retention query returns per page. */
const retentionPage = 500

/** The lifecycle operations of the store. */
export const make = ({ dialect, failWith, sql, tables: t }: Options): Lifecycle => {
  /** The stream's row, locked to the transaction's end; `StreamNotFound` when it never had events. */
  const locked = (id: Event.StreamId) =>
    Effect.flatMap(
      sql<{ readonly version: number; readonly deleted: number }>`
        select version, deleted from ${sql(t.streams)} where stream_id = ${id}${dialect.forUpdate}`,
      ([row]) =>
        row === undefined || row.version === 0 ? Effect.fail(new StreamNotFound({ streamId: id })) : Effect.succeed(row)
    )

  const checkExpected = (id: Event.StreamId, version: number, options: DeleteStreamOptions | undefined) => {
    const expected = options?.expectedVersion ?? Event.Any
    return Event.satisfies(expected, version)
      ? Effect.void
      : Effect.fail(new ConcurrencyConflict({ streamId: id, expected, actual: version }))
  }

  /** Runs `f` on the validated id in one transaction; SQL failures become the operation's `EventStoreError`. */
  const run =
    (operation: string) =>
    <A, E>(streamId: string, f: (id: Event.StreamId) => Effect.Effect<A, E | SqlError>) =>
      Effect.flatMap(Event.streamId(streamId), (id) =>
        f(id).pipe(
          withTransaction(sql),
          Effect.catchIf(
            (error): error is SqlError => error instanceof SqlError,
            (cause) => Effect.fail(failWith(operation)(cause))
          )
        )
      )

  const setDeleted = (id: Event.StreamId, deleted: number) =>
    sql`update ${sql(t.streams)} set deleted = ${deleted} where stream_id = ${id}`

  const hardDeleted = (id: Event.StreamId) => new StreamDeleted({ streamId: id, hard: true })

  /**
   * Deletes the stream's unique values and command records. Their tables have no index on the stream: the
   * rows are found by a plain read (which locks nothing), then deleted by key, so that MySQL does not lock
   * every row it scans (which would stall every claim and every append with a command id meanwhile). The
   * stream's row lock keeps the stream from claiming a value or recording a command in between.
   */
  const releaseAll = (id: Event.StreamId) =>
    Effect.gen(function* () {
      const values = yield* sql<{ readonly constraint_name: string; readonly value: string }>`
        select constraint_name, value from ${sql(t.uniqueValues)} where stream_id = ${id}`
      for (const u of values) {
        yield* sql`delete from ${sql(t.uniqueValues)}
          where constraint_name = ${u.constraint_name} and value = ${u.value} and stream_id = ${id}`
      }
      const commands = yield* sql<{ readonly command_id: string }>`
        select command_id from ${sql(t.commands)} where stream_id = ${id}`
      for (let i = 0; i < commands.length; i += 500) {
        const ids = commands.slice(i, i + 500).map((c) => c.command_id)
        yield* sql`delete from ${sql(t.commands)} where command_id in ${sql.in(ids)} and stream_id = ${id}`
      }
    })

  /** The stream's row, locked, if it is live; else `StreamDeleted`. */
  const live = (id: Event.StreamId) =>
    Effect.flatMap(locked(id), (row) =>
      row.deleted === 0
        ? Effect.succeed(row)
        : Effect.fail(new StreamDeleted({ streamId: id, hard: row.deleted === Ddl.deletedHard }))
    )

  /** `before` within 1 and the version after the last: past the last version is every event; NaN is none. */
  const boundOf = (before: number, version: number) =>
    Number.isNaN(before) ? 1 : Math.max(1, Math.min(Math.floor(before), version + 1))

  const stored = sql.csv(dialect.eventColumns.map((column) => sql`${sql(column)}`))

  /** Removes the live stream's events below `before`, in the log and the archive; how many. */
  const truncate = (id: Event.StreamId, before: number) =>
    Effect.gen(function* () {
      const row = yield* live(id)
      const bound = boundOf(before, row.version)
      const archived = yield* dialect.matched(
        sql`delete from ${sql(t.archivedEvents)} where stream_id = ${id} and version < ${bound}`
      )
      return (
        archived +
        (yield* dialect.matched(sql`delete from ${sql(t.events)} where stream_id = ${id} and version < ${bound}`))
      )
    })

  /** One page of the streams a retention cut removes events of, after `after`: each with its last event to remove. */
  const toCut = (cut: RetentionCut, conditions: ReadonlyArray<Statement.Fragment>, after: string) =>
    sql<{ readonly stream_id: string; readonly last: number | string }>`
      select e.stream_id as stream_id, max(e.version) as last
      from ${sql(t.events)} e join ${sql(t.streams)} s on s.stream_id = e.stream_id
      where e.category = ${cut.category} and s.deleted = 0 and e.stream_id > ${after} and (${sql.or(conditions)})
      group by e.stream_id order by e.stream_id limit ${retentionPage}`

  return {
    deleteStream: (streamId, options) =>
      run("deleteStream")(streamId, (id) =>
        Effect.gen(function* () {
          const row = yield* locked(id)
          if (row.deleted === Ddl.deletedHard) return yield* hardDeleted(id)
          yield* checkExpected(id, row.version, options)
          if (row.deleted !== Ddl.deletedSoft) yield* setDeleted(id, Ddl.deletedSoft)
        })
      ),
    undeleteStream: (streamId) =>
      run("undeleteStream")(streamId, (id) =>
        Effect.gen(function* () {
          const row = yield* locked(id)
          if (row.deleted === Ddl.deletedHard) return yield* hardDeleted(id)
          if (row.deleted !== 0) yield* setDeleted(id, 0)
        })
      ),
    hardDeleteStream: (streamId, options) =>
      run("hardDeleteStream")(streamId, (id) =>
        Effect.gen(function* () {
          const row = yield* locked(id)
          if (row.deleted === Ddl.deletedHard) return
          yield* checkExpected(id, row.version, options)
          yield* sql`delete from ${sql(t.events)} where stream_id = ${id}`
          yield* sql`delete from ${sql(t.archivedEvents)} where stream_id = ${id}`
          yield* releaseAll(id)
          yield* setDeleted(id, Ddl.deletedHard)
        })
      ),
    truncateStream: (streamId, before) => run("truncateStream")(streamId, (id) => truncate(id, before)),
    archiveStream: (streamId, options) =>
      run("archiveStream")(streamId, (id) =>
        Effect.gen(function* () {
          const row = yield* live(id)
          const bound = boundOf(options?.before ?? row.version + 1, row.version)
          const now = DateTime.toEpochMillis(yield* DateTime.now)
          yield* sql`insert into ${sql(t.archivedEvents)} (${stored}, archived_at)
            select ${stored}, ${now} from ${sql(t.events)} where stream_id = ${id} and version < ${bound}`
          return yield* dialect.matched(
            sql`delete from ${sql(t.events)} where stream_id = ${id} and version < ${bound}`
          )
        })
      ),
    applyRetention: (cut) =>
      Effect.gen(function* () {
        const conditions = [
          cut.maxCount === undefined
            ? undefined
            : sql`e.version <= s.version - ${Math.max(1, Math.floor(cut.maxCount))}`,
          cut.recordedBefore === undefined
            ? undefined
            : dialect.recordedBefore("e.recorded_at", DateTime.toEpochMillis(cut.recordedBefore))
        ].filter((condition) => condition !== undefined)
        // a category holding NUL names no stored stream (and PostgreSQL refuses to compare it)
        if (conditions.length === 0 || cut.category.includes("\u0000")) return { streams: 0, events: 0 }
        let streams = 0
        let events = 0
        let after = ""
        for (;;) {
          const page = yield* Effect.mapError(toCut(cut, conditions, after), failWith("applyRetention"))
          for (const row of page) {
            // a stream deleted meanwhile is left alone
            const removed = yield* run("applyRetention")(row.stream_id, (id) =>
              truncate(id, Number(row.last) + 1)
            ).pipe(
              Effect.catchTags({ StreamDeleted: () => Effect.succeed(0), StreamNotFound: () => Effect.succeed(0) }),
              Effect.catchTag("InvalidStreamId", Effect.die)
            )
            if (removed > 0) {
              streams++
              events += removed
            }
          }
          if (page.length < retentionPage) return { streams, events }
          after = page[page.length - 1]!.stream_id
        }
      })
  }
}
