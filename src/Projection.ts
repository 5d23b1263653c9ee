/**
 * Projections: read models kept up to date from the global log by runners forked as scoped fibers.
 *
 * A projection is a pure definition ({@link make}): a name, the domain events it reads (a Schema, with
 * upcasters), and a handler per event or per batch. {@link run} / {@link layer} run it: catch up from
 * the checkpoint in batches, then tail the log, woken by `Wakeup` hints with polling as the fallback.
 * Per-stream order, no skipped events, exactly-once effects when the read model shares the store's
 * database (at-least-once otherwise), partitions shared by workers through leases, poison policies and
 * rebuilds: the guarantees and Gotchas are on {@link run}.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Schema from "effect/Schema"
import * as CheckpointStore from "./CheckpointStore.js"
import * as Event from "./Event.js"
import type * as EventStore from "./EventStore.js"
import * as Runner from "./projection/runner.js"
import * as RunnerStatus from "./projection/status.js"
import * as WaitFor from "./projection/waitFor.js"
import type { ProjectionBehind, WaitOptions, Written } from "./projection/waitFor.js"
import * as Upcaster from "./Upcaster.js"

export type { RunOptions } from "./projection/runner.js"
export type { PartitionStatus, State, Status } from "./projection/status.js"
export type { Progress } from "./projection/progress.js"
export { ProjectionHalted } from "./projection/runner.js"
export { Registry } from "./projection/status.js"
export { ProjectionBehind, type WaitOptions, type Written } from "./projection/waitFor.js"

/** What to do with an event whose handling keeps failing (or that cannot be decoded). */
export type PoisonPolicy = "stop" | "skip"

/** A projection definition; see {@link make}. */
export interface Projection<A, E, R> extends Runner.Definition<A, E, R> {
  /** Runs in the rebuild transaction, before the checkpoints are reset: empty the read model. */
  readonly truncate: Effect.Effect<void, E, R>
}

/** Options of {@link make}. */
export interface Options<A extends { readonly _tag: string }, I, E, R> {
  /** Unique among projections sharing a checkpoint store. */
  readonly name: string
  /** Bump it to rebuild side by side into new tables (see the module doc); default 1. */
  readonly version?: number
  /**
   * The domain events read: a tagged struct or class, or a union of them (with `versions` and `upcasters`),
   * or a codec already built (a decider's `codec`, so its events are compiled once). Other event types are
   * not read.
   */
  readonly events: Schema.Schema<A, I> | Upcaster.EventCodec<A>
  readonly versions?: Upcaster.CodecOptions<A, I>["versions"]
  readonly upcasters?: ReadonlyArray<Upcaster.Upcaster>
  /** Only events of these stream categories; default all. */
  readonly categories?: ReadonlyArray<string>
  /** Handles one event; runs inside the batch's transaction. Give this or `handleBatch`. */
  readonly handle?: (event: A, envelope: Event.RecordedEvent) => Effect.Effect<void, E, R>
  /** Handles a batch at once (bulk upserts); runs inside the batch's transaction. */
  readonly handleBatch?: (events: ReadonlyArray<Upcaster.Decoded<A>>) => Effect.Effect<void, E, R>
  /** Empties the read model for {@link rebuild}; default: nothing. */
  readonly truncate?: Effect.Effect<void, E, R>
  /** Default 1. */
  readonly partitions?: number
  /**
   * Events per batch (and per transaction); default 500. While catching up, a partition reads up to two
   * batches ahead of the one its handler works on: up to three batches of events in memory per partition.
   */
  readonly batchSize?: number
  /** Default `stop`. */
  readonly onPoison?: PoisonPolicy
  /** Retries of a failing handler before its event is poison; default 3, exponential from 50 ms. */
  readonly retry?: Schedule.Schedule<unknown, unknown>
}

/**
 * Defines a projection. Throws on an invalid definition (a bad name, partition count or batch size, an
 * inconsistent codec): a programming error, found when the module loads.
 */
export const make = <A extends { readonly _tag: string }, I, E = never, R = never>(
  options: Options<A, I, E, R>
): Projection<A, E, R> => {
  const problems = [
    options.name.length === 0 || options.name.length > 200 ? "a name of 1 to 200 characters" : undefined,
    isCount(options.version, 1) ? undefined : "a version that is a positive integer",
    isCount(options.partitions, 1) && (options.partitions ?? 1) <= Event.maxPartitions
      ? undefined
      : `a partition count from 1 to ${Event.maxPartitions}`,
    isCount(options.batchSize, 1) ? undefined : "a batch size that is a positive integer",
    (options.handle === undefined) === (options.handleBatch === undefined)
      ? "exactly one of handle and handleBatch"
      : undefined
  ].filter((p) => p !== undefined)
  if (problems.length > 0) throw new Error(`Projection ${JSON.stringify(options.name)} needs ${problems.join(", ")}`)
  const codec = Upcaster.isCodec(options.events)
    ? options.events
    : Effect.runSync(
        Upcaster.codec({
          events: options.events,
          ...(options.versions === undefined ? {} : { versions: options.versions }),
          ...(options.upcasters === undefined ? {} : { upcasters: options.upcasters })
        })
      )
  const handle = options.handle
  return {
    name: options.name,
    version: options.version ?? 1,
    codec,
    types: [...codec.storedTypes],
    categories: options.categories,
    handleBatch:
      options.handleBatch ??
      ((events) => Effect.forEach(events, ({ envelope, event }) => handle!(event, envelope), { discard: true })),
    truncate: options.truncate ?? Effect.void,
    partitions: options.partitions ?? 1,
    batchSize: options.batchSize ?? 500,
    onPoison: options.onPoison ?? "stop",
    retry:
      options.retry ?? Schedule.exponential("50 millis").pipe(Schedule.jittered, Schedule.intersect(Schedule.recurs(3)))
  }
}

const isCount = (value: number | undefined, min: number) =>
  value === undefined || (Number.isSafeInteger(value) && value >= min)

/**
 * Runs the projection until interrupted: registers its partitions, takes a fair share of them, and
 * handles their events, catching up then tailing. Several runners (here or in other processes) share
 * the partitions. Fails only if the stored partition count differs from the definition.
 *
 * Guarantees:
 * - **Per-stream order**: a stream's events are handled in order, by one worker at a time.
 * - **Exactly-once effects** with the SQL checkpoint store when the read model is in the same database:
 *   a batch's handler writes and its checkpoint commit in one transaction. Otherwise (memory checkpoint
 *   store, or effects outside the database) effects are at-least-once: make them idempotent.
 * - **No skipped events**: checkpoints are the store's no-skip (transaction, position) pairs.
 * - **Partitions**: with `partitions: N`, an event goes to partition `Event.partitionOf(streamId, N)`.
 *   Workers (processes, or runners in one process) share partitions through leases: each takes a fair
 *   share, a dead worker's partitions are taken over when its lease expires, and a worker that lost a
 *   lease cannot commit (fencing tokens, see `CheckpointStore`).
 * - **Failures**: store and checkpoint failures are retried with capped exponential backoff for as long
 *   as they last (state `stalled`), a batch whose connection was lost mid-transaction included (the SQL
 *   stores' transactions fail typed, never with a defect). A handler failure is retried by the projection's `retry` schedule;
 *   then the batch is handled one event at a time to find the poison event, and the projection's
 *   `onPoison` policy applies: `stop` (the partition halts with state `failed` and the error, until a
 *   restart) or `skip` (the event goes to the dead letters with the error, and the partition goes on).
 *   An event that cannot be decoded is poison at once. A dead letter whose retry an operator asked
 *   (`CheckpointStore.retryDeadLetter`) is handled again by the worker owning its partition, in one
 *   transaction with its removal (exactly once, as batches); failing again, it stays with the new error.
 * - **Rebuilds**: {@link rebuild} resets the checkpoints and runs the `truncate` hook in one
 *   transaction; the runners start over. {@link requestRebuild} (from an operator, or another process)
 *   has one of the running workers do the same, once. For a rebuild without downtime, give the definition a new
 *   `version` building into new tables: it runs beside the old version, and becomes the
 *   {@link activeVersion} once all its partitions have caught up.
 * - **Observability**: each batch is a `Projection.batch` span, in a trace of its own with span links to
 *   the spans that appended its events (their `traceparent` metadata); handled events and the lag (in
 *   events and seconds) are metrics (see `Metrics`). While catching up, a partition's status has its
  `progress` (approximate: log positions, see `PartitionStatus`), logged at most once per
  `progressLogInterval`.
 *
 * **Gotchas**: changing `partitions` needs a new `version` (the stored count is checked at start).
 * Interrupting a runner rolls back the batch in flight (SQL) or lets it finish (memory). A retried dead
 * letter's event is handled after the events that followed it in its stream.
 */
export const run = <A, E, R>(
  projection: Projection<A, E, R>,
  options?: Runner.RunOptions
): Effect.Effect<
  never,
  CheckpointStore.PartitionCountMismatch,
  EventStore.EventStore | CheckpointStore.CheckpointStore | R
> => Runner.run(projection, options)

/**
 * {@link run} forked in the Layer's scope; its status goes to the `Registry` when one is provided. The
 * projection's partitions are registered while the Layer is built, so a partition count that differs
 * from the stored one (or a checkpoint store that cannot be reached) fails the Layer.
 */
export const layer = <A, E, R>(
  projection: Projection<A, E, R>,
  options?: Runner.RunOptions
): Layer.Layer<
  never,
  CheckpointStore.PartitionCountMismatch | CheckpointStore.CheckpointStoreError,
  EventStore.EventStore | CheckpointStore.CheckpointStore | R
> =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      const store = yield* CheckpointStore.CheckpointStore
      yield* store.register({ name: projection.name, version: projection.version }, projection.partitions)
      yield* Effect.forkScoped(
        run(projection, options).pipe(
          Effect.catchAll((error) => Effect.logError(`projection ${projection.name} stopped`, error))
        )
      )
    })
  )

/**
 * Handles every event up to the current end of the log, in all partitions, then returns (for tests,
 * scripts, and the rebuild benchmark). Fails with `ProjectionHalted` if a poison event stopped a
 * partition (policy `stop`).
 *
 * **Gotchas**: it takes every partition's lease, waiting while a runner holds one: with runners of
 * the projection running, it waits until they stop.
 */
export const catchUp = <A, E, R>(
  projection: Projection<A, E, R>,
  options?: Runner.RunOptions
): Effect.Effect<
  ReadonlyArray<RunnerStatus.PartitionStatus>,
  CheckpointStore.PartitionCountMismatch | Runner.ProjectionHalted,
  EventStore.EventStore | CheckpointStore.CheckpointStore | R
> => Runner.catchUp(projection, options)

/**
 * Rebuilds in place: in one transaction, runs the `truncate` hook and moves every partition back to the
 * start of the log (a pending rebuild request is taken with it: this rebuild carries it out). Running
 * workers notice at their next commit (refused, rolled back) or supervisor step, and start over.
 */
export const rebuild = <A, E, R>(
  projection: Projection<A, E, R>
): Effect.Effect<void, E | CheckpointStore.CheckpointStoreError, CheckpointStore.CheckpointStore | R> =>
  Effect.flatMap(CheckpointStore.CheckpointStore, (store) => {
    const id = { name: projection.name, version: projection.version }
    return store.transaction(
      Effect.zipRight(Effect.zipRight(store.takeRebuild(id), projection.truncate), store.reset(id))
    )
  })

/**
 * Asks the running workers of the projection version to rebuild it (see {@link rebuild}), from anywhere
 * that reaches its checkpoint store: one of them carries it out, once, then they catch up. Until then
 * `partitions` and `projections` show it pending (`pendingRebuild`).
 *
 * **Gotchas**: a request for a version that no process runs stays pending until one does; a saga's or the
 * outbox relay's runner is a projection too, and rebuilt it reacts to, or publishes, every event again.
 */
export const requestRebuild = (
  id: CheckpointStore.ProjectionId
): Effect.Effect<
  void,
  CheckpointStore.ProjectionNotFound | CheckpointStore.CheckpointStoreError,
  CheckpointStore.CheckpointStore
> => Effect.flatMap(CheckpointStore.CheckpointStore, (store) => store.requestRebuild(id))

/** The version of the named projection that serves reads: the latest one that has caught up. */
export const activeVersion = (
  name: string
): Effect.Effect<Option.Option<number>, CheckpointStore.CheckpointStoreError, CheckpointStore.CheckpointStore> =>
  Effect.flatMap(CheckpointStore.CheckpointStore, (store) => store.activeVersion(name))

/**
 * The projection's dead letters (poison events skipped under the `skip` policy), oldest first. An operator
 * discards one (`CheckpointStore.discardDeadLetter`) or has the running workers handle its event again
 * (`CheckpointStore.retryDeadLetter`): see `run`.
 */
export const deadLetters = (
  name: string
): Effect.Effect<
  ReadonlyArray<CheckpointStore.DeadLetter>,
  CheckpointStore.CheckpointStoreError,
  CheckpointStore.CheckpointStore
> => Effect.flatMap(CheckpointStore.CheckpointStore, (store) => store.deadLetters(name))

/** The in-process registry of runner statuses, for the HTTP API and health checks. */
export const layerRegistry: Layer.Layer<RunnerStatus.Registry> = RunnerStatus.layerRegistry

/**
 * Read-your-writes: waits until the projections have handled what a command wrote (its
 * `Aggregate.HandleResult`, or an append's result with the stream's id), so that a query of their read
 * models sees it; fails with {@link ProjectionBehind} after `timeout` (default 5 seconds). Works with
 * projections running in other processes: it compares the checkpoints they committed with the written
 * events' places in the log. See `projection/waitFor.ts` for the Gotchas.
 */
export const waitFor: (
  projections: ReadonlyArray<Projection<any, any, any>>,
  written: Written,
  options?: WaitOptions
) => Effect.Effect<
  void,
  ProjectionBehind | EventStore.EventStoreError | CheckpointStore.CheckpointStoreError | Event.InvalidStreamId,
  EventStore.EventStore | CheckpointStore.CheckpointStore
> = WaitFor.waitFor
