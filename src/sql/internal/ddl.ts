/**
 * DDL the backends' dialect records share (see `dialect.ts`): names of indexes and constraints, the unique
 * values table, and the position indexes of the backends whose positions are commit order.
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import type { Tables } from "../migrations.js"
import type { Ddl } from "./dialect.js"

/** Index and constraint names live in the table's schema: the unqualified table name's prefix. */
export const prefixOf = (qualified: string): string => qualified.slice(qualified.lastIndexOf(".") + 1, -"events".length)

/** The name of an index or constraint of the store's tables. */
export const indexName = (sql: SqlClient.SqlClient, t: Tables, name: string) => sql(`${prefixOf(t.events)}${name}`)

/**
 * The `deleted` column of the streams table: 0 for a live stream, {@link deletedSoft} for a soft-deleted
 * one, {@link deletedHard} for a hard-deleted one (a tombstone: its events are gone, its id is never reused).
 */
export const deletedSoft = 1
export const deletedHard = 2

/** Unique values claimed by streams (see `EventStore.UniqueValue`). */
export const createUniqueValuesTable = (sql: SqlClient.SqlClient, ddl: Ddl, t: Tables) =>
  sql`create table ${sql(t.uniqueValues)} (
    constraint_name ${ddl.key()} not null,
    value ${ddl.key(512)} not null,
    stream_id ${ddl.key()} not null,
    primary key (constraint_name, value)
  )${ddl.tableOptions}`

/** SQLite and MySQL: positions are commit order, so category and type reads go by position. */
export const positionIndexes = (sql: SqlClient.SqlClient, t: Tables) =>
  Effect.all(
    [
      sql`create index ${indexName(sql, t, "events_category")} on ${sql(t.events)} (category, position)`,
      sql`create index ${indexName(sql, t, "events_type")} on ${sql(t.events)} (type, position)`,
      sql`create index ${indexName(sql, t, "events_event_id")} on ${sql(t.events)} (event_id)`
    ],
    { discard: true }
  )

/** `createSchema` of the backends without schemas (SQLite, MySQL, where a database is a schema). */
export const schemaUnsupported = () =>
  Effect.fail(new Error("the schema option is PostgreSQL-only; use tablePrefix to isolate stores on this database"))

/** The columns an append writes to the events table, in this order where a statement lists them. */
export const eventInsertColumns = [
  "stream_id",
  "category",
  "stream_hash",
  "version",
  "event_id",
  "type",
  "schema_version",
  "data",
  "metadata",
  "recorded_at"
] as const

/** The stored columns of the events table on SQLite and MySQL (PostgreSQL adds `transaction_id`). */
export const eventColumns: ReadonlyArray<string> = ["position", ...eventInsertColumns]
