/**
 * Table naming and schema migrations of the SQL services.
 *
 * Each service creates and migrates only its own tables (`SqlEventStore` the events, streams, unique
 * values, commands and archived events; `SqlSnapshotStore`, `SqlCheckpointStore`, `SqlSagaStore`, `SqlInbox` and `SqlKeyStore` theirs),
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
import * as Ddl from "./internal/ddl.js"
import * as Dialect from "./internal/dialect.js"
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
  /** Events moved out of the log by `archiveStream`. */
  readonly archivedEvents: string
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
  readonly rebuildRequests: string
  readonly sagaInstances: string
  readonly sagaTimeouts: string
  readonly sagaFailures: string
  readonly processedMessages: string
  /** The data keys of crypto-shredding (see `SqlKeyStore`). */
  readonly keys: string
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
    archivedEvents: qualify("archived_events"),
    migrations: {
      events: qualify("events_migrations"),
      snapshots: qualify("snapshots_migrations"),
      projections: qualify("projections_migrations"),
      sagas: qualify("sagas_migrations"),
      inbox: qualify("inbox_migrations"),
      keys: qualify("keys_migrations")
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
    rebuildRequests: qualify("rebuild_requests"),
    sagaInstances: qualify("saga_instances"),
    sagaTimeouts: qualify("saga_timeouts"),
    sagaFailures: qualify("saga_failures"),
    processedMessages: qualify("processed_messages"),
    keys: qualify("keys"),
    sequence: qualify("sequence")
  })
}

/** A SQL service that owns tables (see the module doc). */
export type Service = "events" | "snapshots" | "projections" | "sagas" | "inbox" | "keys"

/** Every service, in the order `migrate up` creates their tables. */
export const services: ReadonlyArray<Service> = ["events", "snapshots", "projections", "sagas", "inbox", "keys"]

/** A migration, as the Migrator names it (`<id>_<name>`). */
export interface Migration {
  readonly id: number
  readonly name: string
}

/** What {@link status} found for a service. */
export interface MigrationStatus {
  readonly service: Service
  readonly applied: ReadonlyArray<Migration>
  /** Known to this version of the library and not applied yet. */
  readonly pending: ReadonlyArray<Migration>
}

/**
 * The migrations of a service applied in the database and those still pending. A missing migrations table
 * counts as none applied (so does any failure of its read: check that the database answers first).
 */
export const status = (
  t: Tables,
  service: Service
): Effect.Effect<MigrationStatus, EventStoreError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const { ddl } = yield* Dialect.of(sql)
    const known = Object.keys(migrationsOf(sql, ddl, t)[service]).map((key): Migration => {
      const [id, ...name] = key.split("_")
      return { id: Number(id), name: name.join("_") }
    })
    const applied = yield* sql<{ readonly migration_id: number | string; readonly name: string }>`
      select migration_id, name from ${sql(t.migrations[service])} order by migration_id`.pipe(
      Effect.map((rows) => rows.map((row): Migration => ({ id: Number(row.migration_id), name: row.name }))),
      Effect.orElseSucceed((): ReadonlyArray<Migration> => [])
    )
    return { service, applied, pending: known.filter((m) => !applied.some((a) => a.id === m.id)) }
  })

/** Each service's migrations, in order; the first is its baseline. */
const migrationsOf = (
  sql: SqlClient.SqlClient,
  ddl: Dialect.Ddl,
  t: Tables
): Record<Service, Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>>> => ({
  events: {
    "1_baseline": Effect.all(
      [ddl.createEventTables(t), ddl.addTenantColumn(t), indexCommandTimes(sql, t), ddl.createArchiveTable(t)],
      { discard: true }
    )
  },
  snapshots: { "1_baseline": createSnapshotTable(sql, ddl, t) },
  projections: { "1_baseline": createProjectionTables(sql, ddl, t) },
  sagas: { "1_baseline": Effect.zipRight(createSagaTables(sql, ddl, t), createSagaFailuresTable(sql, ddl, t)) },
  inbox: { "1_baseline": createInboxTable(sql, ddl, t) },
  keys: { "1_baseline": createKeysTable(sql, ddl, t) }
})

/**
 * Creates or upgrades one service's tables. The whole run holds the backend's migration lock (on
 * PostgreSQL a transaction-scoped advisory lock keyed by the schema), so processes and services starting
 * together do not race (to create the schema, or a table); `lock: false` leaves it out (the CLI's
 * `migrate sql` records the statements without a database). Once the run committed, each migration it
 * applied is logged (`Effect.log` annotated with `service` and `migration`); none when all were applied.
 */
export const migrate = (
  t: Tables,
  service: Service,
  options: { readonly lock?: boolean } = {}
): Effect.Effect<void, EventStoreError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const { ddl } = yield* Dialect.of(sql)
    const run = Effect.gen(function* () {
      if (options.lock !== false) yield* ddl.lockMigrations(t, service)
      if (t.schema !== undefined) yield* ddl.createSchema(t.schema)
      // the Migrator probes its table with a query that fails when the table is missing, which would abort
      // this transaction on PostgreSQL: created first there, under the lock
      yield* ddl.createMigrationsTable(t.migrations[service])
      return yield* Migrator.make({})({
        loader: Migrator.fromRecord(migrationsOf(sql, ddl, t)[service]),
        table: t.migrations[service]
      })
    }).pipe(
      // a session lock (MySQL) is released whatever happened, before the connection goes back
      Effect.ensuring(options.lock === false ? Effect.void : ddl.unlockMigrations(t, service)),
      withTransaction(sql)
    )
    const applied = yield* Effect.mapError(run, (cause) => new EventStoreError({ operation: "migrate", cause }))
    yield* Effect.forEach(
      applied,
      ([id, name]) => Effect.annotateLogs(Effect.log("applied migration"), { service, migration: `${id}_${name}` }),
      { discard: true }
    )
  })

/** Snapshots: the encoded state as JSON text (opaque to the database), newest per stream by version. */
const createSnapshotTable = (sql: SqlClient.SqlClient, ddl: Dialect.Ddl, t: Tables) =>
  sql`create table ${sql(t.snapshots)} (
    stream_id ${ddl.key()} not null,
    version integer not null,
    state_version integer not null,
    state ${ddl.longText} not null,
    taken_at bigint not null,
    primary key (stream_id, version)
  )${ddl.tableOptions}`

/**
 * Projection runners' state (see `SqlCheckpointStore`): a row per partition holding the checkpoint and
 * the lease, the workers present, dead letters (with whether an operator asked to retry them), the
 * version of each projection that serves reads, and operators' pending rebuild requests. Times are epoch
 * milliseconds from the runners' clocks (and the operator's, for requests).
 */
const createProjectionTables = (sql: SqlClient.SqlClient, ddl: Dialect.Ddl, t: Tables) =>
  Effect.gen(function* () {
    // "partition" is a reserved word in MySQL: quoted here, and by the queries of the checkpoint store
    const partition = sql("partition")
    yield* sql`create table ${sql(t.checkpoints)} (
      projection ${ddl.key()} not null,
      version integer not null,
      ${partition} integer not null,
      partitions integer not null,
      transaction_id bigint not null,
      position bigint not null,
      owner ${ddl.key()},
      lease_token bigint not null,
      lease_expires_at bigint not null,
      live integer not null,
      updated_at bigint not null,
      primary key (projection, version, ${partition})
    )${ddl.tableOptions}`
    yield* sql`create table ${sql(t.projectionWorkers)} (
      projection ${ddl.key()} not null,
      version integer not null,
      worker_id ${ddl.key()} not null,
      expires_at bigint not null,
      primary key (projection, version, worker_id)
    )${ddl.tableOptions}`
    yield* sql`create table ${sql(t.deadLetters)} (
      id ${ddl.serialKey},
      projection ${ddl.key()} not null,
      version integer not null,
      ${partition} integer not null,
      event ${ddl.longText} not null,
      error ${ddl.longText} not null,
      dead_at bigint not null,
      retry_requested integer not null
    )${ddl.tableOptions}`
    yield* sql`create index ${Ddl.indexName(sql, t, "dead_letters_projection")} on ${sql(t.deadLetters)} (projection, id)`
    yield* sql`create table ${sql(t.projections)} (
      projection ${ddl.key()} primary key,
      active_version integer not null,
      updated_at bigint not null
    )${ddl.tableOptions}`
    yield* sql`create table ${sql(t.rebuildRequests)} (
      projection ${ddl.key()} not null,
      version integer not null,
      requested_at bigint not null,
      primary key (projection, version)
    )${ddl.tableOptions}`
  })

/** Saga instances (state as JSON text, versioned) and their durable timeouts (see `SqlSagaStore`). */
const createSagaTables = (sql: SqlClient.SqlClient, ddl: Dialect.Ddl, t: Tables) =>
  Effect.gen(function* () {
    yield* sql`create table ${sql(t.sagaInstances)} (
      saga ${ddl.key()} not null,
      instance ${ddl.key()} not null,
      version integer not null,
      status ${ddl.key(32)} not null,
      state ${ddl.longText} not null,
      compensations ${ddl.longText} not null,
      error ${ddl.longText},
      updated_at bigint not null,
      primary key (saga, instance)
    )${ddl.tableOptions}`
    yield* sql`create table ${sql(t.sagaTimeouts)} (
      saga ${ddl.key()} not null,
      instance ${ddl.key()} not null,
      name ${ddl.key()} not null,
      due_at bigint not null,
      primary key (saga, instance, name)
    )${ddl.tableOptions}`
    yield* sql`create index ${Ddl.indexName(sql, t, "saga_timeouts_due")} on ${sql(t.sagaTimeouts)} (saga, due_at)`
  })

/** The inputs of saga instances that failed for good, with their compensations (see `SagaStore.recordFailure`). */
const createSagaFailuresTable = (sql: SqlClient.SqlClient, ddl: Dialect.Ddl, t: Tables) =>
  sql`create table ${sql(t.sagaFailures)} (
    saga ${ddl.key()} not null,
    instance ${ddl.key()} not null,
    cause ${ddl.key()} not null,
    error ${ddl.longText} not null,
    compensations ${ddl.longText} not null,
    recorded_at bigint not null,
    primary key (saga, instance, cause)
  )${ddl.tableOptions}`

/** Handled commands by time, for the pruning of expired ones (see `commandRecords`). */
const indexCommandTimes = (sql: SqlClient.SqlClient, t: Tables) =>
  sql`create index ${Ddl.indexName(sql, t, "commands_recorded_at")} on ${sql(t.commands)} (recorded_at)`

/** The idempotent consumers' record of handled messages (see `SqlInbox`). */
const createInboxTable = (sql: SqlClient.SqlClient, ddl: Dialect.Ddl, t: Tables) =>
  sql`create table ${sql(t.processedMessages)} (
    consumer ${ddl.key()} not null,
    message_id ${ddl.key()} not null,
    processed_at bigint not null,
    primary key (consumer, message_id)
  )${ddl.tableOptions}`

/**
 * Crypto-shredding's data keys (see `SqlKeyStore`): a subject's key wrapped by the master key (base64, at
 * most 80 characters), or none once the subject was erased. Times are epoch milliseconds.
 */
const createKeysTable = (sql: SqlClient.SqlClient, ddl: Dialect.Ddl, t: Tables) =>
  sql`create table ${sql(t.keys)} (
    subject ${ddl.key()} not null primary key,
    wrapped_key ${ddl.key(128)},
    created_at bigint not null,
    erased_at bigint
  )${ddl.tableOptions}`
