/**
 * One batch of the projection runner (see `runner`): handled and committed with its checkpoint
 * in one transaction, retried while the infrastructure fails, then one event at a time to find a poison
 * event and apply the projection's policy.
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as CheckpointStore from "../CheckpointStore.js"
import * as Event from "../Event.js"
import type * as EventStore from "../EventStore.js"
import * as Metrics from "../Metrics.js"
import type * as Upcaster from "../Upcaster.js"
import type * as Wakeup from "../Wakeup.js"
import * as Traceparent from "../internal/traceparent.js"
import { saysTransient } from "../internal/transient.js"
import type * as Progress from "./progress.js"
import type { Definition } from "./runner.js"
import type { State } from "./status.js"

/**
 * Mutable per-partition status, written by its fiber only (but for `heldBack` and the head of `progress`,
 * by the lag sampler).
 */
export interface Cell {
  partition: number
  state: State
  checkpoint: Event.Checkpoint
  processed: number
  lastError: Option.Option<string>
  lastEventAt: Option.Option<DateTime.Utc>
  pendingSince: Option.Option<DateTime.Utc>
  heldBack: Option.Option<EventStore.HeldBack>
  /** The catch-up in progress, if any (see `progress`). */
  progress: Option.Option<Progress.Tracker>
}

/** What a partition fiber works with. */
export interface Runtime<A, E, R> {
  readonly def: Definition<A, E, R>
  readonly id: CheckpointStore.ProjectionId
  readonly events: EventStore.EventStore["Type"]
  readonly checkpoints: CheckpointStore.CheckpointStore["Type"]
  readonly wakeup: Option.Option<Wakeup.Wakeup["Type"]>
  readonly ttl: number
  readonly pollInterval: Duration.Duration
  readonly worker: string
  /** Milliseconds a live partition's events may wait behind the read horizon (see `RunOptions.stallAfter`). */
  readonly stallAfter: number
  /** Least milliseconds between two progress lines of a catching-up partition (see `RunOptions`). */
  readonly progressLogInterval: number
}

/** What became of a batch. */
export type Outcome =
  | { readonly _tag: "Committed" }
  | { readonly _tag: "LeaseLost" }
  | { readonly _tag: "Reset" }
  | { readonly _tag: "Halted" }

/** A handler's failure (or defect), told apart from the store's own errors. */
class HandlerFailed {
  readonly _tag = "HandlerFailed"
  constructor(
    readonly cause: Cause.Cause<unknown>,
    /** A database failure that passes (see {@link isPassing}): retried as long as it lasts, never poison. */
    readonly passing: boolean
  ) {}
}

/**
 * Whether a handler failure comes from the infrastructure rather than from the event: an error that says it
 * is transient (a store or broker unavailable), or a database error the checkpoint store, in whose
 * transaction the handler ran, classifies so (a lost connection, a deadlock, a timeout). Anything else,
 * bad data or a bad statement included, is the event's.
 */
export const isPassing = (cause: Cause.Cause<unknown>, store: CheckpointStore.CheckpointStore["Type"]): boolean =>
  Chunk.some(Cause.failures(cause), (error) => saysTransient(error) || store.isTransient(error))

/** A batch as read, with its events decoded, or `undefined` if one of them does not decode. */
export interface Batch<A> {
  readonly events: ReadonlyArray<Event.RecordedEvent>
  /** The events with their personal fields opened (see `Upcaster.EventCodec.open`): what is decoded. */
  readonly opened: ReadonlyArray<Event.RecordedEvent>
  readonly decoded: ReadonlyArray<Upcaster.Decoded<A>> | undefined
}

/**
 * Decodes a batch's events. The runner decodes a batch as soon as it is read, in the fiber that read it
 * ahead, so that this CPU work overlaps the previous batch's commit.
 */
export const decodeBatch = <A, E, R>(
  rt: Runtime<A, E, R>,
  events: ReadonlyArray<Event.RecordedEvent>,
  opened: ReadonlyArray<Event.RecordedEvent> = events
): Batch<A> => {
  const decoded: Array<Upcaster.Decoded<A>> = []
  for (let i = 0; i < events.length; i++) {
    const result = rt.def.codec.decodeEither(opened[i]!)
    if (Either.isLeft(result)) return { events, opened, decoded: undefined }
    for (const event of result.right) decoded.push({ event, envelope: events[i]! })
  }
  return { events, opened, decoded }
}

/**
 * Handles a batch: handled and committed with its checkpoint in one transaction; if it cannot be (an
 * undecodable event, a handler that keeps failing), one event at a time.
 */
export const handleBatch = <A, E, R>(
  rt: Runtime<A, E, R>,
  lease: CheckpointStore.Lease,
  cell: Cell,
  { decoded, events: batch, opened }: Batch<A>,
  lag: Metric.Metric.Gauge<number>
): Effect.Effect<Outcome, never, R> =>
  Effect.gen(function* () {
    if (decoded === undefined) return yield* oneByOne(rt, lease, cell, batch, opened, lag)
    const attempt = yield* Effect.either(commitWithRetries(rt, lease, cell, decoded, batch[batch.length - 1]!))
    if (Either.isRight(attempt)) return yield* advanced(rt, cell, batch, lag)
    if (attempt.left._tag === "HandlerFailed") return yield* oneByOne(rt, lease, cell, batch, opened, lag)
    return outcomeOf(attempt.left)
  }).pipe(
    // the batch runs in a trace of its own, linked to the spans that appended its events
    Effect.withSpan("Projection.batch", {
      attributes: { projection: rt.def.name, partition: cell.partition, events: batch.length },
      links: Traceparent.linksOf(batch),
      captureStackTrace: false
    })
  )

/** The batch once more, one event per transaction, to find the poison event and apply the policy. */
const oneByOne = <A, E, R>(
  rt: Runtime<A, E, R>,
  lease: CheckpointStore.Lease,
  cell: Cell,
  batch: ReadonlyArray<Event.RecordedEvent>,
  opened: ReadonlyArray<Event.RecordedEvent>,
  lag: Metric.Metric.Gauge<number>
): Effect.Effect<Outcome, never, R> =>
  Effect.gen(function* () {
    for (let i = 0; i < batch.length; i++) {
      // the envelope as recorded (sealed): what a dead letter keeps
      const envelope = batch[i]!
      const decoded = rt.def.codec.decodeEither(opened[i]!)
      let error: string
      if (Either.isLeft(decoded)) {
        error = decoded.left.message
      } else {
        const events = decoded.right.map((event) => ({ event, envelope }))
        const attempt = yield* Effect.either(commitWithRetries(rt, lease, cell, events, envelope))
        if (Either.isRight(attempt)) {
          yield* advanced(rt, cell, [envelope], lag)
          continue
        }
        if (attempt.left._tag !== "HandlerFailed") return outcomeOf(attempt.left)
        error = Cause.pretty(attempt.left.cause)
      }
      cell.lastError = Option.some(error)
      yield* Effect.logError(`poison event ${envelope.streamId}@${envelope.version} (${envelope.type}): ${error}`)
      if (rt.def.onPoison === "stop") {
        cell.state = "failed"
        return { _tag: "Halted" } as const
      }
      const letter: CheckpointStore.NewDeadLetter = {
        projection: rt.id,
        partition: cell.partition,
        event: envelope,
        error,
        at: yield* DateTime.now
      }
      const parked = yield* Effect.either(
        untilDone(
          rt.checkpoints.transaction(
            Effect.zipRight(
              rt.checkpoints.deadLetter(letter),
              rt.checkpoints.commit(lease, cell.checkpoint, Event.checkpointOf(envelope), rt.ttl)
            )
          ),
          cell
        )
      )
      if (Either.isLeft(parked)) return outcomeOf(parked.left)
      yield* advanced(rt, cell, [envelope], lag)
    }
    return { _tag: "Committed" } as const
  })

/**
 * Handles `events` and moves the checkpoint to `last` in one transaction. Store failures are retried as
 * long as they last; handler failures by the definition's schedule.
 */
const commitWithRetries = <A, E, R>(
  rt: Runtime<A, E, R>,
  lease: CheckpointStore.Lease,
  cell: Cell,
  events: ReadonlyArray<Upcaster.Decoded<A>>,
  last: Event.RecordedEvent
): Effect.Effect<void, HandlerFailed | CheckpointStore.LeaseLost | CheckpointStore.CheckpointConflict, R> =>
  Effect.suspend(() => {
    const handle = rt.def.handleBatch(events).pipe(
      Effect.catchAllCause((cause): Effect.Effect<never, HandlerFailed> =>
        // an interruption has no failure in it: pass it on as it is
        Cause.isInterruptedOnly(cause)
          ? Effect.failCause(cause as Cause.Cause<never>)
          : Effect.fail(new HandlerFailed(cause, isPassing(cause, rt.checkpoints)))
      )
    )
    const commit = rt.checkpoints.commit(lease, cell.checkpoint, Event.checkpointOf(last), rt.ttl)
    // the commit is one conditional update: on its own it needs no transaction around it
    return rt.def.transactional === false
      ? Effect.zipRight(handle, untilDone(commit, cell))
      : untilDone(
          rt.checkpoints.transaction(Effect.zipRight(handle, Effect.catchIf(commit, leftAborted, blamed))),
          cell
        )
  }).pipe(
    Effect.tapError((error) =>
      error._tag !== "HandlerFailed"
        ? Effect.void
        : error.passing
          ? Effect.zipRight(
              stalled(cell, Cause.pretty(error.cause)),
              Effect.logWarning("store or broker unavailable; retrying", error.cause)
            )
          : Effect.logWarning("projection handler failed; retrying", error.cause)
    ),
    Effect.retry({ schedule: transientRetry, while: (error) => error._tag === "HandlerFailed" && error.passing }),
    Effect.retry({ schedule: rt.def.retry, while: (error) => error._tag === "HandlerFailed" })
  )

/**
 * A commit refused because the handler's work left the transaction aborted (it caught an SQL error and went
 * on): the handler's failure, not the store's, so that it meets the retry and poison policy instead of being
 * retried forever. A handler that tolerates SQL errors must run them in a savepoint.
 */
const leftAborted = (
  error: CheckpointStore.CheckpointStoreError | CheckpointStore.LeaseLost | CheckpointStore.CheckpointConflict
): boolean => error._tag === "CheckpointStoreError" && error.aborted

const blamed = (error: unknown) =>
  Effect.fail(
    new HandlerFailed(
      Cause.fail(
        new Error(
          "the handler left the transaction aborted (it went on after an SQL error): the checkpoint cannot commit",
          { cause: error }
        )
      ),
      false
    )
  )

const outcomeOf = (error: CheckpointStore.LeaseLost | CheckpointStore.CheckpointConflict): Outcome =>
  error._tag === "LeaseLost" ? { _tag: "LeaseLost" } : { _tag: "Reset" }

/** Bookkeeping after a commit: status, handled-events count and lag. */
const advanced = <A, E, R>(
  rt: Runtime<A, E, R>,
  cell: Cell,
  handled: ReadonlyArray<Event.RecordedEvent>,
  lag: Metric.Metric.Gauge<number>
): Effect.Effect<Outcome> =>
  Effect.gen(function* () {
    const last = handled[handled.length - 1]!
    cell.checkpoint = Event.checkpointOf(last)
    cell.processed += handled.length
    cell.lastEventAt = Option.some(last.recordedAt)
    cell.lastError = Option.none()
    cell.state = "catching-up"
    const now = yield* Clock.currentTimeMillis
    yield* Metric.incrementBy(
      Metrics.projectionEventsTotal.pipe(Metric.tagged("projection", rt.def.name)),
      handled.length
    )
    yield* Metric.set(lag, Math.max(0, now - last.recordedAt.epochMillis) / 1000)
    return { _tag: "Committed" } as const
  })

type Transient = CheckpointStore.CheckpointStoreError | EventStore.EventStoreError

const isTransient = (error: unknown): error is Transient =>
  typeof error === "object" &&
  error !== null &&
  ((error as { readonly _tag?: unknown })._tag === "CheckpointStoreError" ||
    (error as { readonly _tag?: unknown })._tag === "EventStoreError")

const stalled = (cell: Cell | undefined, error: string) =>
  Effect.sync(() => {
    if (cell !== undefined) {
      cell.state = "stalled"
      cell.lastError = Option.some(error)
    }
  })

const transientRetry = Schedule.exponential("100 millis").pipe(
  Schedule.either(Schedule.spaced("5 seconds")),
  Schedule.jittered
)

/** Retries store failures for as long as they last, showing the partition as stalled meanwhile. */
export const untilDone = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  cell?: Cell
): Effect.Effect<A, Exclude<E, Transient>, R> =>
  effect.pipe(
    Effect.tapError((error) =>
      isTransient(error)
        ? Effect.zipRight(stalled(cell, error.message), Effect.logWarning("store unavailable; retrying", error))
        : Effect.void
    ),
    Effect.retry({ schedule: transientRetry, while: isTransient }),
    Effect.catchIf(isTransient, (error) => Effect.die(error))
  ) as Effect.Effect<A, Exclude<E, Transient>, R>

/** The events a partition reads: its definition's types and categories, in its partition. */
export const readFilters = <A, E, R>(rt: Runtime<A, E, R>, cell: Cell): EventStore.HeldBackOptions => ({
  ...(rt.def.types === undefined ? {} : { types: rt.def.types }),
  ...(rt.def.categories === undefined ? {} : { categories: rt.def.categories }),
  ...(rt.def.partitions === 1 ? {} : { partition: { count: rt.def.partitions, index: cell.partition } })
})

/** Up to a batch (or `size`) of the partition's events after `after`. */
export const readBatch = <A, E, R>(
  rt: Runtime<A, E, R>,
  cell: Cell,
  after: Event.Checkpoint,
  size = rt.def.batchSize
) => Effect.map(rt.events.readAllPage({ after, batchSize: size, ...readFilters(rt, cell) }), (page) => page.events)

/** {@link readBatch}, decoded (see {@link decodeBatch}). */
export const readDecoded = <A, E, R>(rt: Runtime<A, E, R>, cell: Cell, after: Event.Checkpoint) =>
  rt.def.codec.personal
    ? Effect.flatMap(readBatch(rt, cell, after), (events) =>
        Effect.map(rt.def.codec.open(events), (opened) => decodeBatch(rt, events, opened))
      )
    : Effect.map(readBatch(rt, cell, after), (events) => decodeBatch(rt, events))
