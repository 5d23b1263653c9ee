/**
 * The checkpointed runner behind `Projection` (and, later, sagas): a supervisor per worker that keeps a
 * fair share of partition leases, and a fiber per owned partition that reads batches after its
 * checkpoint and commits each batch's effects with the checkpoint, in one transaction.
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as CheckpointStore from "../CheckpointStore.js"
import * as Event from "../Event.js"
import * as EventStore from "../EventStore.js"
import type * as Upcaster from "../Upcaster.js"
import * as Wakeup from "../Wakeup.js"
import * as Uuid from "./uuid.js"

/** What the runner needs of a definition (see `Projection.make`). */
export interface Definition<A, E, R> {
  readonly name: string
  readonly version: number
  readonly codec: Upcaster.EventCodec<A>
  /** Stored event types to read: the codec's types and the types its upcasters read; all if undefined. */
  readonly types: ReadonlyArray<string> | undefined
  readonly categories: ReadonlyArray<string> | undefined
  readonly handleBatch: (events: ReadonlyArray<Upcaster.Decoded<A>>) => Effect.Effect<void, E, R>
  readonly partitions: number
  readonly batchSize: number
  readonly onPoison: "stop" | "skip"
  readonly retry: Schedule.Schedule<unknown, unknown>
}

/** Options of a runner. */
export interface RunOptions {
  /** How often an idle runner reads again when no wake-up hint comes; default 1 second. */
  readonly pollInterval?: Duration.DurationInput
  /** How long a partition lease lasts unless renewed (every third of it); default 10 seconds. */
  readonly leaseTtl?: Duration.DurationInput
  /** This worker's id in leases; default a fresh UUID. */
  readonly workerId?: string
}

/** `catching-up` and `live` are healthy; `stalled` retries a store failure; `failed` halted on a poison event. */
export type State = "starting" | "catching-up" | "live" | "stalled" | "failed" | "idle"

/** One owned partition, as this worker sees it. */
export interface PartitionStatus {
  readonly partition: number
  readonly state: State
  readonly checkpoint: Event.Checkpoint
  /** Events handled (or dead-lettered) by this worker. */
  readonly processed: number
  readonly lastError: Option.Option<string>
  /** When the last handled event was recorded. */
  readonly lastEventAt: Option.Option<DateTime.Utc>
}

/** A runner's status. */
export interface Status {
  readonly name: string
  readonly version: number
  readonly worker: string
  /** The worst state of the owned partitions (`idle` when it owns none). */
  readonly state: State
  readonly partitions: number
  readonly owned: ReadonlyArray<PartitionStatus>
  /**
   * How far behind the owned partitions are: positions between their checkpoints and the head (events,
   * give or take rolled-back positions) and the age of the last handled event; 0 once caught up.
   */
  readonly lag: { readonly events: number; readonly seconds: number }
  readonly lastError: Option.Option<string>
}

/** The in-process registry of runner statuses (for the HTTP API and health checks). */
export class Registry extends Context.Tag("effect-eventsourcing/ProjectionRegistry")<
  Registry,
  {
    /** Adds a runner's status for the scope's lifetime. */
    readonly add: (status: Effect.Effect<Status>) => Effect.Effect<void, never, Scope.Scope>
    readonly statuses: Effect.Effect<ReadonlyArray<Status>>
  }
>() {}

export const layerRegistry: Layer.Layer<Registry> = Layer.sync(Registry, () => {
  const entries = new Set<Effect.Effect<Status>>()
  return Registry.of({
    add: (status) =>
      Effect.acquireRelease(
        Effect.sync(() => entries.add(status)),
        () => Effect.sync(() => entries.delete(status))
      ),
    statuses: Effect.suspend(() => Effect.all([...entries]))
  })
})

/** A partition halted on a poison event under the `stop` policy (reported by `catchUp`). */
export class ProjectionHalted extends Schema.TaggedError<ProjectionHalted>()("ProjectionHalted", {
  projection: Schema.String,
  partition: Schema.Int,
  error: Schema.String
}) {
  override get message() {
    return `Projection ${this.projection} partition ${this.partition} halted: ${this.error}`
  }
}

const eventsHandled = Metric.counter("eventsourcing_projection_events_total", {
  description: "events handled by projection runners"
})
const lagSeconds = Metric.gauge("eventsourcing_projection_lag_seconds", {
  description: "age of the last event a projection handled; 0 once caught up"
})

// ---------------------------------------------------------------------------------------------------
// runner
// ---------------------------------------------------------------------------------------------------

/** Mutable per-partition status, written by its fiber only. */
interface Cell {
  partition: number
  state: State
  checkpoint: Event.Checkpoint
  processed: number
  lastError: Option.Option<string>
  lastEventAt: Option.Option<DateTime.Utc>
}

interface Runtime<A, E, R> {
  readonly def: Definition<A, E, R>
  readonly id: CheckpointStore.ProjectionId
  readonly events: EventStore.EventStore["Type"]
  readonly checkpoints: CheckpointStore.CheckpointStore["Type"]
  readonly wakeup: Option.Option<Wakeup.Wakeup["Type"]>
  readonly ttl: number
  readonly pollInterval: Duration.Duration
  readonly worker: string
}

const runtime = <A, E, R>(def: Definition<A, E, R>, options: RunOptions | undefined) =>
  Effect.gen(function* () {
    const runtime: Runtime<A, E, R> = {
      def,
      id: { name: def.name, version: def.version },
      events: yield* EventStore.EventStore,
      checkpoints: yield* CheckpointStore.CheckpointStore,
      wakeup: yield* Effect.serviceOption(Wakeup.Wakeup),
      ttl: Duration.toMillis(options?.leaseTtl ?? "10 seconds"),
      pollInterval: Duration.decode(options?.pollInterval ?? "1 second"),
      worker: options?.workerId ?? (yield* Uuid.v7)
    }
    yield* untilDone(runtime.checkpoints.register(runtime.id, def.partitions))
    return runtime
  })

/** See `Projection.run`. */
export const run = <A, E, R>(
  def: Definition<A, E, R>,
  options?: RunOptions
): Effect.Effect<
  never,
  CheckpointStore.PartitionCountMismatch,
  EventStore.EventStore | CheckpointStore.CheckpointStore | R
> =>
  Effect.scoped(
    Effect.gen(function* () {
      const rt = yield* runtime(def, options)
      const owned = new Map<
        number,
        {
          readonly lease: CheckpointStore.Lease
          readonly cell: Cell
          readonly fiber: Fiber.RuntimeFiber<"done" | "leaseLost">
        }
      >()
      const registry = yield* Effect.serviceOption(Registry)
      if (Option.isSome(registry)) {
        yield* registry.value.add(status(rt, () => [...owned.values()].map((o) => o.cell)))
      }
      const drop = (partition: number) =>
        Effect.suspend(() => {
          const entry = owned.get(partition)
          owned.delete(partition)
          return entry === undefined
            ? Effect.void
            : Effect.zipRight(Fiber.interrupt(entry.fiber), Effect.ignore(rt.checkpoints.release(entry.lease)))
        })
      yield* Effect.addFinalizer(() =>
        Effect.zipRight(
          Effect.forEach([...owned.keys()], drop, { discard: true }),
          Effect.ignore(rt.checkpoints.leave(rt.id, rt.worker))
        )
      )

      const start = (lease: CheckpointStore.Lease, checkpoint: Event.Checkpoint) =>
        Effect.gen(function* () {
          const cell = newCell(lease.partition, checkpoint)
          const fiber = yield* Effect.forkScoped(partitionLoop(rt, lease, cell, "tail"))
          owned.set(lease.partition, { lease, cell, fiber })
        })
      // a rebuild moved checkpoints back: an idle partition would only notice at its next commit
      // (stored checkpoints never sort before what a partition committed, unless reset: compare with what
      // the partitions had committed before the read, or a commit racing the read looks like a reset)
      const restartReset = Effect.gen(function* () {
        const before = new Map([...owned].map(([partition, entry]) => [partition, entry.cell.checkpoint]))
        const stored = yield* Effect.option(rt.checkpoints.partitions(rt.id))
        if (Option.isNone(stored)) return
        for (const p of stored.value) {
          const entry = owned.get(p.partition)
          const committed = before.get(p.partition)
          if (entry === undefined || committed === undefined || Event.checkpointOrder(p.checkpoint, committed) >= 0)
            continue
          yield* Fiber.interrupt(entry.fiber)
          yield* start(entry.lease, p.checkpoint)
        }
      })
      const supervise = Effect.gen(function* () {
        const workers = yield* Effect.option(rt.checkpoints.heartbeat(rt.id, rt.worker, rt.ttl))
        for (const [partition, entry] of owned) {
          const exit = yield* Fiber.poll(entry.fiber)
          if (Option.isSome(exit)) {
            // a lost lease ends a partition quietly; anything else is a defect worth seeing
            if (Exit.isFailure(exit.value)) {
              yield* Effect.logError(`partition ${partition} stopped; it will be claimed again`, exit.value.cause)
            }
            owned.delete(partition)
            continue
          }
          const renewed = yield* Effect.either(rt.checkpoints.renew(entry.lease, rt.ttl))
          if (Either.isLeft(renewed) && renewed.left._tag === "LeaseLost") yield* drop(partition)
        }
        yield* restartReset
        if (Option.isNone(workers)) return
        const fair = Math.ceil(def.partitions / Math.max(1, workers.value))
        for (const partition of [...owned.keys()].sort((a, b) => b - a)) {
          if (owned.size <= fair) break
          yield* drop(partition)
        }
        for (let partition = 0; partition < def.partitions && owned.size < fair; partition++) {
          if (owned.has(partition)) continue
          const claimed = yield* Effect.option(rt.checkpoints.claim(rt.id, partition, rt.worker, rt.ttl))
          if (Option.isNone(claimed) || Option.isNone(claimed.value)) continue
          yield* start(claimed.value.value.lease, claimed.value.value.checkpoint)
        }
      })
      return yield* supervise.pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("projection supervisor step failed", cause)),
        Effect.zipRight(Effect.sleep(Math.max(1, rt.ttl / 3))),
        Effect.forever
      )
    })
  ).pipe(Effect.annotateLogs({ projection: def.name, version: def.version }))

/** See `Projection.catchUp`. */
export const catchUp = <A, E, R>(
  def: Definition<A, E, R>,
  options?: RunOptions
): Effect.Effect<
  ReadonlyArray<PartitionStatus>,
  CheckpointStore.PartitionCountMismatch | ProjectionHalted,
  EventStore.EventStore | CheckpointStore.CheckpointStore | R
> =>
  Effect.scoped(
    Effect.gen(function* () {
      const rt = yield* runtime(def, options)
      const cells = yield* Effect.forEach(
        Array.from({ length: def.partitions }, (_, i) => i),
        (partition) =>
          Effect.gen(function* () {
            const cell = newCell(partition, Event.start)
            // a lease lost on the way (taken over) is claimed again, from the stored checkpoint
            while (true) {
              const { checkpoint, lease } = yield* claimWhenFree(rt, partition)
              cell.checkpoint = checkpoint
              const outcome = yield* Effect.scoped(
                Effect.gen(function* () {
                  yield* Effect.addFinalizer(() => Effect.ignore(rt.checkpoints.release(lease)))
                  yield* rt.checkpoints
                    .renew(lease, rt.ttl)
                    .pipe(Effect.ignore, Effect.repeat(Schedule.spaced(Math.max(1, rt.ttl / 3))), Effect.forkScoped)
                  return yield* partitionLoop({ ...rt, wakeup: Option.none() }, lease, cell, "catchUp")
                })
              )
              if (outcome === "done") return cell
            }
          }),
        { concurrency: "unbounded" }
      )
      const halted = cells.find((c) => c.state === "failed")
      if (halted !== undefined) {
        return yield* new ProjectionHalted({
          projection: def.name,
          partition: halted.partition,
          error: Option.getOrElse(halted.lastError, () => "")
        })
      }
      return cells.map(snapshot)
    })
  )

// ---------------------------------------------------------------------------------------------------
// partitions
// ---------------------------------------------------------------------------------------------------

/** Claims a partition, waiting while another worker holds it. */
const claimWhenFree = <A, E, R>(rt: Runtime<A, E, R>, partition: number) =>
  untilDone(
    rt.checkpoints
      .claim(rt.id, partition, rt.worker, rt.ttl)
      .pipe(
        Effect.flatten,
        Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.whileInput(Cause.isNoSuchElementException)))
      )
  ).pipe(Effect.orDie)

const newCell = (partition: number, checkpoint: Event.Checkpoint): Cell => ({
  partition,
  state: "starting",
  checkpoint,
  processed: 0,
  lastError: Option.none(),
  lastEventAt: Option.none()
})

const snapshot = (cell: Cell): PartitionStatus => ({ ...cell })

/** What became of a batch. */
type Outcome =
  | { readonly _tag: "Committed" }
  | { readonly _tag: "LeaseLost" }
  | { readonly _tag: "Reset" }
  | { readonly _tag: "Halted" }

/**
 * One partition: read a batch after the checkpoint, handle and commit it, repeat; when a read comes back
 * short the partition is live, and waits for a hint (`tail`) or returns (`catchUp`). Returns when the
 * lease is lost, or in `catchUp` mode once live (or halted).
 */
const partitionLoop = <A, E, R>(
  rt: Runtime<A, E, R>,
  lease: CheckpointStore.Lease,
  cell: Cell,
  mode: "tail" | "catchUp"
): Effect.Effect<"done" | "leaseLost", never, R> =>
  Effect.scoped(
    Effect.gen(function* () {
      const subscription = Option.isSome(rt.wakeup) ? yield* rt.wakeup.value.subscribe : undefined
      const lag = lagSeconds.pipe(
        Metric.tagged("projection", rt.def.name),
        Metric.tagged("version", String(rt.def.version)),
        Metric.tagged("partition", String(cell.partition))
      )
      let markedLive = false
      // while a full batch is handled, the next one is read (client and database work overlap)
      let next: Fiber.RuntimeFiber<ReadonlyArray<Event.RecordedEvent>> | undefined
      // reads left after a hint that found nothing (the events may not be visible yet), see below
      let rechecks = 0
      while (true) {
        const batch =
          next === undefined ? yield* untilDone(readBatch(rt, cell, cell.checkpoint), cell) : yield* Fiber.join(next)
        next = undefined
        if (batch.length > 0) {
          rechecks = 0
          const end = Event.checkpointOf(batch[batch.length - 1]!)
          if (batch.length === rt.def.batchSize) next = yield* Effect.fork(untilDone(readBatch(rt, cell, end), cell))
          const outcome = yield* handleBatch(rt, lease, cell, batch, lag)
          if (
            next !== undefined &&
            (outcome._tag !== "Committed" || Event.checkpointOrder(cell.checkpoint, end) !== 0)
          ) {
            yield* Fiber.interrupt(next)
            next = undefined
          }
          if (outcome._tag === "LeaseLost") {
            yield* Effect.logWarning(`lost the lease of partition ${cell.partition}; another worker took it over`)
            return "leaseLost"
          }
          if (outcome._tag === "Halted") return mode === "catchUp" ? "done" : yield* Effect.never
          if (outcome._tag === "Reset") {
            const stored = yield* untilDone(rt.checkpoints.partitions(rt.id), cell)
            cell.checkpoint = stored.find((p) => p.partition === cell.partition)?.checkpoint ?? Event.start
            markedLive = false
            continue
          }
        }
        if (batch.length === rt.def.batchSize) {
          cell.state = "catching-up"
          continue
        }
        cell.state = "live"
        if (!markedLive) markedLive = yield* goLive(rt, lease, cell)
        if (mode === "catchUp") return "done"
        yield* Metric.set(lag, 0)
        // a hint can come before its events are readable (on PostgreSQL, while an older transaction is
        // still open): look again a few times, sooner than the poll interval
        if (batch.length === 0 && rechecks > 0) {
          yield* Effect.sleep(Duration.millis(5 * 4 ** (4 - rechecks)))
          rechecks--
          continue
        }
        rechecks = (yield* Wakeup.awaitHint(subscription, rt.pollInterval)) ? 4 : 0
      }
    })
  ).pipe(Effect.annotateLogs({ partition: cell.partition }))

const readBatch = <A, E, R>(rt: Runtime<A, E, R>, cell: Cell, after: Event.Checkpoint) =>
  rt.events
    .readAll({
      after,
      batchSize: rt.def.batchSize,
      maxCount: rt.def.batchSize,
      ...(rt.def.types === undefined ? {} : { types: rt.def.types }),
      ...(rt.def.categories === undefined ? {} : { categories: rt.def.categories }),
      ...(rt.def.partitions === 1 ? {} : { partition: { count: rt.def.partitions, index: cell.partition } })
    })
    .pipe(Stream.runCollect, Effect.map(Chunk.toReadonlyArray))

/** Records the first catch-up, and activates this version once every partition has caught up. */
const goLive = <A, E, R>(rt: Runtime<A, E, R>, lease: CheckpointStore.Lease, cell: Cell) =>
  Effect.gen(function* () {
    yield* rt.checkpoints.markLive(lease, cell.checkpoint)
    const partitions = yield* rt.checkpoints.partitions(rt.id)
    if (partitions.every((p) => p.live)) yield* rt.checkpoints.activate(rt.id)
    return true
  }).pipe(
    Effect.catchAll((error) =>
      Effect.as(Effect.logWarning("could not record the catch-up; trying again later", error), false)
    ),
    Effect.annotateLogs({ partition: cell.partition })
  )

/** A handler's failure (or defect), told apart from the store's own errors. */
class HandlerFailed {
  readonly _tag = "HandlerFailed"
  /** A database failure that passes (see {@link isPassing}): retried as long as it lasts, never poison. */
  readonly passing: boolean
  constructor(readonly cause: Cause.Cause<unknown>) {
    this.passing = isPassing(cause)
  }
}

/**
 * Whether a handler failure comes from the infrastructure rather than from the event: a store's own
 * error (event, checkpoint or saga store unavailable), a broker's (`PublishError`), or an `SqlError` other than bad data or a bad statement (a lost connection, a deadlock, a serialization failure, a timeout,
 * a busy database). SQLSTATE classes 22 (data), 23 (integrity), 42 (syntax, access), 2F/3F/P0 (routines)
 * and SQLite's constraint, mismatch, range, too-big and plain errors are the event's; so is any other
 * failure of the handler.
 */
const isPassing = (cause: Cause.Cause<unknown>): boolean =>
  Chunk.some(Cause.failures(cause), (error) => {
    const tag = typeof error === "object" && error !== null ? (error as { _tag?: unknown })._tag : undefined
    if (
      tag === "EventStoreError" ||
      tag === "CheckpointStoreError" ||
      tag === "SagaStoreError" ||
      tag === "PublishError"
    ) {
      return true
    }
    if (tag !== "SqlError") return false
    const driver = (error as { readonly cause?: { readonly code?: unknown; readonly sqlState?: unknown } }).cause
    const code = String(driver?.sqlState ?? driver?.code ?? "")
    return !/^(22|23|42|2F|3F|P0)...$|^SQLITE_(CONSTRAINT|MISMATCH|RANGE|TOOBIG|ERROR)/.test(code)
  })

const handleBatch = <A, E, R>(
  rt: Runtime<A, E, R>,
  lease: CheckpointStore.Lease,
  cell: Cell,
  batch: ReadonlyArray<Event.RecordedEvent>,
  lag: Metric.Metric.Gauge<number>
): Effect.Effect<Outcome, never, R> =>
  Effect.gen(function* () {
    const decoded: Array<Upcaster.Decoded<A>> = []
    for (const envelope of batch) {
      const result = rt.def.codec.decodeEither(envelope)
      if (Either.isLeft(result)) return yield* oneByOne(rt, lease, cell, batch, lag)
      for (const event of result.right) decoded.push({ event, envelope })
    }
    const attempt = yield* Effect.either(commitWithRetries(rt, lease, cell, decoded, batch[batch.length - 1]!))
    if (Either.isRight(attempt)) return yield* advanced(rt, cell, batch, lag)
    if (attempt.left._tag === "HandlerFailed") return yield* oneByOne(rt, lease, cell, batch, lag)
    return outcomeOf(attempt.left)
  }).pipe(
    Effect.withSpan("Projection.batch", {
      attributes: { projection: rt.def.name, partition: cell.partition, events: batch.length },
      captureStackTrace: false
    })
  )

/** The batch once more, one event per transaction, to find the poison event and apply the policy. */
const oneByOne = <A, E, R>(
  rt: Runtime<A, E, R>,
  lease: CheckpointStore.Lease,
  cell: Cell,
  batch: ReadonlyArray<Event.RecordedEvent>,
  lag: Metric.Metric.Gauge<number>
): Effect.Effect<Outcome, never, R> =>
  Effect.gen(function* () {
    for (const envelope of batch) {
      const decoded = rt.def.codec.decodeEither(envelope)
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
      const letter: CheckpointStore.DeadLetter = {
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
  untilDone(
    rt.checkpoints.transaction(
      Effect.zipRight(
        rt.def.handleBatch(events).pipe(
          Effect.catchAllCause((cause): Effect.Effect<never, HandlerFailed> =>
            // an interruption has no failure in it: pass it on as it is
            Cause.isInterruptedOnly(cause)
              ? Effect.failCause(cause as Cause.Cause<never>)
              : Effect.fail(new HandlerFailed(cause))
          )
        ),
        rt.checkpoints.commit(lease, cell.checkpoint, Event.checkpointOf(last), rt.ttl)
      )
    ),
    cell
  ).pipe(
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
    yield* Metric.incrementBy(eventsHandled.pipe(Metric.tagged("projection", rt.def.name)), handled.length)
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
const untilDone = <A, E, R>(effect: Effect.Effect<A, E, R>, cell?: Cell): Effect.Effect<A, Exclude<E, Transient>, R> =>
  effect.pipe(
    Effect.tapError((error) =>
      isTransient(error)
        ? Effect.zipRight(stalled(cell, error.message), Effect.logWarning("store unavailable; retrying", error))
        : Effect.void
    ),
    Effect.retry({ schedule: transientRetry, while: isTransient }),
    Effect.catchIf(isTransient, (error) => Effect.die(error))
  ) as Effect.Effect<A, Exclude<E, Transient>, R>

// ---------------------------------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------------------------------

const severity: ReadonlyArray<State> = ["failed", "stalled", "starting", "catching-up", "live"]

const status = <A, E, R>(rt: Runtime<A, E, R>, cells: () => ReadonlyArray<Cell>): Effect.Effect<Status> =>
  Effect.gen(function* () {
    const owned = cells()
      .map(snapshot)
      .sort((a, b) => a.partition - b.partition)
    const head = yield* Effect.option(rt.events.head)
    const now = yield* Clock.currentTimeMillis
    let events = 0
    let seconds = 0
    for (const p of owned) {
      if (p.state === "live") continue
      if (Option.isSome(head)) events += Math.max(0, Number(head.value.position - p.checkpoint.position))
      if (Option.isSome(p.lastEventAt)) seconds = Math.max(seconds, (now - p.lastEventAt.value.epochMillis) / 1000)
    }
    const state = owned.length === 0 ? "idle" : severity.find((s) => owned.some((p) => p.state === s))!
    return {
      name: rt.def.name,
      version: rt.def.version,
      worker: rt.worker,
      state,
      partitions: rt.def.partitions,
      owned,
      lag: { events, seconds },
      lastError: Option.firstSomeOf(owned.map((p) => p.lastError))
    }
  })
