/**
 * The SQL event store: the `EventStore` contract on `@effect/sql`'s `SqlClient`, for PostgreSQL
 * (production), SQLite (embedded default) and MySQL/MariaDB, on the client a backend's entry point provides
 * (`effect-eventsourcing/pg`, `/sqlite`, `/mysql`).
 *
 * It keeps every guarantee of the contract (how, on each backend: {@link make}), returns data exactly as
 * appended, refuses an append its backend could not take before sending it, and fails typed, inside a
 * caller's transaction too (a guarded client's: see `SqlTransactions`). Appends join an enclosing
 * `sql.withTransaction`, so user writes commit atomically with events. It never alters the client it is
 * given. Not here: the tables (`migrations`) and PostgreSQL's append functions (`pg/internal/functions`).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Event from "../Event.js"
import {
  type AllPage,
  type AppendOptions,
  type AppendResult,
  defaultCommandTtl,
  defaultLimits,
  EventStore,
  EventStoreError,
  type HeldBackOptions,
  type Limits,
  type ReadAllOptions,
  type ReadStreamOptions,
  StreamDeleted,
  StreamNotFound,
  type StreamPage
} from "../EventStore.js"
import {
  checkPartition,
  type PreparedAppend,
  prepareAppend,
  readAllSizes,
  resolveDuplicates
} from "../internal/appendPreparation.js"
import { instrument } from "../internal/instrumentedStore.js"
import { storeError } from "./classify.js"
import { migrate, type TableOptions, tables } from "./migrations.js"
import * as Wakeup from "../Wakeup.js"
import * as Metrics from "../Metrics.js"
import * as BackendLimits from "./backendLimits.js"
import * as CommandRecords from "./commandRecords.js"
import * as Ddl from "./internal/ddl.js"
import * as HotPath from "./HotPath.js"
import * as Dialect from "./internal/dialect.js"
import * as StreamLifecycle from "./internal/streamLifecycle.js"
import * as Replication from "../pg/internal/replication.js"
import { guardTransactions, withTransaction } from "./transaction.js"

/** Options of {@link make}. */
export interface Options extends TableOptions {
  /**
   * Size limits of appends; default `EventStore.defaultLimits`. One above what the backend takes is lowered
   * to the backend's, with a logged warning, when the store is built (see "Backend limits" above).
   */
  readonly limits?: Partial<Limits>
  /** Create or upgrade the tables when the store starts; default true. */
  readonly migrate?: boolean
  /** Rows fetched per round trip by `readStream`; default 1,000 (a stream of up to 1,000 events is one query). */
  readonly readPageSize?: number
  /** How long handled commands are remembered; default 7 days. */
  readonly commandTtl?: Duration.DurationInput
  /**
   * Deleting expired command records, in the store's scope: every minute, at most 10,000 per run, by
   * default; `false` leaves them (an expired record is ignored all the same).
   */
  readonly commandPruning?: false | CommandRecords.PruningOptions
  /**
   * Group commit (PostgreSQL and SQLite): concurrent appends (outside a caller's transaction) share round
   * trips and commits, each still checked and committed or refused on its own. On by default; `false` turns
   * it off. `writers` (PostgreSQL only) is how many groups may be in flight at once; SQLite's one
   * connection writes one at a time. `maxBatch`: appends per group (default 32 on PostgreSQL, 64 on SQLite).
   */
  readonly groupCommit?: false | { readonly maxBatch?: number; readonly writers?: number }
}

/**
 * Builds the store on the `SqlClient` in context, migrating its tables first unless told not to. The
 * group-commit writers (PostgreSQL) and the pruning of expired command records live in the scope.
 *
 * - **Appends** are one round trip on PostgreSQL (a server-side function: lock the stream row, check
 *   ids and expected version, insert, bump the version) and one short transaction on SQLite. They join
 *   an enclosing `sql.withTransaction`, so user writes can commit atomically with events. Outside one,
 *   concurrent PostgreSQL appends are grouped (group commit): one round trip and one commit for many,
 *   each in its own subtransaction, so each is checked, committed or refused on its own. A grouped append
 *   that waits more than 50 ms for a lock (its stream's row, held by a caller's transaction that appended
 *   to it and goes on) leaves its group and runs again alone: it cannot hold up the others. On SQLite,
 *   concurrent appends share one transaction, each in a savepoint: one commit (one sync) for the group.
 * - **Unique values** and **handled commands** are stored beside the events, written in the append's
 *   transaction (see `EventStore.AppendOptions`). Expired command records are deleted in the background
 *   (see `Options.commandPruning`).
 * - **Global order without skips.** PostgreSQL hands out positions when rows are inserted but makes them
 *   visible when transactions commit, in another order. Each row records its transaction id
 *   (`pg_current_xact_id()`, xid8); readers only return rows of transactions older than the oldest one
 *   still running (`pg_snapshot_xmin(pg_current_snapshot())`), ordered by (transaction id, position), and
 *   resume after that pair. No commit can later appear before a returned row. SQLite has one writer at a
 *   time, so position order is commit order there and the checkpoint's `transaction` is the position.
 *   MySQL/MariaDB appends take their positions last, under a lock held to their commit, so position
 *   order is commit order there too (see `serialAppend`).
 * - **Idempotent appends** rest on a unique (stream id, event id) key.
 * - **Faithful data**: `data` and `metadata` are stored as the JSON text of the append and read back from
 *   it, key order included (PostgreSQL columns are `json`, not `jsonb`, which reorders keys; query them
 *   with `->`/`->>` as usual, or cast to `jsonb` for containment).
 * - **Reads** are keyset-paginated, so memory stays flat whatever the store's size. Partition filters use a
 *   stored hash of the stream id (`Event.streamHash`).
 * - **Wake-up hints**: with a `Wakeup` in context, each committed append sends one (see `Wakeup`).
 * - **Failures are typed**, inside a caller's transaction too: a lost connection (a terminated backend, a
 *   killed connection, a server restart) fails the append with an `EventStoreError` that says it is
 *   `transient`; a statement the server refuses, with one that says it is not. `@effect/sql` makes a
 *   failed COMMIT or ROLLBACK a defect: the store runs its own transactions on a guarded copy of the
 *   client, which fails with the transaction's own error, or a typed `SqlError` when its COMMIT failed.
 *   The client it is given is left as it is: the caller's `sql.withTransaction` is guarded when the
 *   client is (`Postgres.layer`, `Sqlite.layer`, `Mysql.layer`, or `SqlTransactions.layerGuarded` over a
 *   client of your own); otherwise a lost connection inside it is a defect (see `SqlTransactions`).
 * - **Backend limits**, on top of the configured `EventStore.Limits`, as they apply to the statements the
 *   store sends (see `backendLimits`). Read when the store is built; a configured limit above the backend's
 *   is lowered to it, with a logged warning (not refused: `max_allowed_packet` is the server's setting, and
 *   a store that would not start over it is worse than one refusing the rare append it cannot store). An
 *   append beyond them is refused with `InvalidAppend` (`TooManyEvents` or `EventTooLarge`, its detail
 *   naming the backend's limit) before anything reaches the server.
 *   - SQLite: 3,276 events per append (`SQLITE_MAX_VARIABLE_NUMBER`, 32,766 variables, 10 per event);
 *     1e9 bytes per data or metadata value (`SQLITE_MAX_LENGTH`).
 *   - MySQL/MariaDB: 5,957 events per append (65,535 placeholders per statement, 11 per event); an event
 *     (data + metadata JSON) up to `max_allowed_packet` less 5 KiB (16 MiB on a default MariaDB 10.2+).
 *     An append larger than a packet in all is inserted by several statements, in its one transaction.
 *   - PostgreSQL: no bound on the count (10 bind parameters per append, of 65,535); an append's JSON, with
 *     1 KiB per event, up to 268,435,455 bytes: its events travel as one `jsonb` argument, each payload a
 *     JSON text in it.
 * - **Observability**: an `EventStore.append` span per append, and the append, conflict and read counters
 *   (see `Metrics`); no span per statement.
 *
 * **Gotchas**: on PostgreSQL, a transaction left open anywhere in the cluster holds the read horizon
 * back and stalls every `readAll` reader until it ends. Connections made by `Postgres.layer` end idle
 * transactions after a timeout; {@link horizon} shows the horizon and the oldest running transaction, and
 * `heldBack` the committed events waiting behind it (projection runners report them, see `Projection`).
 * SQLite allows one writing process per database file. After a bulk import, `ANALYZE` the events table
 * (autovacuum does within minutes): with an empty table's statistics PostgreSQL may serve each page of a
 * filtered `readAll` by sorting every matching row.
 */
export const make = (
  options: Options = {}
): Effect.Effect<EventStore["Type"], EventStoreError, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function* () {
    // a guarded copy for the store's own transactions (a failed ROLLBACK or COMMIT is typed, never a
    // defect); the caller's client is left as it is (see `SqlTransactions`)
    const sql = guardTransactions(yield* SqlClient.SqlClient)
    const t = yield* tables(options)
    const dialect = yield* Dialect.of(sql)
    if (options.migrate !== false) yield* migrate(t, "events")
    const commandTtl = Math.round(Duration.toMillis(options.commandTtl ?? defaultCommandTtl))
    if (options.commandPruning !== false) {
      yield* Effect.forkScoped(
        CommandRecords.pruneForever({
          ...options.commandPruning,
          sql,
          dialect,
          tables: t,
          commandTtlMillis: commandTtl
        })
      )
    }
    const wakeup = yield* Effect.serviceOption(Wakeup.Wakeup)
    const backend = yield* Effect.mapError(dialect.limits, storeError("configure"))
    const clamped = yield* BackendLimits.clamp({ ...defaultLimits, ...options.limits }, backend)
    const limits: Limits = clamped.limits
    const pageSize = Math.max(1, options.readPageSize ?? 1000)
    const failWith = (operation: string) => (cause: SqlError) => storeError(operation)(cause)

    /** Positions of events already stored at versions first..first+count-1 (the result of a retried append). */
    const originalResult = (append: PreparedAppend, firstVersion: number) =>
      Effect.map(
        sql<{ readonly position: string | number }>`
          select position from ${sql(t.events)}
          where stream_id = ${append.streamId} and version >= ${firstVersion} and version < ${firstVersion + append.events.length}
          order by version`,
        (rows): AppendResult => ({
          streamId: append.streamId,
          version: firstVersion + append.events.length - 1,
          positions: rows.map((r) => BigInt(r.position))
        })
      )

    const resolveStored = (append: PreparedAppend, stored: ReadonlyMap<string, number>, current: number) =>
      Either.match(
        resolveDuplicates(append, (id) => stored.get(id), current)!,
        {
          onLeft: (error) => Effect.fail(error),
          onRight: ({ firstVersion }) => originalResult(append, firstVersion)
        }
      )

    const hotPath = yield* Effect.serviceOption(HotPath.HotPath)
    const hotTransaction = Option.getOrUndefined(hotPath)?.transaction
    /** The backend's part, chosen once: PostgreSQL's read horizon and append function, or a serial append. */
    const statements: Dialect.EventsDialect = yield* dialect.events({
      tables: t,
      transaction: hotTransaction ?? withTransaction(sql),
      // synchronous statements run inside the hot path's own transactions only
      synchronous: hotTransaction === undefined ? undefined : Option.getOrUndefined(hotPath)?.synchronous,
      commandTtl,
      groupCommit: options.groupCommit,
      limits: backend,
      resolveStored
    })
    const columns = statements.columns

    /**
     * Rows as recorded events. The events of one append share their transaction and its time, so a page
     * reuses the previous row's (immutable) transaction number and time when they repeat, instead of
     * parsing and building them again for every row.
     */
    const toRecorded = (rows: ReadonlyArray<Dialect.EventValues>): Array<Event.RecordedEvent> => {
      let transactionText: string | number | undefined
      let transaction = 0n
      let recordedMillis: number | undefined
      let recordedAt = DateTime.unsafeMake(0)
      return rows.map(
        ([position, streamId, category, version, eventId, type, schemaVersion, data, metadata, recorded, tx]) => {
          const text = tx ?? position
          if (text !== transactionText) {
            transactionText = text
            transaction = BigInt(text)
          }
          if (recorded !== recordedMillis) {
            recordedMillis = recorded
            recordedAt = DateTime.unsafeMake(recorded)
          }
          return {
            eventId,
            type,
            schemaVersion,
            data: statements.json(data),
            metadata: statements.json(metadata) as Event.Metadata,
            streamId: streamId as Event.StreamId,
            category,
            version,
            position: BigInt(position),
            transaction,
            recordedAt
          }
        }
      )
    }

    /** The append, then a wake-up hint for readers if it wrote events (and there is a `Wakeup`). */
    const hinted = <E, R>(appended: Effect.Effect<AppendResult, E, R>) =>
      Option.isNone(wakeup)
        ? appended
        : Effect.tap(appended, (result) => (result.positions.length > 0 ? wakeup.value.notify : Effect.void))

    /** The contract's checks, within the backend's bounds (refused before anything reaches the server). */
    const prepare = (streamId: string, events: ReadonlyArray<Event.EventData>, appendOptions?: AppendOptions) =>
      prepareAppend(streamId, events, appendOptions, limits).pipe(
        Effect.mapError((error) =>
          error._tag === "InvalidAppend" ? BackendLimits.explain(error, backend, clamped) : error
        ),
        Effect.flatMap((prepared) => {
          const refused = BackendLimits.checkAppend(prepared, backend)
          return refused === undefined ? Effect.succeed(prepared) : Effect.fail(refused)
        })
      )

    const append: EventStore["Type"]["append"] = (streamId, events, appendOptions) =>
      Effect.flatMap(prepare(streamId, events, appendOptions), (prepared) =>
        hinted(
          Effect.catchTag(statements.append(prepared), "SqlError", (cause) => Effect.fail(failWith("append")(cause)))
        )
      )

    const versionOf = (streamId: Event.StreamId) =>
      Effect.map(
        sql<{ readonly version: number }>`select version from ${sql(t.streams)} where stream_id = ${streamId}`,
        (rows) => rows[0]?.version ?? 0
      )

    const hot = HotPath.runners(sql, hotPath)
    /**
     * The text of a page of a stream's events from a version on, forward or backward, with its archived
     * events or not (both tables in one statement, so a concurrent archiving is seen whole); a soft-deleted
     * stream's read as none (then its version row says why). Parameters: the stream id, the version and the
     * stream id again per table, then the row count.
     */
    const streamPage = (backward: boolean, archived: boolean) => {
      const from = sql.join(
        " union all ",
        false
      )(
        (archived ? [t.archivedEvents, t.events] : [t.events]).map(
          (table) => sql`select ${columns} from ${sql(table)}
            where stream_id = ${""} and version ${sql.literal(backward ? "<=" : ">=")} ${0}
            and not exists (select 1 from ${sql(t.streams)} s where s.stream_id = ${""} and s.deleted <> 0)`
        )
      )
      return sql`${from} order by version ${sql.literal(backward ? "desc" : "asc")} limit ${0}`.compile()[0]
    }
    const streamPages = {
      forward: streamPage(false, false),
      backward: streamPage(true, false),
      forwardArchived: streamPage(false, true),
      backwardArchived: streamPage(true, true)
    }

    /**
     * The first page of a stream read (and how to read the next), failing as the read does: the stream's
     * version is asked for only when the page is empty (missing, deleted, or nothing from there: truncated,
     * or past its end) or a backward read starts at the end.
     */
    const firstPage = (streamId: string, readOptions: ReadStreamOptions | undefined) =>
      Effect.gen(function* () {
        const id = yield* Event.streamId(streamId)
        // the stream's version, failing when the stream is missing or deleted
        const lastVersion = sql<{ readonly version: number; readonly deleted: number }>`
          select version, deleted from ${sql(t.streams)} where stream_id = ${id}`.pipe(
          Effect.mapError(failWith("readStream")),
          Effect.flatMap(([row]): Effect.Effect<number, StreamNotFound | StreamDeleted> =>
            row === undefined || row.version === 0
              ? Effect.fail(new StreamNotFound({ streamId: id }))
              : row.deleted !== 0
                ? Effect.fail(new StreamDeleted({ streamId: id, hard: row.deleted === Ddl.deletedHard }))
                : Effect.succeed(row.version)
          )
        )
        const backward = readOptions?.direction === "backward"
        const limit = Math.max(1, Math.min(pageSize, readOptions?.maxCount ?? pageSize))
        const from = readOptions?.fromVersion ?? (backward ? yield* lastVersion : 1)
        const archived = readOptions?.includeArchived === true
        const text = archived
          ? backward
            ? streamPages.backwardArchived
            : streamPages.forwardArchived
          : backward
            ? streamPages.backward
            : streamPages.forward
        // a page asks for one row more than it returns: that row, when there is one, starts the next
        // page, and a stream read to its end takes no extra query that finds nothing
        const page = (cursor: number) =>
          hot.anywhere(text, [...(archived ? [id, cursor, id] : []), id, cursor, id, limit + 1], asArrays).pipe(
            Effect.mapError(failWith("readStream")),
            Effect.map((rows: ReadonlyArray<Dialect.EventValues>): StreamPage => ({
              events: toRecorded(rows.length > limit ? rows.slice(0, limit) : rows),
              next: rows.length > limit ? rows[limit]![Dialect.eventColumn.version] : undefined
            }))
          )
        const first = yield* page(from)
        if (first.events.length === 0) yield* lastVersion
        return { first, page }
      })

    const readStream: EventStore["Type"]["readStream"] = (streamId, readOptions) =>
      Stream.unwrap(
        Effect.map(firstPage(streamId, readOptions), ({ first, page }) => {
          const events = Stream.concat(
            Stream.fromIterable(first.events),
            first.next === undefined
              ? Stream.empty
              : Stream.paginateChunkEffect(first.next, (cursor) =>
                  Effect.map(
                    page(cursor),
                    ({ events, next }) => [Chunk.unsafeFromArray(events), Option.fromNullable(next)] as const
                  )
                )
          )
          return readOptions?.maxCount === undefined ? events : Stream.take(events, readOptions.maxCount)
        })
      )

    const readStreamPage: EventStore["Type"]["readStreamPage"] = (streamId, readOptions) =>
      Effect.map(firstPage(streamId, readOptions), ({ first }) => first)

    /** The SQL conditions of `readAll`'s filters (categories, types, partition, tenant). */
    const filtersOf = (options: HeldBackOptions | undefined) => {
      const categories = options?.categories
      const types = options?.types
      const hashes = options?.partition === undefined ? undefined : Event.partitionRange(options.partition)
      return [
        categories === undefined ? undefined : sql`category in ${sql.in(matchable(categories))}`,
        types === undefined ? undefined : sql`type in ${sql.in(matchable(types))}`,
        hashes === undefined ? undefined : sql`stream_hash >= ${hashes.from} and stream_hash < ${hashes.to}`,
        options?.tenant === undefined ? undefined : sql`tenant_id in ${sql.in(matchable([options.tenant]))}`
      ].filter((f) => f !== undefined)
    }

    /**
     * Pages of a `readAll` with these options, or why it is refused. A page's statement runs on the hot
     * path, never prepared: its plan may depend on the filters and the checkpoint.
     */
    const pagesOf = (readOptions: ReadAllOptions | undefined) => {
      const invalid = checkPartition(readOptions?.partition)
      if (invalid !== undefined) return Either.left(invalid)
      const filters = filtersOf(readOptions)
      const page = (after: Event.Checkpoint, size: number): Effect.Effect<AllPage, EventStoreError> =>
        Effect.suspend(() => {
          const [text, params] = statements.readAllPage(after, filters, size).compile()
          return hot.anywhere(text, params, pageOfAll)
        }).pipe(
          Effect.mapError(failWith("readAll")),
          Effect.map((rows) => {
            const events = toRecorded(rows)
            return { events, next: events.length < size ? undefined : Event.checkpointOf(events[events.length - 1]!) }
          })
        )
      return Either.right({ ...readAllSizes(readOptions), page })
    }

    const readAll: EventStore["Type"]["readAll"] = (readOptions) =>
      Either.match(pagesOf(readOptions), {
        onLeft: (invalid) => Stream.fail(invalid),
        onRight: ({ batchSize, page }) => {
          const events = Stream.paginateChunkEffect(readOptions?.after ?? Event.start, (after) =>
            Effect.map(
              page(after, batchSize),
              ({ events, next }) => [Chunk.unsafeFromArray(events), Option.fromNullable(next)] as const
            )
          )
          return readOptions?.maxCount === undefined ? events : Stream.take(events, readOptions.maxCount)
        }
      })

    const readAllPage: EventStore["Type"]["readAllPage"] = (readOptions) =>
      Either.match(pagesOf(readOptions), {
        onLeft: (invalid) => Effect.fail(invalid),
        onRight: ({ page, pageLength }) =>
          pageLength === 0 ? Effect.succeed(emptyPage) : page(readOptions?.after ?? Event.start, pageLength)
      })

    const head: EventStore["Type"]["head"] = statements.head.pipe(
      Effect.mapError(failWith("head")),
      Effect.map(Option.getOrElse(() => Event.start))
    )

    const streamVersion: EventStore["Type"]["streamVersion"] = (streamId) =>
      Effect.flatMap(Event.streamId(streamId), (id) => Effect.mapError(versionOf(id), failWith("streamVersion")))

    const findCommand: EventStore["Type"]["findCommand"] = (commandId) =>
      statements.findCommand(commandId, commandTtl).pipe(
        Effect.mapError(failWith("findCommand")),
        Effect.map(
          Option.map((row) => {
            const { positions, streamId, version } = CommandRecords.toDuplicate(commandId, row)
            return { commandId, streamId: streamId as Event.StreamId, version, positions }
          })
        )
      )

    /** The events committed that readers cannot return yet (PostgreSQL's read horizon, see `readAll`). */
    const heldBack: EventStore["Type"]["heldBack"] = (heldOptions) => {
      const invalid = checkPartition(heldOptions?.partition)
      return invalid !== undefined
        ? Effect.fail(invalid)
        : Effect.mapError(statements.heldBack(filtersOf(heldOptions)), failWith("heldBack"))
    }

    const lifecycle = StreamLifecycle.make({ sql, dialect, tables: t, failWith })

    return EventStore.of(
      instrument({
        append,
        readStream,
        readStreamPage,
        readAll,
        readAllPage,
        head,
        heldBack,
        streamVersion,
        findCommand,
        ...lifecycle
      })
    )
  })

/**
 * The filter values a stored name can equal, never empty (`""` equals no category, type or tenant): a value
 * holding NUL names nothing stored, and PostgreSQL refuses to compare it at all.
 */
const matchable = (values: ReadonlyArray<string>): ReadonlyArray<string> => {
  const kept = values.filter((value) => !value.includes("\u0000"))
  return kept.length > 0 ? kept : [""]
}

const emptyPage: AllPage = { events: [], next: undefined }

/** How event pages run on the hot path: rows as arrays (see `EventValues`). */
const asArrays: HotPath.RunOptions = { arrays: true }

/** How `readAll`'s pages run on the hot path: never prepared (their filters vary), rows as arrays. */
const pageOfAll: HotPath.RunOptions = { prepare: false, arrays: true }

/** Appends per round trip under group commit (PostgreSQL). */
export const appendBatchSize = Metrics.appendBatchSize

export type { PruningOptions } from "./commandRecords.js"

/** The SQL event store as a Layer; needs a `SqlClient` (see `Postgres.layer`, `Sqlite.layer`). */
export const layer = (options: Options = {}): Layer.Layer<EventStore, EventStoreError, SqlClient.SqlClient> =>
  Layer.scoped(EventStore, make(options))

export { type BlockingTransaction, type Horizon, horizon } from "../pg/internal/events.js"

/** Options of {@link makeStandby}: the store's, less what writes. */
export type StandbyOptions = Omit<Options, "migrate" | "commandPruning" | "groupCommit">

/**
 * The store on a PostgreSQL hot standby (the `SqlClient` in context connects to one), for readers that
 * should not load the primary: projection rebuilds and followers, `readAll`, `readStream`. It reads with
 * the same no-skip guarantee as on the primary: the standby's snapshots follow the transactions it replayed,
 * and one assigned on the primary is running on the standby until its commit or abort is replayed, so
 * the read horizon (see {@link make}) holds there too. It migrates nothing and writes nothing: an append,
 * a stream deletion, truncation or archiving, or retention, fails with a permanent `EventStoreError` at
 * once (a standby would
 * refuse it with an error that passes for transient). `replication` reports the standby's lag (see
 * `EventStore.ReplicationLag`); projection runners show it in their status.
 *
 * **Gotchas**: the standby is behind the primary by its replication lag: a reader of it is too, and
 * read-your-writes (`Projection.waitFor`) waits for that as well. The checkpoint store and the read models
 * must be on the primary (a standby is read-only): give the runner this store and a checkpoint store on a
 * client of the primary. The tables must exist (migrated through the primary). A transaction left open on
 * the primary holds the standby's readers back as it does the primary's; `heldBack` counts them, but the
 * blocking backend, on the primary, is not named. After a promotion the store goes on reading (and still
 * refuses writes): build a {@link make} store for writing.
 */
export const makeStandby = (
  options: StandbyOptions = {}
): Effect.Effect<EventStore["Type"], EventStoreError, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function* () {
    const client = yield* SqlClient.SqlClient
    const dialect = yield* Dialect.of(client)
    if (dialect.name !== "PostgreSQL") {
      return yield* new EventStoreError({
        operation: "configure",
        cause: new Error(`a standby store reads a PostgreSQL hot standby, not ${dialect.name}`),
        transient: false
      })
    }
    const store = yield* make({ ...options, migrate: false, commandPruning: false, groupCommit: false })
    const refuse = (operation: string) =>
      Effect.fail(
        new EventStoreError({
          operation,
          cause: new Error("this store reads a hot standby, which is read-only: write through the primary"),
          transient: false
        })
      )
    return EventStore.of({
      ...store,
      append: () => refuse("append"),
      deleteStream: () => refuse("deleteStream"),
      undeleteStream: () => refuse("undeleteStream"),
      hardDeleteStream: () => refuse("hardDeleteStream"),
      truncateStream: () => refuse("truncateStream"),
      archiveStream: () => refuse("archiveStream"),
      applyRetention: () => refuse("applyRetention"),
      replication: Effect.mapError(Replication.lag(client), storeError("replication"))
    })
  })

/** {@link makeStandby} as a Layer; needs a `SqlClient` connected to a PostgreSQL hot standby. */
export const layerStandby = (
  options: StandbyOptions = {}
): Layer.Layer<EventStore, EventStoreError, SqlClient.SqlClient> => Layer.scoped(EventStore, makeStandby(options))
