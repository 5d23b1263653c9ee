/**
 * The SQL checkpoint store (PostgreSQL, SQLite, MySQL/MariaDB), in the same database and under the same
 * table prefix or schema as the event store, so a projection's read model, its checkpoint and its dead
 * letters commit in one transaction (exactly-once effects, see `CheckpointStore`).
 *
 * A partition's row holds its checkpoint and its lease; every lease change and commit is one conditional
 * `update` on it (owner, fencing token and expected checkpoint must all still hold), so a worker fenced
 * off mid-batch has its whole transaction rolled back. Operators' requests are rows too (a rebuild request,
 * a retry flag on a dead letter), taken by deleting them in the transaction that carries them out.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import {
  CheckpointConflict,
  CheckpointStore,
  CheckpointStoreError,
  type DeadLetter,
  DeadLetterNotFound,
  type Lease,
  LeaseLost,
  PartitionCountMismatch,
  type ProjectionId,
  type ProjectionInfo,
  ProjectionNotFound
} from "../CheckpointStore.js"
import * as Event from "../Event.js"
import { saysTransient } from "../internal/transient.js"
import * as Classify from "./classify.js"
import * as Dialect from "./internal/dialect.js"
import { migrate, type TableOptions, tables } from "./migrations.js"
import { withTransaction } from "./transaction.js"

/** Options of {@link make}. */
export interface Options extends TableOptions {
  /** Create or upgrade the tables when the store starts; default true. */
  readonly migrate?: boolean
}

interface PartitionRow {
  readonly partition: number
  readonly transaction_id: string | number
  readonly position: string | number
  readonly owner: string | null
  readonly lease_token: string | number
  readonly lease_expires_at: string | number
  readonly live: number
}

interface DeadLetterRow {
  readonly id: string | number
  readonly version: number
  readonly partition: number
  readonly event: string
  readonly error: string
  readonly dead_at: string | number
  readonly retry_requested: number | string
}

const EventJson = Schema.parseJson(Event.RecordedEvent)
const encodeEvent = Schema.encodeSync(EventJson)
const decodeEvent = Schema.decodeUnknownSync(EventJson)

/** Builds the store on the `SqlClient` in context. */
export const make = (
  options: Options = {}
): Effect.Effect<CheckpointStore["Type"], CheckpointStoreError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const t = yield* tables(options)
    if (options.migrate !== false) yield* migrate(t, "projections")
    const failWith = (operation: string) => (cause: SqlError | unknown) =>
      new CheckpointStoreError({
        operation,
        cause,
        transient: Classify.isTransient(cause),
        aborted: Classify.isAbortedTransaction(cause)
      })
    const dialect = yield* Dialect.of(sql)
    // a reserved word in MySQL, so always quoted
    const partitionColumn = sql("partition")
    const where = (id: ProjectionId, partition: number) =>
      sql`projection = ${id.name} and version = ${id.version} and ${partitionColumn} = ${partition}`
    const rowColumns = sql`${partitionColumn}, transaction_id, position, owner, lease_token, lease_expires_at, live`

    const held = (lease: Lease) =>
      sql`${where(lease.projection, lease.partition)} and owner = ${lease.owner} and lease_token = ${lease.token}`
    const lost = (lease: Lease) =>
      new LeaseLost({ projection: lease.projection.name, partition: lease.partition, owner: lease.owner })

    /** Fails unless exactly partitions 0..count-1 are stored, each recorded with `count`. */
    const checkCount = (id: ProjectionId, count: number) =>
      Effect.flatMap(
        sql<{ readonly low: number | null; readonly high: number | null; readonly row_count: number | string }>`
          select min(partitions) as low, max(partitions) as high, count(*) as row_count from ${sql(t.checkpoints)}
          where projection = ${id.name} and version = ${id.version}`,
        ([row]) => {
          const rows = Number(row!.row_count)
          return rows === 0 || (row!.low === count && row!.high === count && rows === count)
            ? Effect.succeed(rows)
            : Effect.fail(
                new PartitionCountMismatch({
                  projection: id.name,
                  stored: row!.low === count ? row!.high! : row!.low!,
                  configured: count
                })
              )
        }
      )

    const register: CheckpointStore["Type"]["register"] = (id, count) =>
      Effect.gen(function* () {
        // checked before inserting, so a larger count cannot add partitions to a stored projection
        if ((yield* checkCount(id, count)) > 0) return
        const now = yield* Clock.currentTimeMillis
        yield* sql`insert into ${sql(t.checkpoints)} ${sql.insert(
          Array.from({ length: count }, (_, partition) => ({
            projection: id.name,
            version: id.version,
            partition,
            partitions: count,
            transaction_id: 0,
            position: 0,
            owner: null,
            lease_token: 0,
            lease_expires_at: 0,
            live: 0,
            updated_at: now
          }))
        )} ${dialect.onConflictIgnore(["projection", "version", "partition"])}`
        // a concurrent registration with another count shows now
        yield* checkCount(id, count)
      }).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(failWith("register")(e))))

    const heartbeat: CheckpointStore["Type"]["heartbeat"] = (id, worker, ttl) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const workers = (rows: ReadonlyArray<{ readonly workers: number | string }>) => Number(rows[0]!.workers)
        const ofProjection = sql`projection = ${id.name} and version = ${id.version}`
        yield* sql`delete from ${sql(t.projectionWorkers)} where ${ofProjection} and expires_at < ${now}`
        yield* sql`insert into ${sql(t.projectionWorkers)} (projection, version, worker_id, expires_at)
          values (${id.name}, ${id.version}, ${worker}, ${now + ttl}) ${dialect.onConflictUpdate(
            ["projection", "version", "worker_id"],
            ["expires_at"]
          )}`
        return workers(
          yield* sql<{ readonly workers: number | string }>`
            select count(*) as workers from ${sql(t.projectionWorkers)} where ${ofProjection}`
        )
      }).pipe(Effect.mapError(failWith("heartbeat")))

    const claim: CheckpointStore["Type"]["claim"] = (id, partition, owner, ttl) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const update = sql`update ${sql(t.checkpoints)}
          set owner = ${owner}, lease_token = lease_token + 1, lease_expires_at = ${now + ttl}, updated_at = ${now}
          where ${where(id, partition)} and (owner is null or owner = ${owner} or lease_expires_at < ${now})`
        const rows = yield* dialect.updateReturning(
          update,
          rowColumns,
          sql<PartitionRow>`select ${rowColumns} from ${sql(t.checkpoints)} where ${where(id, partition)}`
        )
        return Option.map(Option.fromNullable(rows[0]), (row) => ({
          lease: { projection: id, partition, owner, token: Number(row.lease_token) },
          checkpoint: checkpointOf(row)
        }))
      }).pipe(Effect.mapError(failWith("claim")))

    const renew: CheckpointStore["Type"]["renew"] = (lease, ttl) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const n = yield* dialect.matched(
          sql`update ${sql(t.checkpoints)} set lease_expires_at = ${now + ttl} where ${held(lease)}`
        )
        if (n === 0) return yield* lost(lease)
      }).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(failWith("renew")(e))))

    const release: CheckpointStore["Type"]["release"] = (lease) =>
      sql`update ${sql(t.checkpoints)} set owner = null, lease_expires_at = 0 where ${held(lease)}`.pipe(
        Effect.asVoid,
        Effect.mapError(failWith("release"))
      )

    const commit: CheckpointStore["Type"]["commit"] = (lease, expected, next, ttl) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const n = yield* dialect.matched(
          sql`update ${sql(t.checkpoints)}
          set transaction_id = ${String(next.transaction)}, position = ${String(next.position)},
              lease_expires_at = ${now + ttl}, updated_at = ${now}
          where ${held(lease)}
            and transaction_id = ${String(expected.transaction)} and position = ${String(expected.position)}`
        )
        if (n > 0) return
        // as committed now, like the update saw it: a batch's transaction's snapshot (MySQL's REPEATABLE READ)
        // may still show a lease since taken over
        const [row] = yield* sql<{ readonly n: number | string }>`
          select count(*) as n from ${sql(t.checkpoints)} where ${held(lease)}${dialect.committedNow}`
        return yield* Number(row!.n) === 0
          ? lost(lease)
          : new CheckpointConflict({ projection: lease.projection.name, partition: lease.partition })
      }).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(failWith("commit")(e))))

    const markLive: CheckpointStore["Type"]["markLive"] = (lease, at) =>
      sql`update ${sql(t.checkpoints)} set live = 1 where ${held(lease)}
        and transaction_id = ${String(at.transaction)} and position = ${String(at.position)}`.pipe(
        Effect.asVoid,
        Effect.mapError(failWith("markLive"))
      )

    const deadLetter: CheckpointStore["Type"]["deadLetter"] = (letter) =>
      Effect.try({ try: () => encodeEvent(letter.event), catch: failWith("deadLetter") }).pipe(
        Effect.flatMap(
          (event) =>
            sql`insert into ${sql(t.deadLetters)} ${sql.insert({
              projection: letter.projection.name,
              version: letter.projection.version,
              partition: letter.partition,
              event,
              error: letter.error,
              dead_at: DateTime.toEpochMillis(letter.at),
              retry_requested: 0
            })}`
        ),
        Effect.asVoid,
        Effect.mapError(failWith("deadLetter"))
      )

    const transaction: CheckpointStore["Type"]["transaction"] = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.mapError(withTransaction(sql)(effect), (e) =>
        e instanceof SqlError ? failWith("transaction")(e) : (e as E)
      )

    /** A failure of the work in {@link transaction}: ours say it, the driver's are classified here. */
    const isTransient = (error: unknown): boolean =>
      saysTransient(error) || (error instanceof SqlError && Classify.isTransient(error))

    const requested = (id: ProjectionId) =>
      sql`(select count(*) from ${sql(t.rebuildRequests)} where projection = ${id.name} and version = ${id.version})`

    const partitions: CheckpointStore["Type"]["partitions"] = (id) =>
      sql<PartitionRow & { readonly pending_rebuild: number | string }>`
        select ${rowColumns}, ${requested(id)} as pending_rebuild
        from ${sql(t.checkpoints)} where projection = ${id.name} and version = ${id.version} order by ${partitionColumn}`.pipe(
        Effect.map((rows) =>
          rows.map((row) => ({
            partition: row.partition,
            checkpoint: checkpointOf(row),
            owner: Option.fromNullable(row.owner),
            leaseExpiresAt: Number(row.lease_expires_at),
            live: Number(row.live) === 1,
            pendingRebuild: Number(row.pending_rebuild) > 0
          }))
        ),
        Effect.mapError(failWith("partitions"))
      )

    const reset: CheckpointStore["Type"]["reset"] = (id) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        yield* sql`update ${sql(t.checkpoints)} set transaction_id = 0, position = 0, live = 0, updated_at = ${now}
          where projection = ${id.name} and version = ${id.version}`
        yield* sql`delete from ${sql(t.deadLetters)} where projection = ${id.name} and version = ${id.version}`
      }).pipe(withTransaction(sql), Effect.mapError(failWith("reset")))

    const letterColumns = sql`id, version, ${partitionColumn}, event, error, dead_at, retry_requested`
    const lettersOf = (name: string, operation: string) => (rows: ReadonlyArray<DeadLetterRow>) =>
      Effect.try({
        try: () =>
          rows.map((row): DeadLetter => ({
            id: Number(row.id),
            projection: { name, version: row.version },
            partition: row.partition,
            event: decodeEvent(row.event),
            error: row.error,
            at: DateTime.unsafeMake(Number(row.dead_at)),
            retryRequested: Number(row.retry_requested) === 1
          })),
        catch: failWith(operation)
      })

    const deadLetters: CheckpointStore["Type"]["deadLetters"] = (name) =>
      sql<DeadLetterRow>`select ${letterColumns} from ${sql(t.deadLetters)} where projection = ${name} order by id`.pipe(
        Effect.mapError(failWith("deadLetters")),
        Effect.flatMap(lettersOf(name, "deadLetters"))
      )

    const letter = (name: string, id: number) => sql`projection = ${name} and id = ${id}`

    /** Runs an update or delete of one dead letter; fails if it matched none. */
    const onLetter = (operation: string, name: string, id: number, statement: Statement.Statement<unknown>) =>
      dialect.matched(statement).pipe(
        Effect.mapError(failWith(operation)),
        Effect.flatMap((n) => (n > 0 ? Effect.void : Effect.fail(new DeadLetterNotFound({ projection: name, id }))))
      )

    const activeVersion: CheckpointStore["Type"]["activeVersion"] = (name) =>
      sql<{ readonly active_version: number }>`
        select active_version from ${sql(t.projections)} where projection = ${name}`.pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), (row) => row.active_version)),
        Effect.mapError(failWith("activeVersion"))
      )

    // the row if it is new, then the version if it is newer: the active version only ever grows
    const activate: CheckpointStore["Type"]["activate"] = (id) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.zipRight(
          sql`insert into ${sql(t.projections)} (projection, active_version, updated_at)
            values (${id.name}, ${id.version}, ${now}) ${dialect.onConflictIgnore(["projection"])}`,
          sql`update ${sql(t.projections)} set active_version = ${id.version}, updated_at = ${now}
            where projection = ${id.name} and active_version < ${id.version}`
        )
      ).pipe(Effect.asVoid, Effect.mapError(failWith("activate")))

    const leave: CheckpointStore["Type"]["leave"] = (id, worker) =>
      sql`delete from ${sql(t.projectionWorkers)}
        where projection = ${id.name} and version = ${id.version} and worker_id = ${worker}`.pipe(
        Effect.asVoid,
        Effect.mapError(failWith("leave"))
      )

    const projections: CheckpointStore["Type"]["projections"] = Effect.gen(function* () {
      const registered = yield* sql<{
        readonly projection: string
        readonly version: number
        readonly partitions: number
      }>`select projection, version, max(partitions) as partitions from ${sql(t.checkpoints)}
         group by projection, version order by projection, version`
      const active = new Map(
        (yield* sql<{ readonly projection: string; readonly active_version: number }>`
          select projection, active_version from ${sql(t.projections)}`).map((row) => [
          row.projection,
          row.active_version
        ])
      )
      const pending = new Set(
        (yield* sql<{ readonly projection: string; readonly version: number }>`
          select projection, version from ${sql(t.rebuildRequests)}`).map(
          (row) => `${row.version}\u0000${row.projection}`
        )
      )
      return registered.map((row): ProjectionInfo => ({
        id: { name: row.projection, version: row.version },
        partitions: Number(row.partitions),
        active: active.get(row.projection) === row.version,
        pendingRebuild: pending.has(`${row.version}\u0000${row.projection}`)
      }))
    }).pipe(Effect.mapError(failWith("projections")))

    const requestRebuild: CheckpointStore["Type"]["requestRebuild"] = (id) =>
      Effect.gen(function* () {
        const [row] = yield* sql<{ readonly n: number | string }>`select count(*) as n from ${sql(t.checkpoints)}
          where projection = ${id.name} and version = ${id.version}`
        if (Number(row!.n) === 0) return yield* new ProjectionNotFound({ projection: id.name, version: id.version })
        const now = yield* Clock.currentTimeMillis
        yield* sql`insert into ${sql(t.rebuildRequests)} ${sql.insert({
          projection: id.name,
          version: id.version,
          requested_at: now
        })} ${dialect.onConflictIgnore(["projection", "version"])}`
      }).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(failWith("requestRebuild")(e))))

    const takeRebuild: CheckpointStore["Type"]["takeRebuild"] = (id) =>
      dialect
        .matched(sql`delete from ${sql(t.rebuildRequests)} where projection = ${id.name} and version = ${id.version}`)
        .pipe(
          Effect.map((n) => n > 0),
          Effect.mapError(failWith("takeRebuild"))
        )

    const discardDeadLetter: CheckpointStore["Type"]["discardDeadLetter"] = (name, id) =>
      onLetter("discardDeadLetter", name, id, sql`delete from ${sql(t.deadLetters)} where ${letter(name, id)}`)

    const retryDeadLetter: CheckpointStore["Type"]["retryDeadLetter"] = (name, id) =>
      onLetter(
        "retryDeadLetter",
        name,
        id,
        sql`update ${sql(t.deadLetters)} set retry_requested = 1 where ${letter(name, id)}`
      )

    const retriesRequested: CheckpointStore["Type"]["retriesRequested"] = (id) =>
      sql<DeadLetterRow>`select ${letterColumns} from ${sql(t.deadLetters)}
        where projection = ${id.name} and version = ${id.version} and retry_requested = 1 order by id`.pipe(
        Effect.mapError(failWith("retriesRequested")),
        Effect.flatMap(lettersOf(id.name, "retriesRequested"))
      )

    const takeRetry: CheckpointStore["Type"]["takeRetry"] = (name, id) =>
      dialect.matched(sql`delete from ${sql(t.deadLetters)} where ${letter(name, id)} and retry_requested = 1`).pipe(
        Effect.map((n) => n > 0),
        Effect.mapError(failWith("takeRetry"))
      )

    const retryFailed: CheckpointStore["Type"]["retryFailed"] = (name, id, error, at) =>
      sql`update ${sql(t.deadLetters)}
        set error = ${error}, dead_at = ${DateTime.toEpochMillis(at)}, retry_requested = 0
        where ${letter(name, id)}`.pipe(Effect.asVoid, Effect.mapError(failWith("retryFailed")))

    return CheckpointStore.of({
      register,
      heartbeat,
      leave,
      claim,
      renew,
      release,
      commit,
      markLive,
      deadLetter,
      transaction,
      isTransient,
      partitions,
      reset,
      deadLetters,
      activeVersion,
      activate,
      projections,
      requestRebuild,
      takeRebuild,
      discardDeadLetter,
      retryDeadLetter,
      retriesRequested,
      takeRetry,
      retryFailed
    })
  }).pipe(
    Effect.catchTag("EventStoreError", (error) =>
      Effect.fail(
        new CheckpointStoreError({ operation: error.operation, cause: error.cause, transient: error.transient })
      )
    )
  )

/** The SQL checkpoint store as a Layer; needs a `SqlClient`. */
export const layer = (options: Options = {}): Layer.Layer<CheckpointStore, CheckpointStoreError, SqlClient.SqlClient> =>
  Layer.effect(CheckpointStore, make(options))

const checkpointOf = (row: PartitionRow): Event.Checkpoint => ({
  transaction: BigInt(row.transaction_id),
  position: BigInt(row.position)
})
