/**
 * The SQL snapshot store (PostgreSQL, SQLite), in the same database and under the same table prefix or
 * schema as the event store. Saving a snapshot and trimming the stream's older ones to `keep` happen in
 * one transaction.
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
      load: (streamId) =>
        sql<{
          readonly version: number
          readonly state_version: number
          readonly state: string
          readonly taken_at: string | number
        }>`
          select version, state_version, state, taken_at from ${sql(t.snapshots)}
          where stream_id = ${streamId} order by version desc limit 1`.pipe(
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
                  catch: (cause) => new SnapshotStoreError({ operation: "load", cause })
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
      stats: sql<{ readonly count: number | string; readonly bytes: number | string | null }>`
        select count(*) as count, sum(${dialect.byteLength("state")}) as bytes from ${sql(t.snapshots)}`.pipe(
        Effect.mapError(failWith("stats")),
        Effect.map(([row]) => ({ count: Number(row!.count), bytes: Number(row!.bytes ?? 0) }))
      )
    })
  }).pipe(
    Effect.catchTag("EventStoreError", (error) =>
      Effect.fail(
        new SnapshotStoreError({ operation: error.operation, cause: error.cause, transient: error.transient })
      )
    )
  )

/** The SQL snapshot store as a Layer; needs a `SqlClient`. */
export const layer = (options: Options = {}): Layer.Layer<SnapshotStore, SnapshotStoreError, SqlClient.SqlClient> =>
  Layer.effect(SnapshotStore, make(options))
