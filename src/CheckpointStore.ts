/**
 * Where projection runners keep their progress: one checkpoint per (projection, version, partition),
 * the lease that says which worker may advance it, the workers present, dead letters, and which
 * version of a projection serves reads. Leases fence checkpoints (a worker whose lease was taken over
 * never commits again), and a batch's writes commit with its checkpoint (SQL): the guarantees and
 * Gotchas are on {@link CheckpointStore}.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Event from "./Event.js"
import * as MemoryTransaction from "./internal/memoryTransaction.js"
import { saysTransient } from "./internal/transient.js"

// ---------------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------------

/**
 * The checkpoint store failed (database unreachable...). Retryable when `transient`; `aborted` when its
 * transaction could not commit because the work it wrapped (a projection handler's own statements) went
 * on after a statement failed: that work's fault, not the store's.
 */
export class CheckpointStoreError extends Schema.TaggedError<CheckpointStoreError>()("CheckpointStoreError", {
  operation: Schema.String,
  cause: Schema.Defect,
  /** Whether the operation may pass if retried as is (a lost connection, a timeout); decided where the failure entered. */
  transient: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  /** Its transaction could not commit because the work it wrapped went on after a statement failed. */
  aborted: Schema.optionalWith(Schema.Boolean, { default: () => false })
}) {
  override get message() {
    return `Checkpoint store ${this.operation} failed: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/** The lease is no longer this worker's (another took it, or it was released); nothing was committed. */
export class LeaseLost extends Schema.TaggedError<LeaseLost>()("LeaseLost", {
  projection: Schema.String,
  partition: Schema.Int,
  owner: Schema.String
}) {
  override get message() {
    return `${this.owner} lost its lease on ${this.projection} partition ${this.partition}`
  }
}

/** The checkpoint is not where the committer expected (a rebuild reset it); nothing was committed. */
export class CheckpointConflict extends Schema.TaggedError<CheckpointConflict>()("CheckpointConflict", {
  projection: Schema.String,
  partition: Schema.Int
}) {
  override get message() {
    return `The checkpoint of ${this.projection} partition ${this.partition} moved under its runner`
  }
}

/** No projection of that name and version is registered (an operator's request named one that is not). */
export class ProjectionNotFound extends Schema.TaggedError<ProjectionNotFound>()("ProjectionNotFound", {
  projection: Schema.String,
  version: Schema.Int
}) {
  override get message() {
    return `No projection ${this.projection} version ${this.version} is registered`
  }
}

/** The projection has no dead letter of that id (discarded, retried with success, or dropped by a rebuild). */
export class DeadLetterNotFound extends Schema.TaggedError<DeadLetterNotFound>()("DeadLetterNotFound", {
  projection: Schema.String,
  id: Schema.Number
}) {
  override get message() {
    return `${this.projection} has no dead letter ${this.id}`
  }
}

/** The projection's stored partition count differs from its definition: a rebuild (new version) is needed. */
export class PartitionCountMismatch extends Schema.TaggedError<PartitionCountMismatch>()("PartitionCountMismatch", {
  projection: Schema.String,
  stored: Schema.Int,
  configured: Schema.Int
}) {
  override get message() {
    return `${this.projection} is stored with ${this.stored} partitions but defined with ${this.configured}; give the new definition a new version`
  }
}

// ---------------------------------------------------------------------------------------------------
// contract
// ---------------------------------------------------------------------------------------------------

/** A projection at one version: versions of one name are built side by side (see `Projection`). */
export interface ProjectionId {
  readonly name: string
  readonly version: number
}

/** The right to advance one partition's checkpoint, until released, or taken over once expired. */
export interface Lease {
  readonly projection: ProjectionId
  readonly partition: number
  readonly owner: string
  /** Fencing token: bumped by every claim. */
  readonly token: number
}

/** One partition as stored. */
export interface PartitionState {
  readonly partition: number
  readonly checkpoint: Event.Checkpoint
  readonly owner: Option.Option<string>
  /** Epoch milliseconds; in the past when free. */
  readonly leaseExpiresAt: number
  /** Whether the partition has ever caught up with the log (see `markLive`). */
  readonly live: boolean
  /** Whether a rebuild of the projection version was requested and is not done yet (see `requestRebuild`). */
  readonly pendingRebuild: boolean
}

/** A registered projection version, as an operator lists it (see `projections`). */
export interface ProjectionInfo {
  readonly id: ProjectionId
  readonly partitions: number
  /** Whether this version serves reads (see `activeVersion`). */
  readonly active: boolean
  /** Whether a rebuild was requested and is not done yet (see `requestRebuild`). */
  readonly pendingRebuild: boolean
}

/** An event a projection gave up on (poison policy `skip`), with why. */
export interface DeadLetter {
  /** The store's id of the letter, unique in the store (for `discardDeadLetter` and `retryDeadLetter`). */
  readonly id: number
  readonly projection: ProjectionId
  readonly partition: number
  readonly event: Event.RecordedEvent
  /** Why the event was given up on: the latest failure, a failed retry's included. */
  readonly error: string
  /** When it was given up on (or when its latest retry failed). */
  readonly at: DateTime.Utc
  /** Whether a retry was asked (see `retryDeadLetter`) and no worker has tried it yet. */
  readonly retryRequested: boolean
}

/** A dead letter as a runner stores it: the store gives it its id. */
export type NewDeadLetter = Omit<DeadLetter, "id" | "retryRequested">

/**
 * The checkpoint store service.
 *
 * Guarantees of every implementation:
 * - **Fencing**: a checkpoint moves only through {@link CheckpointStore} `commit` by the holder of the
 *   partition's current lease, and only from the checkpoint it expects (compare-and-set). Taking a lease
 *   bumps its token, so a worker whose lease was taken over can never commit again, and two runners of
 *   one projection never both advance a checkpoint. Expiry only decides when a lease may be taken: a
 *   holder whose lease expired but was not taken keeps it (a slow batch still commits).
 * - **Atomic batches** (SQL): `transaction` runs the handler's writes and the `commit` in one database
 *   transaction, so a read model in the same database is updated exactly once per event.
 *
 * Leases expire by the clock of the process that took them: processes sharing a store need clocks
 * that agree to well within the lease time. Worker ids must be unique: a worker re-claiming its own
 * lease takes it with a new token.
 *
 * Operators (the command-line tool, which connects to the database only) list the projections and their
 * dead letters, and leave requests that the running workers of a projection carry out, since only they
 * have its handlers and `truncate` hook: a rebuild ({@link CheckpointStore} `requestRebuild`) and the
 * retry of a dead letter (`retryDeadLetter`). A worker takes a request in the transaction that carries it
 * out (`takeRebuild`, `takeRetry`), so each is carried out once, however many workers see it.
 *
 * **Gotchas**: the memory implementation's transactions undo only the memory stores' own writes
 * (checkpoints, dead letters, rebuild requests, saga instances): a batch's other effects (a read model in
 * a `Ref`) happen even when its commit is refused, so they are at-least-once. It runs a batch
 * uninterruptibly, so a runner stops between batches. A request for a projection version that no process
 * runs stays pending (shown by `projections`, `partitions` and `deadLetters`) until one runs it.
 */
export class CheckpointStore extends Context.Tag("effect-eventsourcing/CheckpointStore")<
  CheckpointStore,
  {
    /** Creates the projection's partitions at the start of the log, or checks their stored count. */
    readonly register: (
      id: ProjectionId,
      partitions: number
    ) => Effect.Effect<void, PartitionCountMismatch | CheckpointStoreError>
    /** Announces a worker for `ttlMillis`; returns how many workers of the projection are present. */
    readonly heartbeat: (
      id: ProjectionId,
      worker: string,
      ttlMillis: number
    ) => Effect.Effect<number, CheckpointStoreError>
    /** Withdraws a worker (on shutdown), so the others take its share at once. */
    readonly leave: (id: ProjectionId, worker: string) => Effect.Effect<void, CheckpointStoreError>
    /** Takes a partition's lease if it is free, expired or already `owner`'s; returns it with the checkpoint. */
    readonly claim: (
      id: ProjectionId,
      partition: number,
      owner: string,
      ttlMillis: number
    ) => Effect.Effect<
      Option.Option<{ readonly lease: Lease; readonly checkpoint: Event.Checkpoint }>,
      CheckpointStoreError
    >
    /** Extends a lease still held. */
    readonly renew: (lease: Lease, ttlMillis: number) => Effect.Effect<void, LeaseLost | CheckpointStoreError>
    /** Gives a lease up (no-op if already lost). */
    readonly release: (lease: Lease) => Effect.Effect<void, CheckpointStoreError>
    /**
     * Moves the checkpoint from `expected` to `next` and extends the lease, if the lease still holds.
     * Inside `transaction`, it commits or rolls back with the batch's effects.
     */
    readonly commit: (
      lease: Lease,
      expected: Event.Checkpoint,
      next: Event.Checkpoint,
      ttlMillis: number
    ) => Effect.Effect<void, LeaseLost | CheckpointConflict | CheckpointStoreError>
    /**
     * Records that the partition caught up with the log once (for version switches), if the lease still
     * holds and the checkpoint is still `at` (no rebuild reset it since).
     */
    readonly markLive: (lease: Lease, at: Event.Checkpoint) => Effect.Effect<void, CheckpointStoreError>
    /** Stores a dead letter (inside `transaction`, with the commit that moves past the event). */
    readonly deadLetter: (letter: NewDeadLetter) => Effect.Effect<void, CheckpointStoreError>
    /** Runs `effect` in one transaction with the store's writes inside it. */
    readonly transaction: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CheckpointStoreError, R>
    /**
     * Whether a failure of work run in `transaction` (a projection handler's own statements, say) may
     * pass if retried: the store knows its database's errors. The library's own errors say it themselves.
     */
    readonly isTransient: (error: unknown) => boolean
    /** The projection's partitions as stored (empty before `register`). */
    readonly partitions: (id: ProjectionId) => Effect.Effect<ReadonlyArray<PartitionState>, CheckpointStoreError>
    /**
     * Moves every partition back to the start of the log and drops the version's dead letters (a
     * rebuild); leases stay with their holders.
     */
    readonly reset: (id: ProjectionId) => Effect.Effect<void, CheckpointStoreError>
    /** The dead letters of a projection name, oldest first. */
    readonly deadLetters: (name: string) => Effect.Effect<ReadonlyArray<DeadLetter>, CheckpointStoreError>
    /** The version of a projection that serves reads, once one caught up. */
    readonly activeVersion: (name: string) => Effect.Effect<Option.Option<number>, CheckpointStoreError>
    /** Makes `version` the active one if no later version is active. */
    readonly activate: (id: ProjectionId) => Effect.Effect<void, CheckpointStoreError>
    /** Every registered projection version, by name then version (for operators). */
    readonly projections: Effect.Effect<ReadonlyArray<ProjectionInfo>, CheckpointStoreError>
    /**
     * Asks the running workers of `id` to rebuild it in place (as `Projection.rebuild`: the `truncate` hook
     * and `reset` in one transaction), then catch up. A request already pending stands (one rebuild).
     *
     * **Gotchas**: nothing happens until a worker of that version runs: the request stays pending.
     */
    readonly requestRebuild: (id: ProjectionId) => Effect.Effect<void, ProjectionNotFound | CheckpointStoreError>
    /**
     * Takes `id`'s pending rebuild request, if any; whether it did. Inside `transaction`, with the rebuild:
     * of workers racing for one request exactly one gets it, and a rollback leaves it pending.
     */
    readonly takeRebuild: (id: ProjectionId) => Effect.Effect<boolean, CheckpointStoreError>
    /** Deletes a dead letter of the projection name. */
    readonly discardDeadLetter: (
      name: string,
      id: number
    ) => Effect.Effect<void, DeadLetterNotFound | CheckpointStoreError>
    /**
     * Asks the running workers of the letter's projection version to handle its event again (see
     * `takeRetry`); asking again while pending changes nothing.
     *
     * **Gotchas**: nothing happens until a worker of that version owns the letter's partition: the request
     * stays pending. The event is handled after events that followed it in its stream.
     */
    readonly retryDeadLetter: (
      name: string,
      id: number
    ) => Effect.Effect<void, DeadLetterNotFound | CheckpointStoreError>
    /** The dead letters of `id` whose retry was asked, oldest first. */
    readonly retriesRequested: (id: ProjectionId) => Effect.Effect<ReadonlyArray<DeadLetter>, CheckpointStoreError>
    /**
     * Deletes the dead letter if its retry is still asked; whether it did. Inside `transaction`, with the
     * handler's work on its event: the event is handled again once, and a rollback keeps the letter.
     */
    readonly takeRetry: (name: string, id: number) => Effect.Effect<boolean, CheckpointStoreError>
    /** Records that a retry failed: the letter's new error and time; its retry is no longer asked. */
    readonly retryFailed: (
      name: string,
      id: number,
      error: string,
      at: DateTime.Utc
    ) => Effect.Effect<void, CheckpointStoreError>
  }
>() {}

// ---------------------------------------------------------------------------------------------------
// memory implementation
// ---------------------------------------------------------------------------------------------------

interface MemoryPartition {
  checkpoint: Event.Checkpoint
  owner: string | undefined
  token: number
  leaseExpiresAt: number
  live: boolean
}

/** An in-memory checkpoint store (see the module's Gotchas). State lives as long as the service. */
export const makeMemory: Effect.Effect<CheckpointStore["Type"]> = Effect.sync(() => {
  const projections = new Map<string, { readonly id: ProjectionId; readonly partitions: Array<MemoryPartition> }>()
  const workers = new Map<string, Map<string, number>>()
  // oldest first (ids grow)
  let deadLetters: Array<DeadLetter> = []
  let lastLetterId = 0
  const rebuildRequests = new Set<string>()
  const active = new Map<string, number>()
  const key = (id: ProjectionId) => `${id.version}\u0000${id.name}`
  const partitionsOf = (id: ProjectionId) => projections.get(key(id))?.partitions
  const partitionOf = (lease: Lease) => partitionsOf(lease.projection)?.[lease.partition]
  const holds = (lease: Lease, p: MemoryPartition | undefined): p is MemoryPartition =>
    p !== undefined && p.owner === lease.owner && p.token === lease.token
  const lost = (lease: Lease) =>
    new LeaseLost({ projection: lease.projection.name, partition: lease.partition, owner: lease.owner })
  const letterOf = (name: string, id: number) => deadLetters.find((d) => d.projection.name === name && d.id === id)
  /** Replaces the letter `id` (or removes it: `undefined`), undone if the enclosing transaction fails. */
  const replaceLetter = (id: number, next: DeadLetter | undefined) =>
    Effect.suspend(() => {
      const before = deadLetters
      deadLetters = deadLetters.flatMap((d) => (d.id !== id ? [d] : next === undefined ? [] : [next]))
      return MemoryTransaction.onRollback(() => {
        deadLetters = before
      })
    })

  return CheckpointStore.of({
    register: (id, count) =>
      Effect.suspend(() => {
        const stored = partitionsOf(id)
        if (stored === undefined) {
          projections.set(key(id), {
            id: { name: id.name, version: id.version },
            partitions: Array.from({ length: count }, () => ({
              checkpoint: Event.start,
              owner: undefined,
              token: 0,
              leaseExpiresAt: 0,
              live: false
            }))
          })
          return Effect.void
        }
        return stored.length === count
          ? Effect.void
          : Effect.fail(new PartitionCountMismatch({ projection: id.name, stored: stored.length, configured: count }))
      }),
    heartbeat: (id, worker, ttl) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const present = workers.get(key(id)) ?? new Map<string, number>()
        workers.set(key(id), present)
        present.set(worker, now + ttl)
        for (const [w, expires] of present) if (expires < now) present.delete(w)
        return present.size
      }),
    leave: (id, worker) => Effect.sync(() => void workers.get(key(id))?.delete(worker)),
    claim: (id, partition, owner, ttl) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const p = partitionsOf(id)?.[partition]
        if (p === undefined || (p.owner !== undefined && p.owner !== owner && p.leaseExpiresAt >= now)) {
          return Option.none()
        }
        p.owner = owner
        p.token += 1
        p.leaseExpiresAt = now + ttl
        return Option.some({ lease: { projection: id, partition, owner, token: p.token }, checkpoint: p.checkpoint })
      }),
    renew: (lease, ttl) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const p = partitionOf(lease)
        if (!holds(lease, p)) return Effect.fail(lost(lease))
        p.leaseExpiresAt = now + ttl
        return Effect.void
      }),
    release: (lease) =>
      Effect.sync(() => {
        const p = partitionOf(lease)
        if (holds(lease, p)) {
          p.owner = undefined
          p.leaseExpiresAt = 0
        }
      }),
    commit: (lease, expected, next, ttl) =>
      Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<void, LeaseLost | CheckpointConflict> => {
        const p = partitionOf(lease)
        if (!holds(lease, p)) return Effect.fail(lost(lease))
        if (Event.checkpointOrder(p.checkpoint, expected) !== 0) {
          return Effect.fail(new CheckpointConflict({ projection: lease.projection.name, partition: lease.partition }))
        }
        const previous = p.checkpoint
        p.checkpoint = next
        p.leaseExpiresAt = now + ttl
        return MemoryTransaction.onRollback(() => {
          p.checkpoint = previous
        })
      }),
    markLive: (lease, at) =>
      Effect.sync(() => {
        const p = partitionOf(lease)
        if (holds(lease, p) && Event.checkpointOrder(p.checkpoint, at) === 0) p.live = true
      }),
    deadLetter: (letter) =>
      Effect.suspend(() => {
        const id = ++lastLetterId
        deadLetters = [...deadLetters, { ...letter, id, retryRequested: false }]
        return MemoryTransaction.onRollback(() => {
          deadLetters = deadLetters.filter((d) => d.id !== id)
        })
      }),
    transaction: (effect) => Effect.uninterruptible(MemoryTransaction.transactional(effect)),
    isTransient: saysTransient,
    partitions: (id) =>
      Effect.sync(() =>
        (partitionsOf(id) ?? []).map((p, partition) => ({
          partition,
          checkpoint: p.checkpoint,
          owner: Option.fromNullable(p.owner),
          leaseExpiresAt: p.leaseExpiresAt,
          live: p.live,
          pendingRebuild: rebuildRequests.has(key(id))
        }))
      ),
    reset: (id) =>
      Effect.sync(() => {
        for (const p of partitionsOf(id) ?? []) {
          p.checkpoint = Event.start
          p.live = false
        }
        deadLetters = deadLetters.filter((d) => d.projection.name !== id.name || d.projection.version !== id.version)
      }),
    deadLetters: (name) => Effect.sync(() => deadLetters.filter((d) => d.projection.name === name)),
    activeVersion: (name) => Effect.sync(() => Option.fromNullable(active.get(name))),
    activate: (id) =>
      Effect.sync(() => {
        if ((active.get(id.name) ?? 0) < id.version) active.set(id.name, id.version)
      }),
    projections: Effect.sync(() =>
      [...projections.values()]
        .map(({ id, partitions }) => ({
          id,
          partitions: partitions.length,
          active: active.get(id.name) === id.version,
          pendingRebuild: rebuildRequests.has(key(id))
        }))
        .sort((a, b) => compareIds(a.id, b.id))
    ),
    requestRebuild: (id) =>
      Effect.suspend(() =>
        projections.has(key(id))
          ? Effect.sync(() => void rebuildRequests.add(key(id)))
          : Effect.fail(new ProjectionNotFound({ projection: id.name, version: id.version }))
      ),
    takeRebuild: (id) =>
      Effect.suspend(() => {
        if (!rebuildRequests.delete(key(id))) return Effect.succeed(false)
        return Effect.as(
          MemoryTransaction.onRollback(() => rebuildRequests.add(key(id))),
          true
        )
      }),
    discardDeadLetter: (name, id) =>
      Effect.suspend(() =>
        letterOf(name, id) === undefined
          ? Effect.fail(new DeadLetterNotFound({ projection: name, id }))
          : replaceLetter(id, undefined)
      ),
    retryDeadLetter: (name, id) =>
      Effect.suspend(() => {
        const letter = letterOf(name, id)
        return letter === undefined
          ? Effect.fail(new DeadLetterNotFound({ projection: name, id }))
          : replaceLetter(id, { ...letter, retryRequested: true })
      }),
    retriesRequested: (id) =>
      Effect.sync(() =>
        deadLetters.filter(
          (d) => d.retryRequested && d.projection.name === id.name && d.projection.version === id.version
        )
      ),
    takeRetry: (name, id) =>
      Effect.suspend(() =>
        letterOf(name, id)?.retryRequested === true
          ? Effect.as(replaceLetter(id, undefined), true)
          : Effect.succeed(false)
      ),
    retryFailed: (name, id, error, at) =>
      Effect.suspend(() => {
        const letter = letterOf(name, id)
        return letter === undefined ? Effect.void : replaceLetter(id, { ...letter, error, at, retryRequested: false })
      })
  })
})

/** Orders projection ids by name, then version. */
const compareIds = (a: ProjectionId, b: ProjectionId) =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : a.version - b.version

/** A fresh in-memory checkpoint store per Layer build. */
export const layerMemory: Layer.Layer<CheckpointStore> = Layer.effect(CheckpointStore, makeMemory)
