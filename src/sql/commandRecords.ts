/**
 * Expiry of handled-command records (see `EventStore.AppendOptions` `commandId`): a record older than
 * the store's command TTL is ignored by appends and `findCommand`, and deleted by {@link pruneExpired},
 * which the store runs in its scope (see `SqlEventStore.Options` `commandPruning`).
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { DuplicateCommand } from "../EventStore.js"
import type { SqlDialect } from "./internal/dialect.js"
import type { Tables } from "./migrations.js"

/** How the store prunes expired command records. */
export interface PruningOptions {
  /** Time between runs; default 1 minute. */
  readonly interval?: Duration.DurationInput
  /** Records deleted per statement; default 1,000. */
  readonly batchSize?: number
  /** Statements per run, at most; default 10 (so a run deletes at most 10,000 records by default). */
  readonly maxBatches?: number
}

/**
 * Deletes up to `batchSize` expired records, oldest first, and returns how many it found. Two
 * statements (the ids, then the rows still expired), so that every dialect bounds the delete the same
 * way; a record recorded again in between is kept.
 */
export const pruneExpired = (options: {
  readonly sql: SqlClient.SqlClient
  readonly dialect: SqlDialect
  readonly tables: Tables
  readonly commandTtlMillis: number
  readonly batchSize: number
}): Effect.Effect<number, SqlError> =>
  Effect.gen(function* () {
    const { sql, tables: t } = options
    const expired = options.dialect.commandExpired(
      options.commandTtlMillis,
      DateTime.toEpochMillis(yield* DateTime.now)
    )
    const rows = yield* sql<{ readonly command_id: string }>`select command_id from ${sql(t.commands)}
      where ${expired} order by recorded_at limit ${options.batchSize}`
    if (rows.length === 0) return 0
    yield* sql`delete from ${sql(t.commands)}
      where command_id in ${sql.in(rows.map((r) => r.command_id))} and ${expired}`
    return rows.length
  })

/**
 * Runs {@link pruneExpired} every `interval`, each run until a statement finds fewer than a batch or
 * `maxBatches` ran. A failed run (the database unreachable) is logged and the next one tries again.
 */
export const pruneForever = (
  options: PruningOptions & {
    readonly sql: SqlClient.SqlClient
    readonly dialect: SqlDialect
    readonly tables: Tables
    readonly commandTtlMillis: number
  }
): Effect.Effect<never> => {
  const batchSize = Math.max(1, options.batchSize ?? 1000)
  const maxBatches = Math.max(1, options.maxBatches ?? 10)
  const run = Effect.gen(function* () {
    for (let batch = 0; batch < maxBatches; batch++) {
      const found = yield* pruneExpired({ ...options, batchSize })
      if (found < batchSize) return
    }
  }).pipe(
    Effect.catchAll((error) => Effect.logWarning("pruning expired command records failed; trying again later", error))
  )
  return Effect.sleep(options.interval ?? Duration.minutes(1)).pipe(Effect.zipRight(run), Effect.forever)
}

/** A stored command record: its positions as a text array (PostgreSQL) or a JSON array of strings. */
export interface CommandRow {
  readonly stream_id: string
  readonly version: number
  readonly positions: ReadonlyArray<string> | string
}

/** A stored command record as the {@link DuplicateCommand} refusal of a later append. */
export const toDuplicate = (commandId: string, row: CommandRow): DuplicateCommand =>
  new DuplicateCommand({
    commandId,
    streamId: row.stream_id,
    version: row.version,
    positions: (typeof row.positions === "string"
      ? (JSON.parse(row.positions) as ReadonlyArray<string>)
      : row.positions
    ).map(BigInt)
  })
