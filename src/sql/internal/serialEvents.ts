/**
 * The SQL event store's part where positions are commit order (SQLite, MySQL/MariaDB): appends are one
 * serial transaction (see `serialAppend`), global reads go by position, and nothing is ever held back.
 *
 * @internal
 */
import type * as Statement from "@effect/sql/Statement"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { CommandRow } from "../commandRecords.js"
import type { EventsDialect } from "./dialect.js"
import * as SerialAppend from "./serialAppend.js"

/** Builds the part (its appends take the serial append's options). */
export const make = (options: SerialAppend.SerialAppendOptions): EventsDialect => {
  const { sql, tables: t } = options
  const columns = sql`position, stream_id, category, version, event_id, type, schema_version, data, metadata, recorded_at`
  const where = (filters: ReadonlyArray<Statement.Fragment>) =>
    filters.length > 0 ? sql`and ${sql.and(filters)}` : sql``
  return {
    columns,
    // stored as the JSON text
    json: (column) => JSON.parse(column as string),
    append: SerialAppend.make(options),
    readAllPage: (after, filters, limit) =>
      sql`select ${columns} from ${sql(t.events)}
        where position > ${Number(after.position)} ${where(filters)}
        order by position limit ${limit}`,
    // the position is the transaction: positions are commit order
    head: Effect.map(
      sql<{ readonly position: string | number | null }>`select max(position) as position from ${sql(t.events)}`,
      ([row]) =>
        row?.position == null
          ? Option.none()
          : Option.some({ transaction: BigInt(row.position), position: BigInt(row.position) })
    ),
    findCommand: (commandId, ttlMillis) =>
      Effect.flatMap(DateTime.now, (now) =>
        Effect.map(
          sql<CommandRow>`select stream_id, version, positions from ${sql(t.commands)}
            where command_id = ${commandId} and not (${options.dialect.commandExpired(ttlMillis, DateTime.toEpochMillis(now))})`,
          (rows) => Option.fromNullable(rows[0])
        )
      ),
    heldBack: () => Effect.succeedNone
  }
}
