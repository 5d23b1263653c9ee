/**
 * The MySQL/MariaDB dialect record (see `sql/internal/dialect.ts`): InnoDB runs writers side by side, so
 * rows are locked (made first where a lock would otherwise fall on a gap) and positions come from a
 * one-row sequence table, taken last, in commit order; no `RETURNING` (rows counted with `row_count()`);
 * reads inside a transaction see its snapshot unless they lock; keys are bounded binary strings.
 *
 * @internal
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as BackendLimits from "../../sql/backendLimits.js"
import { isDeadlock } from "../../sql/classify.js"
import {
  createUniqueValuesTable,
  eventColumns,
  indexName,
  positionIndexes,
  schemaUnsupported
} from "../../sql/internal/ddl.js"
import type { Ddl, SqlDialect } from "../../sql/internal/dialect.js"
import * as SerialEvents from "../../sql/internal/serialEvents.js"
import type { Tables } from "../../sql/migrations.js"
import { withTransaction } from "../../sql/transaction.js"

/** The most placeholders of a prepared statement. */
const maxPlaceholders = 65_535

/** Placeholders of an event's row in the append's INSERT. */
const paramsPerEvent = 11

/** The server's bounds: `max_allowed_packet` (see `backendLimits`). */
const readLimits = (sql: SqlClient.SqlClient) =>
  Effect.map(sql<{ readonly packet: number | string }>`select @@max_allowed_packet as packet`, ([row]) => {
    const packet = Number(row?.packet ?? 0)
    return {
      backend: "MySQL/MariaDB",
      maxEventsPerAppend: Math.floor(maxPlaceholders / paramsPerEvent),
      maxEventBytes: Math.max(0, packet - BackendLimits.mysqlRowOverhead - BackendLimits.mysqlStatementOverhead),
      maxAppendBytes: undefined,
      eventOverhead: BackendLimits.mysqlRowOverhead,
      packet,
      why: {
        events: `a MySQL/MariaDB statement takes at most ${maxPlaceholders} placeholders, ${paramsPerEvent} per event`,
        eventBytes: `an event's row must fit one packet of the server's max_allowed_packet (${packet} bytes)`,
        appendBytes: ""
      }
    } satisfies BackendLimits.BackendLimits
  })

/** The record for `sql`, a MySQL/MariaDB client. */
export const make = (sql: SqlClient.SqlClient): SqlDialect => {
  /** The rows the connection's last statement changed (matched, for an UPDATE: mysql2 asks for found rows). */
  const rowCount = Effect.map(sql<{ readonly n: number | string }>`select row_count() as n`, ([row]) =>
    Number(row?.n ?? 0)
  )
  // in a transaction, so that the statement and `row_count()` run on one connection of the pool
  const matched = (statement: Statement.Statement<unknown>) =>
    withTransaction(sql)(Effect.zipRight(statement, rowCount))
  const self: SqlDialect = {
    name: "MySQL/MariaDB",
    limits: readLimits(sql),
    events: (options) =>
      Effect.succeed(
        SerialEvents.make({
          ...options,
          sql,
          dialect: self,
          steps: {
            lockable: (placeholder) => Effect.asVoid(Effect.suspend(placeholder)),
            insertEvents: (append, rows) =>
              Effect.gen(function* () {
                const first = yield* takePositions(sql, options.tables, rows.length)
                const positioned = rows.map((row, i) => ({ position: first + i, ...row }))
                // in runs that fit a packet each (one, unless the append is large)
                yield* Effect.forEach(
                  BackendLimits.mysqlChunks(
                    append.events,
                    positioned,
                    options.limits.packet ?? Number.MAX_SAFE_INTEGER
                  ),
                  (run) => sql`insert into ${sql(options.tables.events)} ${sql.insert(run)}`,
                  { discard: true }
                )
                return positioned.map((row) => BigInt(row.position))
              }),
            retry: retryDeadlocks,
            // several writers: a duplicate key met by the insert would wait on, or deadlock with, a concurrent one
            idsCheckedLazily: false
          }
        })
      ),
    commandExpired: (ttlMillis, nowMillis) => sql`recorded_at < ${nowMillis - ttlMillis}`,
    // a no-op assignment (MySQL has no ON CONFLICT DO NOTHING; INSERT IGNORE would hide other errors too)
    onConflictIgnore: (key) => sql`on duplicate key update ${sql(key[0]!)} = ${sql(key[0]!)}`,
    onConflictUpdate: (_, updated) =>
      sql`on duplicate key update ${sql.csv(updated.map((column) => sql`${sql(column)} = values(${sql(column)})`))}`,
    // an ignored duplicate inserts no row; IGNORE also turns bad data into warnings, so callers check lengths
    insertNew: (table, row) =>
      Effect.map(matched(sql`insert ignore into ${sql(table)} ${sql.insert(row)}`), (n) => n === 1),
    matched,
    // the row as updated, read under the update's lock
    updateReturning: <Row extends object>(
      update: Statement.Statement<unknown>,
      _: Statement.Fragment,
      select: Statement.Statement<Row>
    ): Effect.Effect<ReadonlyArray<Row>, SqlError> =>
      withTransaction(sql)(Effect.flatMap(matched(update), (n) => (n === 0 ? Effect.succeed([]) : select))),
    forUpdate: sql` for update`,
    forUpdateSkipLocked: sql` for update skip locked`,
    // a locking read sees what is committed now, where a plain one sees the transaction's snapshot
    committedNow: sql` lock in share mode`,
    concurrentTransactions: true,
    byteLength: (column) => sql`length(${sql(column)})`,
    eventColumns,
    recordedBefore: (column, millis) => sql`${sql(column)} < ${millis}`,
    categoryOf: (column) =>
      sql`case when instr(${sql(column)}, '-') > 1 then substr(${sql(column)}, 1, instr(${sql(column)}, '-') - 1) else ${sql(column)} end`,
    ddl: ddl(sql)
  }
  return self
}

/** The first of `count` positions, taken last: its lock orders commits (see `serialAppend`). */
const takePositions = (sql: SqlClient.SqlClient, t: Tables, count: number) =>
  Effect.gen(function* () {
    yield* sql`update ${sql(t.sequence)} set last = last + ${count} where id = 1`
    const [row] = yield* sql<{ readonly last: number | string }>`select last from ${sql(t.sequence)} where id = 1`
    if (row === undefined)
      return yield* Effect.die(new Error(`${t.sequence} has no row: the store's tables are damaged`))
    return Number(row.last) - count + 1
  })

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

/**
 * Keys are `varchar` with an exact (binary, no-pad) collation: MySQL/MariaDB index only bounded strings,
 * and compare them case- and trailing-space-insensitively by default. Every table is InnoDB
 * (transactional: the sequence row's lock is what orders commits) with utf8mb4 text, whatever the
 * database's defaults. JSON documents are `longtext` (`text` holds 64 KiB only).
 */
const ddl = (sql: SqlClient.SqlClient): Ddl => {
  const tableOptions = sql.literal(" engine = InnoDB default charset = utf8mb4 collate = utf8mb4_bin")
  const self: Ddl = {
    key: (length = 255) => sql.literal(`varchar(${length}) character set utf8mb4 collate utf8mb4_nopad_bin`),
    longText: sql.literal("longtext"),
    tableOptions,
    serialKey: sql.literal("bigint auto_increment primary key"),
    // a session lock (MySQL commits DDL at once, so the transaction does not make the run atomic)
    lockMigrations: (t, service) =>
      Effect.flatMap(
        sql<{ readonly locked: number | null }>`select get_lock(${t.migrations[service]}, 60) as locked`,
        ([row]) =>
          Number(row?.locked) === 1
            ? Effect.void
            : Effect.fail(new Error("another process kept the migration lock for 60 s"))
      ),
    unlockMigrations: (t, service) => Effect.ignore(sql`select release_lock(${t.migrations[service]})`),
    createSchema: schemaUnsupported,
    createMigrationsTable: () => Effect.void,
    createEventTables: (t) =>
      Effect.all(
        [
          sql`create table ${sql(t.events)} (
            position bigint not null primary key,
            stream_id ${self.key()} not null,
            category ${self.key()} not null,
            stream_hash bigint not null,
            version integer not null,
            event_id char(36) character set ascii not null,
            type ${self.key()} not null,
            schema_version integer not null,
            data longtext not null,
            metadata longtext not null,
            recorded_at bigint not null,
            unique (stream_id, version),
            unique (stream_id, event_id)
          )${tableOptions}`,
          positionIndexes(sql, t),
          sql`create table ${sql(t.streams)} (
            stream_id ${self.key()} primary key,
            version integer not null,
            deleted integer not null default 0
          )${tableOptions}`,
          sql`create table ${sql(t.sequence)} (id integer primary key, last bigint not null)${tableOptions}`,
          sql`insert ignore into ${sql(t.sequence)} (id, last) values (1, 0)`,
          createUniqueValuesTable(sql, self, t),
          sql`create table ${sql(t.commands)} (
            command_id ${self.key()} primary key,
            stream_id ${self.key()} not null,
            version integer not null,
            positions longtext not null,
            recorded_at bigint not null
          )${tableOptions}`
        ],
        { discard: true }
      ),
    createArchiveTable: (t) =>
      sql`create table ${sql(t.archivedEvents)} (
        position bigint not null,
        stream_id ${self.key()} not null,
        category ${self.key()} not null,
        stream_hash bigint not null,
        version integer not null,
        event_id char(36) character set ascii not null,
        type ${self.key()} not null,
        schema_version integer not null,
        data longtext not null,
        metadata longtext not null,
        recorded_at bigint not null,
        archived_at bigint not null,
        primary key (stream_id, version)
      )${tableOptions}`,
    addTenantColumn: (t) =>
      Effect.zipRight(
        sql`alter table ${sql(t.events)} add column tenant_id ${self.key(64)} as
          (case when locate('~', stream_id) > 0 then substring_index(stream_id, '~', 1) end) virtual`,
        sql`create index ${indexName(sql, t, "events_tenant")} on ${sql(t.events)} (tenant_id, position)`
      )
  }
  return self
}
