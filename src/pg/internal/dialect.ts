/**
 * The PostgreSQL dialect record (see `sql/internal/dialect.ts`): appends through the append function,
 * global reads bounded by the read horizon, `RETURNING` and `ON CONFLICT`, row locks, and its DDL.
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import type { BackendLimits } from "../../sql/backendLimits.js"
import { createUniqueValuesTable, eventColumns, indexName } from "../../sql/internal/ddl.js"
import type { Ddl, SqlDialect } from "../../sql/internal/dialect.js"
import * as ConflictReturning from "../../sql/internal/conflictReturning.js"
import * as Events from "./events.js"
import * as Functions from "./functions.js"

/** The most bytes of a `jsonb` value: an append's events travel as one. */
const maxJsonb = 268_435_455

/** Bytes an event adds to the append function's events argument beside its data and metadata (id, type, framing). */
const eventOverhead = 1024

const limits: BackendLimits = {
  backend: "PostgreSQL",
  maxEventsPerAppend: Number.MAX_SAFE_INTEGER,
  maxEventBytes: maxJsonb - eventOverhead,
  maxAppendBytes: maxJsonb,
  eventOverhead,
  packet: undefined,
  why: {
    events: "",
    eventBytes: `a jsonb value holds at most ${maxJsonb} bytes`,
    appendBytes: `an append's events travel as one jsonb argument, which holds at most ${maxJsonb} bytes`
  }
}

/** The record for `sql`, a PostgreSQL client. */
export const make = (sql: SqlClient.SqlClient): SqlDialect => {
  return {
    name: "PostgreSQL",
    limits: Effect.succeed(limits),
    events: (options) => Events.make(sql, options),
    // recorded_at is the server's time (a timestamptz)
    commandExpired: (ttlMillis) => sql`recorded_at < now() - make_interval(secs => ${ttlMillis / 1000})`,
    ...ConflictReturning.statements(sql),
    forUpdate: sql` for update`,
    forUpdateSkipLocked: sql` for update skip locked`,
    committedNow: sql``,
    concurrentTransactions: true,
    byteLength: (column) => sql`octet_length(${sql(column)})`,
    eventColumns: ["transaction_id", ...eventColumns],
    recordedBefore: (column, millis) => sql`${sql(column)} < to_timestamp(${millis / 1000})`,
    categoryOf: (column) =>
      sql`case when strpos(${sql(column)}, '-') > 1 then substr(${sql(column)}, 1, strpos(${sql(column)}, '-') - 1) else ${sql(column)} end`,
    ddl: ddl(sql)
  }
}

/**
 * PostgreSQL indexes, each paid for on every insert, so only what reads need: (stream, version) for
 * stream reads and the version check, (event id, stream) for idempotency and event lookups,
 * (transaction, position) for global reads, (category, transaction, position) for category reads. Type
 * filters are applied in SQL on top of those. Positions come from an identity, unique without an index.
 */
const ddl = (sql: SqlClient.SqlClient): Ddl => {
  const self: Ddl = {
    key: () => sql.literal("text"),
    longText: sql.literal("text"),
    tableOptions: sql.literal(""),
    serialKey: sql.literal("bigint generated always as identity primary key"),
    // transaction-scoped: held to the end of the run
    lockMigrations: (t) =>
      sql`select pg_advisory_xact_lock(hashtext(${`effect-eventsourcing migrations ${t.schema ?? ""}`}))`,
    unlockMigrations: () => Effect.void,
    createSchema: (schema) => sql`create schema if not exists ${sql(schema)}`,
    // the Migrator's own layout
    createMigrationsTable: (table) => sql`create table if not exists ${sql(table)} (
      migration_id integer primary key,
      created_at timestamp with time zone not null default now(),
      name text not null
    )`,
    createEventTables: (t) =>
      Effect.all(
        [
          sql`create table ${sql(t.events)} (
            position bigint generated always as identity,
            transaction_id xid8 not null default pg_current_xact_id(),
            stream_id text not null,
            category text not null,
            stream_hash bigint not null,
            version integer not null,
            event_id uuid not null,
            type text not null,
            schema_version integer not null,
            data json not null,
            metadata json not null,
            recorded_at timestamptz not null default now(),
            constraint ${indexName(sql, t, "events_pkey")} primary key (stream_id, version),
            constraint ${indexName(sql, t, "events_event_id_stream")} unique (event_id, stream_id)
          )`,
          sql`create index ${indexName(sql, t, "events_global")} on ${sql(t.events)} (transaction_id, position)`,
          sql`create index ${indexName(sql, t, "events_category")} on ${sql(t.events)} (category, transaction_id, position)`,
          sql`create index ${indexName(sql, t, "events_type")} on ${sql(t.events)} (type, transaction_id, position)`,
          sql`create table ${sql(t.streams)} (
            stream_id text primary key,
            version integer not null,
            deleted integer not null default 0
          )`,
          createUniqueValuesTable(sql, self, t),
          sql`create table ${sql(t.commands)} (
            command_id text primary key,
            stream_id text not null,
            version integer not null,
            positions bigint[] not null,
            recorded_at timestamptz not null
          )`,
          sql.unsafe(Functions.appendFunction(t)),
          sql.unsafe(Functions.appendBatchFunction(t))
        ],
        { discard: true }
      ),
    createArchiveTable: (t) =>
      sql`create table ${sql(t.archivedEvents)} (
        position bigint not null,
        transaction_id xid8 not null,
        stream_id text not null,
        category text not null,
        stream_hash bigint not null,
        version integer not null,
        event_id uuid not null,
        type text not null,
        schema_version integer not null,
        data json not null,
        metadata json not null,
        recorded_at timestamptz not null,
        archived_at bigint not null,
        constraint ${indexName(sql, t, "archived_events_pkey")} primary key (stream_id, version)
      )`,
    addTenantColumn: (t) =>
      Effect.zipRight(
        sql`alter table ${sql(t.events)} add column tenant_id text generated always as
          (case when strpos(stream_id, '~') > 0 then split_part(stream_id, '~', 1) end) stored`,
        sql`create index ${indexName(sql, t, "events_tenant")} on ${sql(t.events)} (tenant_id, transaction_id, position)
          where tenant_id is not null`
      )
  }
  return self
}
