/**
 * Table naming and schema migrations of the SQL services.
 *
 * Each service creates and migrates only its own tables (`SqlEventStore` the events, streams, unique
 * values and commands; `SqlSnapshotStore`, `SqlCheckpointStore`, `SqlSagaStore` and `SqlInbox` theirs),
 * recorded in a migrations table of its own per table prefix, so several stores can share one database
 * (and tests isolate themselves with a fresh schema or prefix). Migrations are code
 * (`Migrator.fromRecord`), idempotent, and concurrent runs are serialized (an advisory lock on
 * PostgreSQL, a named lock on MySQL, the single connection on SQLite). Each service starts from one
 * baseline; from the first release on, a released migration is frozen and changes go into new ones.
 *
 * Identifiers that come from configuration are validated against `^[a-z_][a-z0-9_]*$` before any SQL
 * is built from them.
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { EventStoreError } from "../EventStore.js"
import * as PgFunctions from "./pgFunctions.js"
import { withTransaction } from "./transaction.js"

/** Where the store's tables live. */
export interface TableOptions {
  /** PostgreSQL schema for the tables (created if missing); default: the connection's search path. */
  readonly schema?: string
  /** Prefix of every table name; default `"es_"`. */
  readonly tablePrefix?: string
}

/** Fully qualified table and function names (validated identifiers, unquoted). */
export interface Tables {
  readonly schema: string | undefined
  readonly events: string
  readonly streams: string
  /** Each service's record of its applied migrations. */
  readonly migrations: Readonly<Record<Service, string>>
  readonly appendFunction: string
  readonly appendBatchFunction: string
  readonly snapshots: string
  readonly uniqueValues: string
  readonly commands: string
  readonly checkpoints: string
  readonly projectionWorkers: string
  readonly deadLetters: string
  readonly projections: string
  readonly sagaInstances: string
  readonly sagaTimeouts: string
  readonly sagaFailures: string
  readonly processedMessages: string
  /** MySQL: the one-row table positions are taken from (see `serialAppend`). */
  readonly sequence: string
}

const identifier = /^[a-z_][a-z0-9_]*$/

/** Validates the configured names and derives the table names; a bad name fails at Layer build. */
export const tables = (options: TableOptions = {}): Effect.Effect<Tables, EventStoreError> => {
  const prefix = options.tablePrefix ?? "es_"
  const bad = [options.schema, prefix === "" ? undefined : prefix].find(
    (name) => name !== undefined && (!identifier.test(name) || name.length > 40)
  )
  if (bad !== undefined) {
    return Effect.fail(
      new EventStoreError({
        operation: "configure",
        cause: new Error(`invalid SQL identifier ${JSON.stringify(bad)}: use ^[a-z_][a-z0-9_]*$, at most 40 characters`)
      })
    )
  }
  const qualify = (name: string) =>
    options.schema === undefined ? prefix + name : `${options.schema}.${prefix}${name}`
  return Effect.succeed({
    schema: options.schema,
    events: qualify("events"),
    streams: qualify("streams"),
    migrations: {
      events: qualify("events_migrations"),
      snapshots: qualify("snapshots_migrations"),
      projections: qualify("projections_migrations"),
      sagas: qualify("sagas_migrations"),
      inbox: qualify("inbox_migrations")
    },
    appendFunction: qualify("append"),
    appendBatchFunction: qualify("append_batch"),
    snapshots: qualify("snapshots"),
    uniqueValues: qualify("unique_values"),
    commands: qualify("commands"),
    checkpoints: qualify("checkpoints"),
    projectionWorkers: qualify("projection_workers"),
    deadLetters: qualify("dead_letters"),
    projections: qualify("projections"),
    sagaInstances: qualify("saga_instances"),
    sagaTimeouts: qualify("saga_timeouts"),
    sagaFailures: qualify("saga_failures"),
    processedMessages: qualify("processed_messages"),
    sequence: qualify("sequence")
  })
}

/** A SQL service that owns tables (see the module doc). */
export type Service = "events" | "snapshots" | "projections" | "sagas" | "inbox"

/** Each service's migrations, in order; the first is its baseline. */
const migrationsOf = (
  t: Tables
): Record<Service, Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>>> => ({
  events: {
    "1_baseline": Effect.all([createEventTables(t), addTenantColumn(t), indexCommandTimes(t)], { discard: true })
  },
  snapshots: { "1_baseline": createSnapshotTable(t) },
  projections: { "1_baseline": createProjectionTables(t) },
  sagas: { "1_baseline": Effect.zipRight(createSagaTables(t), createSagaFailuresTable(t)) },
  inbox: { "1_baseline": createInboxTable(t) }
})

/**
 * Creates or upgrades one service's tables. On PostgreSQL the whole run holds a transaction-scoped
 * advisory lock keyed by the schema, so processes and services starting together do not race (to create
 * the schema, or a table).
 */
export const migrate = (t: Tables, service: Service): Effect.Effect<void, EventStoreError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const migrations = t.migrations[service]
    yield* sql.onDialectOrElse({
      pg: () => sql`select pg_advisory_xact_lock(hashtext(${`effect-eventsourcing migrations ${t.schema ?? ""}`}))`,
      // a session lock (MySQL commits DDL at once, so the transaction does not make the run atomic)
      mysql: () =>
        Effect.flatMap(
          sql<{ readonly locked: number | null }>`select get_lock(${migrations}, 60) as locked`,
          ([row]) =>
            Number(row?.locked) === 1
              ? Effect.void
              : Effect.fail(new Error("another process kept the migration lock for 60 s"))
        ),
      orElse: () => Effect.void
    })
    if (t.schema !== undefined) {
      yield* sql.onDialectOrElse({
        pg: () => sql`create schema if not exists ${sql(t.schema!)}`,
        orElse: () =>
          Effect.fail(
            new Error("the schema option is PostgreSQL-only; use tablePrefix to isolate stores on this database")
          )
      })
    }
    // the Migrator probes its table with a query that fails when the table is missing, which would abort
    // this transaction: create it first (the Migrator's own layout), under the lock
    yield* sql.onDialectOrElse({
      pg: () => sql`create table if not exists ${sql(migrations)} (
        migration_id integer primary key,
        created_at timestamp with time zone not null default now(),
        name text not null
      )${tableOptions(sql)}`,
      orElse: () => Effect.void
    })
    yield* Migrator.make({})({ loader: Migrator.fromRecord(migrationsOf(t)[service]), table: migrations })
  }).pipe(
    // the MySQL lock belongs to the session: released whatever happened, before the connection goes back
    Effect.ensuring(
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.onDialectOrElse({
          mysql: () => Effect.ignore(sql`select release_lock(${t.migrations[service]})`),
          orElse: () => Effect.void
        })
      )
    ),
    // guarded, whether the client given is or not (see `SqlTransactions`)
    (run) => Effect.flatMap(SqlClient.SqlClient, (sql) => withTransaction(sql)(run)),
    Effect.mapError((cause) => new EventStoreError({ operation: "migrate", cause }))
  )

/**
 * PostgreSQL indexes, each paid for on every insert, so only what reads need: (stream, version) for
 * stream reads and the version check, (event id, stream) for idempotency and event lookups,
 * (transaction, position) for global reads, (category, transaction, position) for category reads. Type
 * filters are applied in SQL on top of those. Positions come from an identity, unique without an index.
 */
const createEventTables = (t: Tables) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql.onDialectOrElse({
      pg: () =>
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
            constraint ${sql(`${prefixOf(t.events)}events_pkey`)} primary key (stream_id, version),
            constraint ${sql(`${prefixOf(t.events)}events_event_id_stream`)} unique (event_id, stream_id)
          )`,
            sql`create index ${sql(`${prefixOf(t.events)}events_global`)} on ${sql(t.events)} (transaction_id, position)`,
            sql`create index ${sql(`${prefixOf(t.events)}events_category`)} on ${sql(t.events)} (category, transaction_id, position)`,
            sql`create index ${sql(`${prefixOf(t.events)}events_type`)} on ${sql(t.events)} (type, transaction_id, position)`,
            sql`create table ${sql(t.streams)} (stream_id text primary key, version integer not null)${tableOptions(sql)}`,
            createUniqueValuesTable(t),
            sql`create table ${sql(t.commands)} (
              command_id text primary key,
              stream_id text not null,
              version integer not null,
              positions bigint[] not null,
              recorded_at timestamptz not null
            )${tableOptions(sql)}`,
            sql.unsafe(PgFunctions.appendFunction(t)),
            sql.unsafe(PgFunctions.appendBatchFunction(t))
          ],
          { discard: true }
        ),
      mysql: () =>
        Effect.all(
          [
            sql`create table ${sql(t.events)} (
            position bigint not null primary key,
            stream_id ${key(sql)} not null,
            category ${key(sql)} not null,
            stream_hash bigint not null,
            version integer not null,
            event_id char(36) character set ascii not null,
            type ${key(sql)} not null,
            schema_version integer not null,
            data longtext not null,
            metadata longtext not null,
            recorded_at bigint not null,
            unique (stream_id, version),
            unique (stream_id, event_id)
          )${tableOptions(sql)}`,
            positionIndexes(sql, t),
            sql`create table ${sql(t.streams)} (stream_id ${key(sql)} primary key, version integer not null)${tableOptions(sql)}`,
            sql`create table ${sql(t.sequence)} (id integer primary key, last bigint not null)${tableOptions(sql)}`,
            sql`insert ignore into ${sql(t.sequence)} (id, last) values (1, 0)`,
            createUniqueValuesTable(t),
            sql`create table ${sql(t.commands)} (
              command_id ${key(sql)} primary key,
              stream_id ${key(sql)} not null,
              version integer not null,
              positions longtext not null,
              recorded_at bigint not null
            )${tableOptions(sql)}`
          ],
          { discard: true }
        ),
      orElse: () =>
        Effect.all(
          [
            sql`create table ${sql(t.events)} (
            position integer primary key autoincrement,
            stream_id text not null,
            category text not null,
            stream_hash integer not null,
            version integer not null,
            event_id text not null,
            type text not null,
            schema_version integer not null,
            data text not null,
            metadata text not null,
            recorded_at integer not null,
            unique (stream_id, version),
            unique (stream_id, event_id)
          )${tableOptions(sql)}`,
            positionIndexes(sql, t),
            sql`create table ${sql(t.streams)} (stream_id text primary key, version integer not null)${tableOptions(sql)}`,
            createUniqueValuesTable(t),
            sql`create table ${sql(t.commands)} (
              command_id text primary key,
              stream_id text not null,
              version integer not null,
              positions text not null,
              recorded_at integer not null
            )${tableOptions(sql)}`
          ],
          { discard: true }
        )
    })
  })

/**
 * A text column that is a key: MySQL/MariaDB index only bounded strings, and compare them case- and
 * trailing-space-insensitively by default, so keys are `varchar` with an exact (binary, no-pad) collation.
 */
const key = (sql: SqlClient.SqlClient, length = 255) =>
  sql.onDialectOrElse({
    mysql: () => sql.literal(`varchar(${length}) character set utf8mb4 collate utf8mb4_nopad_bin`),
    orElse: () => sql.literal("text")
  })

/**
 * MySQL: every table InnoDB (transactional: the sequence row's lock is what orders commits) with utf8mb4
 * text, whatever the database's defaults.
 */
const tableOptions = (sql: SqlClient.SqlClient) =>
  sql.onDialectOrElse({
    mysql: () => sql.literal(" engine = InnoDB default charset = utf8mb4 collate = utf8mb4_bin"),
    orElse: () => sql.literal("")
  })

/** Long text (JSON documents): MySQL's `text` holds 64 KiB only. */
const longText = (sql: SqlClient.SqlClient) =>
  sql.onDialectOrElse({ mysql: () => sql.literal("longtext"), orElse: () => sql.literal("text") })

/** SQLite and MySQL: positions are commit order, so category and type reads go by position. */
const positionIndexes = (sql: SqlClient.SqlClient, t: Tables) =>
  Effect.all(
    [
      sql`create index ${sql(`${prefixOf(t.events)}events_category`)} on ${sql(t.events)} (category, position)`,
      sql`create index ${sql(`${prefixOf(t.events)}events_type`)} on ${sql(t.events)} (type, position)`,
      sql`create index ${sql(`${prefixOf(t.events)}events_event_id`)} on ${sql(t.events)} (event_id)`
    ],
    { discard: true }
  )

/** Index and constraint names live in the table's schema: the unqualified table name's prefix. */
const prefixOf = (qualified: string) => qualified.slice(qualified.lastIndexOf(".") + 1, -"events".length)

/** Unique values claimed by streams (see `EventStore.UniqueValue`). */
const createUniqueValuesTable = (t: Tables) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql`create table ${sql(t.uniqueValues)} (
      constraint_name ${key(sql)} not null,
      value ${key(sql, 512)} not null,
      stream_id ${key(sql)} not null,
      primary key (constraint_name, value)
    )${tableOptions(sql)}`
  )

/** Snapshots: the encoded state as JSON text (opaque to the database), newest per stream by version. */
const createSnapshotTable = (t: Tables) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql`create table ${sql(t.snapshots)} (
      stream_id ${key(sql)} not null,
      version integer not null,
      state_version integer not null,
      state ${longText(sql)} not null,
      taken_at bigint not null,
      primary key (stream_id, version)
    )${tableOptions(sql)}`
  )

/**
 * Projection runners' state (see `SqlCheckpointStore`): a row per partition holding the checkpoint and
 * the lease, the workers present, dead letters, and the version of each projection that serves reads.
 * Times are epoch milliseconds from the runners' clocks.
 */
const createProjectionTables = (t: Tables) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const serial = sql.onDialectOrElse({
      pg: () => sql`bigint generated always as identity primary key`,
      mysql: () => sql`bigint auto_increment primary key`,
      orElse: () => sql`integer primary key autoincrement`
    })
    // "partition" is a reserved word in MySQL: quoted here, and by the queries of the checkpoint store
    const partition = sql("partition")
    yield* sql`create table ${sql(t.checkpoints)} (
      projection ${key(sql)} not null,
      version integer not null,
      ${partition} integer not null,
      partitions integer not null,
      transaction_id bigint not null,
      position bigint not null,
      owner ${key(sql)},
      lease_token bigint not null,
      lease_expires_at bigint not null,
      live integer not null,
      updated_at bigint not null,
      primary key (projection, version, ${partition})
    )${tableOptions(sql)}`
    yield* sql`create table ${sql(t.projectionWorkers)} (
      projection ${key(sql)} not null,
      version integer not null,
      worker_id ${key(sql)} not null,
      expires_at bigint not null,
      primary key (projection, version, worker_id)
    )${tableOptions(sql)}`
    yield* sql`create table ${sql(t.deadLetters)} (
      id ${serial},
      projection ${key(sql)} not null,
      version integer not null,
      ${partition} integer not null,
      event ${longText(sql)} not null,
      error ${longText(sql)} not null,
      dead_at bigint not null
    )${tableOptions(sql)}`
    yield* sql`create index ${sql(`${prefixOf(t.events)}dead_letters_projection`)} on ${sql(t.deadLetters)} (projection, id)`
    yield* sql`create table ${sql(t.projections)} (
      projection ${key(sql)} primary key,
      active_version integer not null,
      updated_at bigint not null
    )${tableOptions(sql)}`
  })

/** Saga instances (state as JSON text, versioned) and their durable timeouts (see `SqlSagaStore`). */
const createSagaTables = (t: Tables) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`create table ${sql(t.sagaInstances)} (
      saga ${key(sql)} not null,
      instance ${key(sql)} not null,
      version integer not null,
      status ${key(sql, 32)} not null,
      state ${longText(sql)} not null,
      compensations ${longText(sql)} not null,
      error ${longText(sql)},
      updated_at bigint not null,
      primary key (saga, instance)
    )${tableOptions(sql)}`
    yield* sql`create table ${sql(t.sagaTimeouts)} (
      saga ${key(sql)} not null,
      instance ${key(sql)} not null,
      name ${key(sql)} not null,
      due_at bigint not null,
      primary key (saga, instance, name)
    )${tableOptions(sql)}`
    yield* sql`create index ${sql(`${prefixOf(t.events)}saga_timeouts_due`)} on ${sql(t.sagaTimeouts)} (saga, due_at)`
  })

/** The inputs of saga instances that failed for good, with their compensations (see `SagaStore.recordFailure`). */
const createSagaFailuresTable = (t: Tables) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql`create table ${sql(t.sagaFailures)} (
      saga ${key(sql)} not null,
      instance ${key(sql)} not null,
      cause ${key(sql)} not null,
      error ${longText(sql)} not null,
      compensations ${longText(sql)} not null,
      recorded_at bigint not null,
      primary key (saga, instance, cause)
    )${tableOptions(sql)}`
  )

/**
 * The tenant of a tenant-scoped stream (`<tenant>~<streamId>`, see `Tenancy`) as a column computed from
 * the stream id, indexed with the global order so that a tenant's global reads use it.
 */
const addTenantColumn = (t: Tables) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const index = sql(`${prefixOf(t.events)}events_tenant`)
    yield* sql.onDialectOrElse({
      pg: () =>
        Effect.zipRight(
          sql`alter table ${sql(t.events)} add column tenant_id text generated always as
            (case when strpos(stream_id, '~') > 0 then split_part(stream_id, '~', 1) end) stored`,
          sql`create index ${index} on ${sql(t.events)} (tenant_id, transaction_id, position) where tenant_id is not null`
        ),
      mysql: () =>
        Effect.zipRight(
          sql`alter table ${sql(t.events)} add column tenant_id ${key(sql, 64)} as
            (case when locate('~', stream_id) > 0 then substring_index(stream_id, '~', 1) end) virtual`,
          sql`create index ${index} on ${sql(t.events)} (tenant_id, position)`
        ),
      orElse: () =>
        Effect.zipRight(
          sql`alter table ${sql(t.events)} add column tenant_id text generated always as
            (case when instr(stream_id, '~') > 0 then substr(stream_id, 1, instr(stream_id, '~') - 1) end) virtual`,
          sql`create index ${index} on ${sql(t.events)} (tenant_id, position) where tenant_id is not null`
        )
    })
  })

/** Handled commands by time, for the pruning of expired ones (see `commandRecords`). */
const indexCommandTimes = (t: Tables) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql`create index ${sql(`${prefixOf(t.events)}commands_recorded_at`)} on ${sql(t.commands)} (recorded_at)`
  )

/** The idempotent consumers' record of handled messages (see `SqlInbox`). */
const createInboxTable = (t: Tables) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql`create table ${sql(t.processedMessages)} (
      consumer ${key(sql)} not null,
      message_id ${key(sql)} not null,
      processed_at bigint not null,
      primary key (consumer, message_id)
    )${tableOptions(sql)}`
  )
