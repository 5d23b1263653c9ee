/**
 * The SQL snapshot store (PostgreSQL, SQLite, MySQL/MariaDB), in the same database and under the same
 * table prefix or schema as the event store. Saving a snapshot and trimming the stream's older ones to
 * `keep` happen in one transaction; `prune` deletes in batches of its own.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { SnapshotStore, SnapshotStoreError } from "../Snapshot.js"
import * as Classify from "./classify.js"
import * as Dialect from "./internal/dialect.js"
import { migrate, type TableOptions, tables } from "./migrations.js"
import { isTransactionEnded, withTransaction } from "./transaction.js"

/** Options of {@link make}. */
export interface Options extends TableOptions {
  /** Snapshots kept per stream; default 3. */
  readonly keep?: number
  /** Create or upgrade the tables when the store starts; default true. */
  readonly migrate?: boolean
}

/** Builds the store on the `SqlClient` in context. */
export const make = (
  options: Options = {}
): Effect.Effect<SnapshotStore["Type"], SnapshotStoreError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const t = yield* tables(options)
    const dialect = yield* Dialect.of(sql)
    if (options.migrate !== false) yield* migrate(t, "snapshots")
    const keep = Math.max(1, options.keep ?? 3)
    const failWith = (operation: string) => (cause: SqlError) =>
      new SnapshotStoreError({ operation, cause, transient: Classify.isTransient(cause) })

    return SnapshotStore.of({
      load: (streamId, loadOptions) =>
        sql<{
          readonly version: number
          readonly state_version: number
          readonly state: string
          readonly taken_at: string | number
        }>`
          select version, state_version, state, taken_at from ${sql(t.snapshots)}
          where stream_id = ${streamId}${loadOptions?.before === undefined ? sql`` : sql` and version < ${loadOptions.before}`}
          order by version desc limit 1`.pipe(
          Effect.mapError(failWith("load")),
          Effect.flatMap((rows) =>
            Option.match(Option.fromNullable(rows[0]), {
              onNone: () => Effect.succeedNone,
              onSome: (row) =>
                Effect.try({
                  try: () =>
                    Option.some({
                      streamId,
                      version: row.version,
                      stateVersion: row.state_version,
                      state: JSON.parse(row.state) as unknown,
                      takenAt: DateTime.unsafeMake(Number(row.taken_at))
                    }),
                  // not JSON: this snapshot is unreadable for good, older ones may not be
                  catch: (cause) =>
                    new SnapshotStoreError({ operation: "load", cause, transient: false, version: row.version })
                })
            })
          )
        ),
      save: (record) =>
        Effect.gen(function* () {
          const state = JSON.stringify(record.state)
          const row = {
            stream_id: record.streamId,
            version: record.version,
            state_version: record.stateVersion,
            state,
            taken_at: DateTime.toEpochMillis(record.takenAt)
          }
          // one upsert: on MySQL a delete of a missing row locks a gap that the insert then deadlocks on
          yield* sql`insert into ${sql(t.snapshots)} ${sql.insert(row)} ${dialect.onConflictUpdate(
            ["stream_id", "version"],
            ["state_version", "state", "taken_at"]
          )}`
          // the oldest version kept, then what is older (MySQL cannot delete from a table it reads)
          const [oldestKept] = yield* sql<{ readonly version: number }>`select version from ${sql(t.snapshots)}
            where stream_id = ${record.streamId} order by version desc limit 1 offset ${keep - 1}`
          if (oldestKept !== undefined) {
            yield* sql`delete from ${sql(t.snapshots)}
              where stream_id = ${record.streamId} and version < ${oldestKept.version}`
          }
        }).pipe(
          withTransaction(sql),
          // saving a snapshot is best effort and its failures are only logged: this one must not be
          Effect.catchIf(isTransactionEnded, Effect.die),
          Effect.mapError(failWith("save"))
        ),
      stats: sql<{
        readonly category: string
        readonly count: number | string
        readonly streams: number | string
        readonly bytes: number | string | null
      }>`
        select ${dialect.categoryOf("stream_id")} as category, count(*) as count,
          count(distinct stream_id) as streams, sum(${dialect.byteLength("state")}) as bytes
        from ${sql(t.snapshots)} group by 1 order by 1`.pipe(
        Effect.mapError(failWith("stats")),
        Effect.map((rows) => {
          const categories = rows.map((row) => ({
            category: row.category,
            count: Number(row.count),
            streams: Number(row.streams),
            bytes: Number(row.bytes ?? 0)
          }))
          const total = (field: "count" | "streams" | "bytes") => categories.reduce((n, c) => n + c[field], 0)
          return { count: total("count"), streams: total("streams"), bytes: total("bytes"), categories }
        })
      ),
      prune: (prune) =>
        Effect.gen(function* () {
          const conditions = [
            ...(prune.keep === undefined ? [] : [sql`newness > ${Math.max(1, prune.keep)}`]),
            ...(prune.stateVersionBelow === undefined ? [] : [sql`state_version < ${prune.stateVersionBelow}`])
          ]
          if (conditions.length === 0) return 0
          const inCategory =
            prune.category === undefined ? sql`` : sql`where ${dialect.categoryOf("stream_id")} = ${prune.category}`
          let deleted = 0
          for (;;) {
            // a batch of the selected snapshots, by key; deleted by key (MySQL cannot delete from a table it reads)
            const batch = yield* sql<{ readonly stream_id: string; readonly version: number }>`
              select stream_id, version from (
                select stream_id, version, state_version,
                  row_number() over (partition by stream_id order by version desc) as newness
                from ${sql(t.snapshots)} ${inCategory}
              ) as ranked
              where ${sql.or(conditions)} limit ${pruneBatch}`
            if (batch.length === 0) return deleted
            yield* sql`delete from ${sql(t.snapshots)} where ${sql.or(
              batch.map((row) => sql`(stream_id = ${row.stream_id} and version = ${row.version})`)
            )}`
            deleted += batch.length
            if (batch.length < pruneBatch) return deleted
          }
        }).pipe(Effect.mapError(failWith("prune"))),
      deleteStream: (streamId) =>
        dialect
          .matched(sql`delete from ${sql(t.snapshots)} where stream_id = ${streamId}`)
          .pipe(Effect.mapError(failWith("deleteStream")))
    })
  }).pipe(
    Effect.catchTag("EventStoreError", (error) =>
      Effect.fail(
        new SnapshotStoreError({ operation: error.operation, cause: error.cause, transient: error.transient })
      )
    )
  )

/** Snapshots deleted per statement by `prune`. */
const pruneBatch = 500

/** The SQL snapshot store as a Layer; needs a `SqlClient`. */
export const layer = (options: Options = {}): Layer.Layer<SnapshotStore, SnapshotStoreError, SqlClient.SqlClient> =>
  Layer.effect(SnapshotStore, make(options))
