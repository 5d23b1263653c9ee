/**
 * The SQL saga store (PostgreSQL, SQLite, MySQL/MariaDB), in the same database and under the same table prefix or
 * schema as the event store, so an instance's save, its timeouts and the saga's projection checkpoint
 * commit in one transaction. Saves are conditional on the version read (optimistic concurrency). On
 * PostgreSQL and MySQL each input locks its instance's row (`FOR UPDATE`, a placeholder row for a new instance)
 * before reacting, and a due timeout is claimed (`FOR UPDATE SKIP LOCKED`) after its instance, so
 * several processes can run the scheduler, each timeout is delivered by one, and an event and a timeout
 * of one instance never react at once (SQLite has a single writer).
 *
 * **Gotchas**: on SQLite the commands a saga sends join the saga's transaction (its one connection is
 * busy with it), so they commit, or roll back, with the saga's state.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import {
  type Failure,
  type InstanceSummary,
  SagaConflict,
  SagaStore,
  SagaStoreError,
  type Status,
  type StoredCommand
} from "../SagaStore.js"
import { pageSize } from "../internal/pageSize.js"
import * as Classify from "./classify.js"
import * as Dialect from "./internal/dialect.js"
import { migrate, type TableOptions, tables } from "./migrations.js"
import { withTransaction } from "./transaction.js"

/** Options of {@link make}. */
export interface Options extends TableOptions {
  /** Create or upgrade the tables when the store starts; default true. */
  readonly migrate?: boolean
}

interface InstanceRow {
  readonly version: number
  readonly status: Status
  readonly state: string
  readonly compensations: string
  readonly error: string | null
  readonly updated_at: string | number
}

interface TimeoutRow {
  readonly saga: string
  readonly instance: string
  readonly name: string
  readonly due_at: string | number
}

/** Builds the store on the `SqlClient` in context. */
export const make = (options: Options = {}): Effect.Effect<SagaStore["Type"], SagaStoreError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const t = yield* tables(options)
    if (options.migrate !== false) yield* migrate(t, "sagas")
    const failWith =
      (operation: string) =>
      (cause: unknown, transient = Classify.isTransient(cause)) =>
        new SagaStoreError({ operation, cause, transient })
    const dialect = yield* Dialect.of(sql)
    // several connections (PostgreSQL, MySQL) need row locks; SQLite runs one transaction at a time
    const concurrent = dialect.concurrentTransactions

    // under the instance's lock, what is committed now, not the transaction's snapshot (MySQL)
    const latest = dialect.committedNow

    /** A version-0 placeholder row for a new instance (see `lock`); nothing if the row exists. */
    const placeholder = (saga: string, instance: string, now: number) =>
      sql`insert into ${sql(t.sagaInstances)} ${sql.insert({
        saga,
        instance,
        version: 0,
        status: "running",
        state: "null",
        compensations: "[]",
        error: null,
        updated_at: now
      })} ${dialect.onConflictIgnore(["saga", "instance"])}`
    const toTimeout = (row: TimeoutRow) => ({
      saga: row.saga,
      instance: row.instance,
      name: row.name,
      dueAt: Number(row.due_at)
    })

    // commits on its own where commands do (see `outside`)
    const outside = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      concurrent
        ? (Effect.mapInputContext(effect as Effect.Effect<A, E, never>, (context: Context.Context<R>) =>
            Context.omit(SqlClient.TransactionConnection)(context)
          ) as Effect.Effect<A, E, R>)
        : effect

    return SagaStore.of({
      load: (saga, instance) =>
        sql<InstanceRow>`select version, status, state, compensations, error, updated_at from ${sql(t.sagaInstances)}
          where saga = ${saga} and instance = ${instance} and version > 0${latest}`.pipe(
          Effect.flatMap((rows) =>
            Option.match(Option.fromNullable(rows[0]), {
              onNone: () => Effect.succeedNone,
              onSome: (row) =>
                // a row that is not JSON is corrupt, not unavailable: a defect, so that the input is poison (the
                // saga's policy) as with a state that does not decode, instead of retried forever
                Effect.try({
                  try: () =>
                    Option.some({
                      version: row.version,
                      status: row.status,
                      state: JSON.parse(row.state) as unknown,
                      compensations: JSON.parse(row.compensations) as ReadonlyArray<StoredCommand>,
                      error: Option.fromNullable(row.error),
                      updatedAt: Number(row.updated_at)
                    }),
                  catch: (cause) => cause
                }).pipe(
                  Effect.orDieWith(
                    (cause) => new Error(`saga ${saga} instance ${instance} is stored corrupt: ${String(cause)}`)
                  )
                )
            })
          ),
          Effect.mapError(failWith("load"))
        ),
      save: (saga, instance, expectedVersion, next, changes) =>
        Effect.gen(function* () {
          const now = yield* Clock.currentTimeMillis
          const row = {
            status: next.status,
            state: JSON.stringify(next.state),
            compensations: JSON.stringify(next.compensations),
            error: Option.getOrNull(next.error),
            updated_at: now
          }
          // a new instance may have a placeholder row (version 0, see `lock`): made if missing, then filled
          if (expectedVersion === 0) yield* placeholder(saga, instance, now)
          const saved = yield* dialect.matched(
            sql`update ${sql(t.sagaInstances)} set version = ${expectedVersion + 1},
            status = ${row.status}, state = ${row.state}, compensations = ${row.compensations}, error = ${row.error},
            updated_at = ${now}
            where saga = ${saga} and instance = ${instance} and version = ${expectedVersion}`
          )
          if (saved !== 1) return yield* new SagaConflict({ saga, instance, expected: expectedVersion })
          if (changes.cancel.length > 0) {
            // only the timeouts there are, by key: deleting missing rows would lock gaps (MySQL)
            const scheduled = yield* sql<{ readonly name: string }>`select name from ${sql(t.sagaTimeouts)}
              where saga = ${saga} and instance = ${instance} and name in ${sql.in(changes.cancel)}`
            if (scheduled.length > 0) {
              yield* sql`delete from ${sql(t.sagaTimeouts)} where saga = ${saga} and instance = ${instance}
                and name in ${sql.in(scheduled.map((row) => row.name))}`
            }
          }
          if (next.status !== "running") {
            // by key, as for timeouts (no gap locks on MySQL)
            const failed = yield* sql<{ readonly cause: string }>`select cause from ${sql(t.sagaFailures)}
              where saga = ${saga} and instance = ${instance}`
            if (failed.length > 0) {
              yield* sql`delete from ${sql(t.sagaFailures)} where saga = ${saga} and instance = ${instance}
                and cause in ${sql.in(failed.map((row) => row.cause))}`
            }
          }
          for (const { dueAt, name } of changes.schedule) {
            yield* sql`insert into ${sql(t.sagaTimeouts)} ${sql.insert({ saga, instance, name, due_at: dueAt })} ${dialect.onConflictUpdate(
              ["saga", "instance", "name"],
              ["due_at"]
            )}`
          }
          return expectedVersion + 1
        }).pipe(
          withTransaction(sql),
          Effect.catchIf(
            (e): e is SqlError => e instanceof SqlError,
            (e) => Effect.fail(failWith("save")(e))
          )
        ),
      timeouts: (saga, instance) =>
        sql<TimeoutRow>`select saga, instance, name, due_at from ${sql(t.sagaTimeouts)}
          where saga = ${saga} and instance = ${instance} order by due_at${latest}`.pipe(
          Effect.map((rows) => rows.map(toTimeout)),
          Effect.mapError(failWith("timeouts"))
        ),
      due: (saga, limit) =>
        Effect.flatMap(
          Clock.currentTimeMillis,
          (now) => sql<TimeoutRow>`select saga, instance, name, due_at from ${sql(t.sagaTimeouts)}
            where saga = ${saga} and due_at <= ${now} order by due_at limit ${limit}`
        ).pipe(
          Effect.map((rows) => rows.map(toTimeout)),
          Effect.mapError(failWith("due"))
        ),
      claim: (timeout) =>
        sql<TimeoutRow>`select saga, instance, name, due_at from ${sql(t.sagaTimeouts)}
          where saga = ${timeout.saga} and instance = ${timeout.instance} and name = ${timeout.name}
            and due_at = ${timeout.dueAt}
          ${dialect.forUpdateSkipLocked}`.pipe(
          Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), toTimeout)),
          Effect.mapError(failWith("claim"))
        ),
      // a row lock on the instance (a placeholder row first if it is new), held to the transaction's end;
      // SQLite runs one transaction at a time, which is lock enough
      lock: (saga, instance) =>
        concurrent
          ? Effect.flatMap(Clock.currentTimeMillis, (now) =>
              Effect.zipRight(
                placeholder(saga, instance, now),
                sql`select version from ${sql(t.sagaInstances)} where saga = ${saga} and instance = ${instance}${dialect.forUpdate}`
              )
            ).pipe(Effect.asVoid, Effect.mapError(failWith("lock")))
          : Effect.void,
      transaction: <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        Effect.mapError(withTransaction(sql)(effect), (e) =>
          e instanceof SqlError ? failWith("transaction")(e) : (e as E)
        ),
      // commands a saga sends commit on their own on PostgreSQL; SQLite has a single connection, which
      // the saga's transaction holds: there they join it and commit with the saga's state
      outside,
      recordFailure: (saga, instance, cause, failure) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          outside(
            sql`insert into ${sql(t.sagaFailures)} ${sql.insert({
              saga,
              instance,
              cause,
              error: failure.error,
              compensations: JSON.stringify(failure.compensations),
              recorded_at: now
            })} ${dialect.onConflictIgnore(["saga", "instance", "cause"])}`
          )
        ).pipe(Effect.asVoid, Effect.mapError(failWith("recordFailure"))),
      // a plain read: a record is written (on its own) by an earlier try of the input, before this transaction
      // began; a locking read would hold a gap lock (MySQL) that this try's own record would wait for
      failureOf: (saga, instance, cause) =>
        sql<{ readonly error: string; readonly compensations: string }>`select error, compensations
          from ${sql(t.sagaFailures)} where saga = ${saga} and instance = ${instance} and cause = ${cause}`.pipe(
          Effect.flatMap((rows) =>
            Option.match(Option.fromNullable(rows[0]), {
              onNone: () => Effect.succeedNone,
              onSome: (row) =>
                Effect.try((): Option.Option<Failure> =>
                  Option.some({
                    error: row.error,
                    compensations: JSON.parse(row.compensations) as ReadonlyArray<StoredCommand>
                  })
                )
            })
          ),
          Effect.mapError(failWith("failureOf"))
        ),
      // version 0: a placeholder row of an instance whose first input did not commit (see `lock`)
      instances: (saga, options) =>
        Effect.flatMap(
          Either.match(pageSize(options?.limit, 100), {
            onLeft: (why) => Effect.fail(failWith("instances")(new Error(why), false)),
            onRight: Effect.succeed
          }),
          (limit) =>
            sql<Omit<InstanceRow, "state" | "compensations"> & { readonly instance: string }>`
            select instance, version, status, error, updated_at from ${sql(t.sagaInstances)}
            where saga = ${saga} and version > 0
              ${options?.status === undefined ? sql`` : sql`and status = ${options.status}`}
              ${options?.after === undefined ? sql`` : sql`and instance > ${options.after}`}
            order by instance limit ${limit}`.pipe(
              Effect.map((rows) =>
                rows.map((row): InstanceSummary => ({
                  id: row.instance,
                  version: row.version,
                  status: row.status,
                  updatedAt: Number(row.updated_at),
                  error: Option.fromNullable(row.error)
                }))
              ),
              Effect.mapError(failWith("instances"))
            )
        )
    })
  }).pipe(
    Effect.catchTag("EventStoreError", (error) =>
      Effect.fail(new SagaStoreError({ operation: error.operation, cause: error.cause, transient: error.transient }))
    )
  )

/** The SQL saga store as a Layer; needs a `SqlClient`. */
export const layer = (options: Options = {}): Layer.Layer<SagaStore, SagaStoreError, SqlClient.SqlClient> =>
  Layer.effect(SagaStore, make(options))
