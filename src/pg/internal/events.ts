/**
 * The PostgreSQL part of the SQL event store: appends are one call of the append function (grouped under
 * group commit), and global reads stop at the read horizon, the oldest transaction still running in the
 * cluster, ordered by (transaction id, position) (see `SqlEventStore.make`).
 *
 * @internal
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as Event from "../../Event.js"
import {
  type AppendResult,
  ConcurrencyConflict,
  type EventStoreError,
  type HeldBack,
  type InvalidAppend,
  maxHeldBackCount,
  StreamDeleted
} from "../../EventStore.js"
import type { PreparedAppend } from "../../internal/appendPreparation.js"
import { storeError } from "../../sql/classify.js"
import type { CommandRow } from "../../sql/commandRecords.js"
import * as HotPath from "../../sql/HotPath.js"
import type { EventsDialect, EventsOptions } from "../../sql/internal/dialect.js"
import * as PgAppend from "./append.js"

/** Builds the dialect; group-commit writers, if on, live in the scope. */
export const make = (
  sql: SqlClient.SqlClient,
  options: EventsOptions
): Effect.Effect<EventsDialect, never, Scope.Scope> =>
  Effect.gen(function* () {
    const t = options.tables
    const callAppend = yield* PgAppend.make({
      sql,
      // the client's hot path, when its Layer provides one (`Postgres.layer` does)
      hotPath: yield* Effect.serviceOption(HotPath.HotPath),
      tables: t,
      commandTtl: options.commandTtl,
      groupCommit: options.groupCommit
    })

    /** What the append function's outcome means for the caller. */
    const interpret = (
      append: PreparedAppend,
      result: PgAppend.Outcome
    ): Effect.Effect<AppendResult, ConcurrencyConflict | InvalidAppend | StreamDeleted | SqlError> => {
      switch (result.outcome) {
        case "ok":
          return Effect.succeed<AppendResult>({
            streamId: append.streamId,
            version: result.version,
            positions: result.positions!.map(BigInt)
          })
        case "conflict":
          return Effect.fail(
            new ConcurrencyConflict({
              streamId: append.streamId,
              expected: append.expectedVersion,
              actual: result.version
            })
          )
        case "deleted":
        case "hard-deleted":
          return Effect.fail(new StreamDeleted({ streamId: append.streamId, hard: result.outcome === "hard-deleted" }))
        case "duplicates": {
          const stored = new Map<string, number>()
          append.events.forEach((e, i) => {
            const version = result.stored![i]
            if (version !== null && version !== undefined) stored.set(e.eventId, version)
          })
          return options.resolveStored(append, stored, result.version)
        }
      }
    }

    const where = (filters: ReadonlyArray<Statement.Fragment>) =>
      filters.length > 0 ? sql`and ${sql.and(filters)}` : sql``

    // in the order of `EventValues`
    const columns = sql`position::text as position, stream_id, category, version, event_id::text as event_id, type,
      schema_version, data, metadata, floor(date_part('epoch', recorded_at) * 1000) as recorded_at,
      transaction_id::text as transaction_id`

    return {
      columns,
      // the driver parsed the json columns (the text as appended)
      json: (column) => column,
      append: (append) => Effect.flatMap(callAppend(append), (outcome) => interpret(append, outcome)),
      // the read horizon applies outside the page's limit: held-back rows sort after every readable one, so
      // the page holds the same rows, and the planner always reads the index in order (given the horizon as
      // a condition, it misjudged how many rows pass on a table without statistics and sorted the rest of the
      // log for every page). The price: while a transaction holds readers back, a page may read up to its
      // limit of held-back rows. The subquery takes the horizon once, not per row; the order is by the
      // table's columns (the select list casts them to text under the same names).
      readAllPage: (after, filters, limit) =>
        sql`select ${columns} from (
            select * from ${sql(t.events)} as e
            where (e.transaction_id, e.position) > (${String(after.transaction)}::xid8, ${String(after.position)}::bigint)
              ${where(filters)}
            order by e.transaction_id, e.position limit ${limit}
          ) as e
          where e.transaction_id < (select pg_snapshot_xmin(pg_current_snapshot()))
          order by e.transaction_id, e.position`,
      // ordered by the table's columns: a bare name would be the text the select list casts it to
      head: Effect.map(
        sql<{ readonly transaction_id: string; readonly position: string }>`
          select e.transaction_id::text as transaction_id, e.position::text as position from ${sql(t.events)} as e
          where e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
          order by e.transaction_id desc, e.position desc limit 1`,
        ([row]) =>
          Option.map(Option.fromNullable(row), (r): Event.Checkpoint => ({
            transaction: BigInt(r.transaction_id),
            position: BigInt(r.position)
          }))
      ),
      findCommand: (commandId, ttlMillis) =>
        Effect.map(
          sql<CommandRow>`select stream_id, version, positions::text[] as positions from ${sql(t.commands)}
            where command_id = ${commandId} and recorded_at > now() - make_interval(secs => ${ttlMillis / 1000})`,
          (rows) => Option.fromNullable(rows[0])
        ),
      heldBack: (filters) =>
        Effect.gen(function* () {
          // counted up to a bound, oldest first: a long stall must not make every sample scan what piled up
          const [row] = yield* sql<{ readonly events: string | number; readonly since: number | null }>`
            select count(*) as events, floor(date_part('epoch', min(recorded_at)) * 1000) as since
            from (
              select recorded_at from ${sql(t.events)}
              where transaction_id >= pg_snapshot_xmin(pg_current_snapshot())
                ${where(filters)}
              order by transaction_id, position limit ${maxHeldBackCount}
            ) as held`
          if (row === undefined || row.since === null || Number(row.events) === 0) return Option.none()
          const oldest = yield* oldestTransaction(sql)
          return Option.some<HeldBack>({
            events: Number(row.events),
            since: DateTime.unsafeMake(Number(row.since)),
            blocker: Option.map(oldest, describeBlocker)
          })
        })
    }
  })

/** The oldest transaction still running in the cluster, which holds the read horizon back. */
export interface BlockingTransaction {
  readonly pid: number
  readonly transactionId: bigint
  readonly startedAt: Date | null
  readonly state: string | null
  readonly applicationName: string | null
  readonly database: string | null
  /** The first 200 characters of its current or last statement. */
  readonly query: string | null
}

/** The PostgreSQL read horizon and, if any, the transaction holding it back. */
export interface Horizon {
  /** Readers see transactions below this id. */
  readonly xmin: bigint
  readonly oldest: Option.Option<BlockingTransaction>
}

/**
 * Reports the read horizon (PostgreSQL): when readers stall, `oldest` names the backend to look at
 * (or to terminate).
 */
export const horizon: Effect.Effect<Horizon, EventStoreError, SqlClient.SqlClient> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ readonly xmin: string }>`select pg_snapshot_xmin(pg_current_snapshot())::text as xmin`
  return { xmin: BigInt(row!.xmin), oldest: yield* oldestTransaction(sql) }
}).pipe(Effect.mapError(storeError("horizon")))

/** The oldest transaction running in the cluster (PostgreSQL), if any. */
const oldestTransaction = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql<{
      readonly pid: number
      readonly xid: string
      readonly xact_start: Date | null
      readonly state: string | null
      readonly application_name: string | null
      readonly datname: string | null
      readonly query: string | null
    }>`select pid, backend_xid::text as xid, xact_start, state, application_name, datname, left(query, 200) as query
       from pg_stat_activity where backend_xid is not null order by age(backend_xid) desc limit 1`,
    (rows) =>
      Option.map(Option.fromNullable(rows[0]), (o): BlockingTransaction => ({
        pid: o.pid,
        transactionId: BigInt(o.xid),
        startedAt: o.xact_start,
        state: o.state,
        applicationName: o.application_name,
        database: o.datname,
        query: o.query
      }))
  )

/** A blocking transaction in one line, for statuses and logs. */
const describeBlocker = (t: BlockingTransaction): string =>
  `backend ${t.pid}` +
  (t.applicationName ? ` (${t.applicationName})` : "") +
  (t.state === null ? "" : `, ${t.state}`) +
  (t.startedAt === null ? "" : `, in a transaction since ${t.startedAt.toISOString()}`) +
  (t.query ? `: ${t.query}` : "")
