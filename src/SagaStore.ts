/**
 * Where sagas keep their instances (state, status, the compensations recorded so far) and their
 * durable timeouts. Instances are versioned: a save names the version it read, and fails with
 * {@link SagaConflict} if another save came first (optimistic concurrency).
 *
 * Guarantees of every implementation: a save is atomic with the timeouts it schedules and cancels;
 * `lock` serializes the inputs of an instance; `claim` hands a due timeout to one claimer at a time
 * (SQL: `FOR UPDATE SKIP LOCKED` inside the caller's transaction); inside `transaction` (SQL), saves,
 * timeout changes and the projection checkpoint of the same batch commit together.
 *
 * **Gotchas**: the memory implementation undoes its own writes when a transaction fails (see
 * `CheckpointStore`), not the effects of the commands a saga sent.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as MemoryTransaction from "./internal/memoryTransaction.js"
import { pageSize } from "./internal/pageSize.js"

/** The saga store failed (database unreachable...). Retryable. */
export class SagaStoreError extends Schema.TaggedError<SagaStoreError>()("SagaStoreError", {
  operation: Schema.String,
  cause: Schema.Defect,
  /** Whether the operation may pass if retried as is (a lost connection, a timeout); decided where the failure entered. */
  transient: Schema.optionalWith(Schema.Boolean, { default: () => true })
}) {
  override get message() {
    return `Saga store ${this.operation} failed: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/** Another save of the instance came first; reload and react again. */
export class SagaConflict extends Schema.TaggedError<SagaConflict>()("SagaConflict", {
  saga: Schema.String,
  instance: Schema.String,
  expected: Schema.Int
}) {
  override get message() {
    return `Saga ${this.saga} instance ${this.instance} moved past version ${this.expected}`
  }
}

/** Where an instance is in its life. */
export const Status = Schema.Literal("running", "completed", "compensated", "failed")
export type Status = typeof Status.Type

/** A command as stored: its tag and encoded payload (see `CommandBus`). */
export interface StoredCommand {
  readonly _tag: string
  readonly [field: string]: unknown
}

/** An instance as stored; `state` is the saga state's encoded form. */
export interface StoredInstance {
  readonly version: number
  readonly status: Status
  readonly state: unknown
  /** Compensating commands recorded by completed steps, oldest first (run newest first). */
  readonly compensations: ReadonlyArray<StoredCommand>
  /** Why the instance compensated or failed. */
  readonly error: Option.Option<string>
  readonly updatedAt: number
}

/** A durable timeout: delivered to its instance at `dueAt` (epoch milliseconds) unless cancelled first. */
export interface Timeout {
  readonly saga: string
  readonly instance: string
  readonly name: string
  readonly dueAt: number
}

/**
 * An input that failed for good (a step refused, or the saga gave up), with the compensations its
 * instance had to run then, oldest first: recorded before the first compensation is sent.
 */
export interface Failure {
  readonly error: string
  readonly compensations: ReadonlyArray<StoredCommand>
}

/** An instance as an operator lists it (see `instances`); `load` has the rest. */
export interface InstanceSummary {
  readonly id: string
  readonly version: number
  readonly status: Status
  /** Epoch milliseconds of the last save. */
  readonly updatedAt: number
  /** Why the instance compensated or failed. */
  readonly error: Option.Option<string>
}

/** Options of `instances`. */
export interface InstancesOptions {
  /** Only instances with this status; default all. */
  readonly status?: Status
  /** At most this many (a positive integer); default 100. */
  readonly limit?: number
  /** Only instances whose id sorts after this one: the last id of the previous page. */
  readonly after?: string
}

/** What one save writes besides the instance. */
export interface TimeoutChanges {
  readonly schedule: ReadonlyArray<{ readonly name: string; readonly dueAt: number }>
  readonly cancel: ReadonlyArray<string>
}

/** The saga store service. */
export class SagaStore extends Context.Tag("effect-eventsourcing/SagaStore")<
  SagaStore,
  {
    readonly load: (saga: string, instance: string) => Effect.Effect<Option.Option<StoredInstance>, SagaStoreError>
    /** Saves the instance if it is still at `expectedVersion` (0: new), with its timeout changes. */
    readonly save: (
      saga: string,
      instance: string,
      expectedVersion: number,
      next: Omit<StoredInstance, "version" | "updatedAt">,
      timeouts: TimeoutChanges
    ) => Effect.Effect<number, SagaConflict | SagaStoreError>
    /** The instance's pending timeouts. */
    readonly timeouts: (saga: string, instance: string) => Effect.Effect<ReadonlyArray<Timeout>, SagaStoreError>
    /** Up to `limit` due timeouts of the saga, oldest first (not claimed: see `claim`). */
    readonly due: (saga: string, limit: number) => Effect.Effect<ReadonlyArray<Timeout>, SagaStoreError>
    /**
     * Claims a due timeout until the enclosing transaction ends (SQL: `FOR UPDATE SKIP LOCKED`); none if
     * it is gone (cancelled, fired) or another process holds it. Lock the instance first.
     */
    readonly claim: (timeout: Timeout) => Effect.Effect<Option.Option<Timeout>, SagaStoreError>
    /**
     * Locks the instance against other inputs: until the enclosing transaction ends (SQL: a row lock,
     * taken before any timeout's) or until the scope closes (memory). Every input of an instance is
     * applied under it, so one reacts to what the previous one saved.
     */
    readonly lock: (saga: string, instance: string) => Effect.Effect<void, SagaStoreError, Scope.Scope>
    /** Runs `effect` in one transaction with the store's writes inside it. */
    readonly transaction: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SagaStoreError, R>
    /** Runs `effect` outside any transaction of the store (commands a saga sends commit on their own). */
    readonly outside: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
    /**
     * Records that input `cause` of the instance failed for good, committed on its own like the commands
     * the saga sends (on SQLite it joins the transaction, as they do); the first record of an input stands.
     * If the input's batch does not commit, the input comes again and fails the same way, with the same
     * compensations, instead of being decided again: a step that failed may succeed the second time,
     * after its compensations ran. A save that ends the instance deletes its records.
     */
    readonly recordFailure: (
      saga: string,
      instance: string,
      cause: string,
      failure: Failure
    ) => Effect.Effect<void, SagaStoreError>
    /** The failure recorded for input `cause` of the instance, if any. */
    readonly failureOf: (
      saga: string,
      instance: string,
      cause: string
    ) => Effect.Effect<Option.Option<Failure>, SagaStoreError>
    /**
     * A page of the saga's instances, by id (in the database's order of text: byte order on SQLite and
     * MySQL, the database's collation on PostgreSQL), for operators. The next page starts `after` the last
     * id of this one; a page shorter than `limit` is the last.
     *
     * **Gotchas**: pages are read one by one, not from one snapshot: an instance saved between two pages
     * may show with another status than the filter's, or in neither page if its status changed.
     */
    readonly instances: (
      saga: string,
      options?: InstancesOptions
    ) => Effect.Effect<ReadonlyArray<InstanceSummary>, SagaStoreError>
  }
>() {}

// ---------------------------------------------------------------------------------------------------
// memory implementation
// ---------------------------------------------------------------------------------------------------

/** An in-memory saga store (see the module's Gotchas). */
export const makeMemory: Effect.Effect<SagaStore["Type"]> = Effect.sync(() => {
  const instances = new Map<string, StoredInstance>()
  const timeouts = new Map<string, Timeout>()
  // outside the transactions' undo (see `recordFailure`), but for the delete when an instance ends
  const failures = new Map<string, Map<string, Failure>>()
  const locks = new Map<string, Effect.Semaphore>()
  const key = (...parts: ReadonlyArray<string>) => parts.join("\u0000")
  return SagaStore.of({
    load: (saga, instance) => Effect.sync(() => Option.fromNullable(instances.get(key(saga, instance)))),
    save: (saga, instance, expectedVersion, next, changes) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const current = instances.get(key(saga, instance))
        if ((current?.version ?? 0) !== expectedVersion) {
          return Effect.fail(new SagaConflict({ saga, instance, expected: expectedVersion }))
        }
        const version = expectedVersion + 1
        const before = [...timeouts].filter(([, t]) => t.saga === saga && t.instance === instance)
        instances.set(key(saga, instance), { ...next, version, updatedAt: now })
        for (const name of changes.cancel) timeouts.delete(key(saga, instance, name))
        for (const { dueAt, name } of changes.schedule)
          timeouts.set(key(saga, instance, name), { saga, instance, name, dueAt })
        const recorded = failures.get(key(saga, instance))
        if (next.status !== "running") failures.delete(key(saga, instance))
        // undone if the enclosing batch fails (see internal/memoryTransaction)
        return Effect.as(
          MemoryTransaction.onRollback(() => {
            if (current === undefined) instances.delete(key(saga, instance))
            else instances.set(key(saga, instance), current)
            for (const [k, t] of timeouts) if (t.saga === saga && t.instance === instance) timeouts.delete(k)
            for (const [k, t] of before) timeouts.set(k, t)
            if (recorded !== undefined) failures.set(key(saga, instance), recorded)
          }),
          version
        )
      }),
    timeouts: (saga, instance) =>
      Effect.sync(() => [...timeouts.values()].filter((t) => t.saga === saga && t.instance === instance)),
    due: (saga, limit) =>
      Effect.map(Clock.currentTimeMillis, (now) =>
        [...timeouts.values()]
          .filter((t) => t.saga === saga && t.dueAt <= now)
          .sort((a, b) => a.dueAt - b.dueAt)
          .slice(0, limit)
      ),
    claim: (timeout) =>
      Effect.sync(() => {
        const stored = timeouts.get(key(timeout.saga, timeout.instance, timeout.name))
        return stored !== undefined && stored.dueAt === timeout.dueAt ? Option.some(stored) : Option.none()
      }),
    lock: (saga, instance) =>
      Effect.gen(function* () {
        const lockKey = key(saga, instance)
        const lock = locks.get(lockKey) ?? (yield* Effect.makeSemaphore(1))
        locks.set(lockKey, lock)
        yield* Effect.acquireRelease(lock.take(1), () => lock.release(1))
      }),
    transaction: (effect) => Effect.uninterruptible(MemoryTransaction.transactional(effect)),
    outside: (effect) => effect,
    recordFailure: (saga, instance, cause, failure) =>
      Effect.sync(() => {
        const recorded = failures.get(key(saga, instance)) ?? new Map<string, Failure>()
        if (!recorded.has(cause)) recorded.set(cause, failure)
        failures.set(key(saga, instance), recorded)
      }),
    failureOf: (saga, instance, cause) =>
      Effect.sync(() => Option.fromNullable(failures.get(key(saga, instance))?.get(cause))),
    instances: (saga, options) =>
      Effect.map(pageLimit(options), (limit) =>
        [...instances]
          .flatMap(([k, stored]): ReadonlyArray<InstanceSummary> => {
            const [name, id] = k.split("\u0000") as [string, string]
            if (name !== saga) return []
            if (options?.status !== undefined && stored.status !== options.status) return []
            if (options?.after !== undefined && id <= options.after) return []
            const { error, status, updatedAt, version } = stored
            return [{ id, version, status, updatedAt, error }]
          })
          .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
          .slice(0, limit)
      )
  })
})

/** The page size of `instances` options, or a permanent `SagaStoreError`. */
const pageLimit = (options: InstancesOptions | undefined): Effect.Effect<number, SagaStoreError> =>
  Either.match(pageSize(options?.limit, 100), {
    onLeft: (why) =>
      Effect.fail(new SagaStoreError({ operation: "instances", cause: new Error(why), transient: false })),
    onRight: Effect.succeed
  })

/** A fresh in-memory saga store per Layer build. */
export const layerMemory: Layer.Layer<SagaStore> = Layer.effect(SagaStore, makeMemory)
