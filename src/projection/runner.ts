/**
 * The checkpointed runner behind `Projection` (and so sagas and the outbox relay): a supervisor per worker
 * that keeps a fair share of partition leases, and a fiber per owned partition that reads batches after
 * its checkpoint and hands each to `batch`, which commits its effects with the checkpoint.
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
import * as Metrics from "../Metrics.js"
import type * as Upcaster from "../Upcaster.js"
import * as Wakeup from "../Wakeup.js"
import { type Batch, type Cell, decodeBatch, handleBatch, type Runtime, untilDone } from "./batch.js"
import { handleRequests } from "./requests.js"
import * as Progress from "./progress.js"
import * as Uuid from "../internal/uuid.js"

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
  /**
   * Whether the handler runs inside the batch's transaction (default). A handler whose effects are not in
   * the store's database (a broker) runs before it instead, so no transaction is held open meanwhile.
   */
  readonly transactional?: boolean
  /** Empties the read model, for a rebuild an operator requested (see `CheckpointStore.requestRebuild`); default nothing. */
  readonly truncate?: Effect.Effect<void, E, R>
}

/** Options of a runner. */
export interface RunOptions {
  /** How often an idle runner reads again when no wake-up hint comes; default 1 second. */
  readonly pollInterval?: Duration.DurationInput
  /** How long a partition lease lasts unless renewed (every third of it); default 10 seconds. */
  readonly leaseTtl?: Duration.DurationInput
  /** This worker's id in leases; default a fresh UUID. */
  readonly workerId?: string
  /**
   * How long a live partition's events may wait behind the read horizon (an open transaction elsewhere,
   * PostgreSQL) before its status says `stalled` and names the transaction; default 5 seconds.
   */
  readonly stallAfter?: Duration.DurationInput
  /**
   * How often, at most, a catching-up partition logs its progress (`Effect.log` annotated with projection,
   * partition, done, total, rate and eta); default 10 seconds. It logs one line more when it goes live.
   */
  readonly progressLogInterval?: Duration.DurationInput
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
  /** When the oldest event of the batch being handled was recorded (none between batches). */
  readonly pendingSince: Option.Option<DateTime.Utc>
  /**
   * Once live: events of this partition committed but not readable yet, held back by an older open
   * transaction (PostgreSQL, see `EventStore.HeldBack`), as the lag sampler last saw them. Held back for
   * longer than `RunOptions.stallAfter`, the partition reports itself `stalled`, naming the blocker.
   */
  readonly heldBack: Option.Option<EventStore.HeldBack>
  /**
   * While the partition catches up (a first run, a rebuild, a restart behind the head, or more than a batch
   * behind once live): log positions done of the total between where the catch-up began and the head
   * (approximately events: positions count every partition, type and category, and have gaps), the rate in
   * positions per second over about the last 30 seconds, and the seconds left at that rate (none while the
   * rate is 0). None once live.
   */
  readonly progress: Option.Option<Progress.Progress>
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
   * How far behind the owned partitions are: positions between the farthest behind's checkpoint and the
   * head (events of every partition and type, give or take rolled-back positions), plus the events held
   * back, and, in seconds, the age of the oldest event of a batch being
   * handled (for the outbox relay: of the oldest unpublished event) or else of the last handled event;
   * 0 once caught up.
   */
  readonly lag: { readonly events: number; readonly seconds: number }
  /**
   * While owned partitions catch up: the progress of the one expected to finish last (the longest ETA, see
   * `PartitionStatus.progress`), i.e. when the runner will be live. None once they all are.
   */
  readonly progress: Option.Option<Progress.Progress>
  readonly lastError: Option.Option<string>
  /** The tenant the runner runs for (see `Tenancy`), if any. */
  readonly tenant: Option.Option<string>
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

/** A partition's lag gauges (see `Metrics.projectionLagSeconds`, `Metrics.projectionLagEvents`). */
const lagGauges = <A, E, R>(def: Definition<A, E, R>, partition: number) => {
  const tagged = (gauge: Metric.Metric.Gauge<number>) =>
    Metric.tagged(
      Metric.tagged(Metric.tagged(gauge, "projection", def.name), "version", String(def.version)),
      "partition",
      String(partition)
    )
  return { seconds: tagged(Metrics.projectionLagSeconds), events: tagged(Metrics.projectionLagEvents) }
}

// ---------------------------------------------------------------------------------------------------
// runner
// ---------------------------------------------------------------------------------------------------

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
      worker: options?.workerId ?? (yield* Uuid.v7),
      stallAfter: Duration.toMillis(options?.stallAfter ?? "5 seconds"),
      progressLogInterval: Duration.toMillis(options?.progressLogInterval ?? "10 seconds")
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
        const tenant = yield* Event.CurrentTenant
        yield* registry.value.add(
          Effect.map(
            status(rt, () => [...owned.values()].map((o) => o.cell)),
            (s): Status => ({ ...s, tenant })
          )
        )
      }
      const drop = (partition: number) =>
        Effect.suspend(() => {
          const entry = owned.get(partition)
          owned.delete(partition)
          return entry === undefined
            ? Effect.void
            : Effect.all(
                [
                  Fiber.interrupt(entry.fiber),
                  Effect.ignore(rt.checkpoints.release(entry.lease)),
                  // another worker reports the partition now
                  resetLag(rt, partition)
                ],
                { discard: true }
              )
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
      // the partitions had committed before the read, or a commit racing the read looks like a reset). A
      // reset also clears the live flags: a partition live here whose flag is cleared was reset too, even
      // at the start of the log (one that never had an event), and must catch up and mark itself live again
      const restartReset = Effect.gen(function* () {
        const before = new Map(
          [...owned].map(([partition, entry]) => [
            partition,
            { checkpoint: entry.cell.checkpoint, live: entry.cell.state === "live" }
          ])
        )
        const stored = yield* Effect.option(rt.checkpoints.partitions(rt.id))
        if (Option.isNone(stored)) return
        for (const p of stored.value) {
          const entry = owned.get(p.partition)
          const committed = before.get(p.partition)
          if (entry === undefined || committed === undefined) continue
          const movedBack = Event.checkpointOrder(p.checkpoint, committed.checkpoint) < 0
          if (!movedBack && (p.live || !committed.live)) continue
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
            // whoever claims it reports it from now on
            yield* resetLag(rt, partition)
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
      // the lag gauges, sampled beside the supervisor (a slow read must not delay lease renewals)
      yield* sampleLag(rt, () => [...owned.values()].map((o) => o.cell)).pipe(
        Effect.zipRight(Effect.sleep(Math.max(1, rt.ttl / 3))),
        Effect.forever,
        Effect.forkScoped
      )
      // operators' requests (a rebuild, dead letters to retry), beside the supervisor and at its pace: a
      // long rebuild must not delay lease renewals either
      yield* handleRequests(rt, (partition) => owned.has(partition)).pipe(
        Effect.zipRight(Effect.sleep(Math.max(1, rt.ttl / 3))),
        Effect.forever,
        Effect.forkScoped
      )
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
      const now = yield* Clock.currentTimeMillis
      return cells.map((cell) => snapshot(cell, now))
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
  lastEventAt: Option.none(),
  pendingSince: Option.none(),
  heldBack: Option.none(),
  progress: Option.none()
})

// what the lag sampler saw behind the horizon counts while the partition is live (until the next sample)
const snapshot = (cell: Cell, now: number): PartitionStatus => ({
  ...cell,
  heldBack: cell.state === "live" ? cell.heldBack : Option.none(),
  progress: Option.map(cell.progress, (tracker) => Progress.view(tracker, now))
})

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
      const gauges = lagGauges(rt.def, cell.partition)
      const lag = gauges.seconds
      let markedLive = false
      // whether a catch-up starts from where the partition was claimed or reset (its end is worth a log line)
      // rather than a live partition falling behind
      let fromStart = true
      // while a full batch is handled, the next one is read and decoded (client and database work overlap)
      let next: Fiber.RuntimeFiber<Batch<A>> | undefined
      // reads left after a hint that found nothing (the events may not be visible yet), see below
      let rechecks = 0
      while (true) {
        const read =
          next === undefined ? yield* untilDone(readDecoded(rt, cell, cell.checkpoint), cell) : yield* Fiber.join(next)
        const batch = read.events
        next = undefined
        if (batch.length > 0) {
          rechecks = 0
          const end = Event.checkpointOf(batch[batch.length - 1]!)
          if (batch.length === rt.def.batchSize) next = yield* Effect.fork(untilDone(readDecoded(rt, cell, end), cell))
          // a full batch: more follow, the partition is catching up
          if (batch.length === rt.def.batchSize && Option.isNone(cell.progress))
            cell.progress = yield* beginCatchUp(rt, cell, fromStart)
          cell.pendingSince = Option.some(batch[0]!.recordedAt)
          const outcome = yield* handleBatch(rt, lease, cell, read, lag)
          cell.pendingSince = Option.none()
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
            cell.progress = Option.none()
            fromStart = true
            continue
          }
          if (Option.isSome(cell.progress)) yield* progressed(rt, cell, cell.progress.value)
        }
        if (batch.length === rt.def.batchSize) {
          cell.state = "catching-up"
          continue
        }
        cell.state = "live"
        yield* caughtUp(rt, cell)
        fromStart = false
        if (!markedLive) markedLive = yield* goLive(rt, lease, cell)
        if (mode === "catchUp") return "done"
        // caught up, unless the lag sampler saw events held back behind the read horizon (it sets the gauges)
        if (Option.isNone(cell.heldBack)) {
          yield* Metric.set(lag, 0)
          yield* Metric.set(gauges.events, 0)
        }
        // a hint can come before its events are readable (on PostgreSQL, while an older transaction is
        // still open): look again a few times, sooner than the poll interval
        if (batch.length === 0 && rechecks > 0) {
          yield* Effect.sleep(Duration.millis(recheckDelay(rechecks)))
          rechecks--
          continue
        }
        rechecks = (yield* Wakeup.awaitHint(subscription, rt.pollInterval)) ? maxRechecks : 0
      }
    })
  ).pipe(Effect.annotateLogs({ partition: cell.partition }))

/**
 * Starts following a catch-up's progress from the checkpoint: one `head` read per catch-up (none if it
 * fails; the next full batch tries again). Its end is logged if it started `fromStart` (see `Progress.begin`).
 */
const beginCatchUp = <A, E, R>(rt: Runtime<A, E, R>, cell: Cell, fromStart: boolean) =>
  Effect.gen(function* () {
    const head = yield* Effect.option(rt.events.head)
    const now = yield* Clock.currentTimeMillis
    return Option.flatMap(head, (h) => Progress.begin(h, cell.checkpoint, now, fromStart))
  })

/** After a committed batch of a catch-up: its progress, logged at most once per `progressLogInterval`. */
const progressed = <A, E, R>(rt: Runtime<A, E, R>, cell: Cell, tracker: Progress.Tracker) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => {
    Progress.advance(tracker, cell.checkpoint, now)
    return Progress.logIfDue(tracker, now, rt.progressLogInterval, {
      projection: rt.def.name,
      partition: cell.partition
    })
  })

/** The partition is live: its catch-up, if any, is over (and logged, see `Progress.begin`). */
const caughtUp = <A, E, R>(rt: Runtime<A, E, R>, cell: Cell) =>
  Effect.suspend(() => {
    if (Option.isNone(cell.progress)) return Effect.void
    const tracker = cell.progress.value
    cell.progress = Option.none()
    return Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Progress.logLive(tracker, now, { projection: rt.def.name, partition: cell.partition })
    )
  })

/**
 * After a hint whose events were not readable yet (on PostgreSQL a transaction that began earlier is still
 * open, usually for a few milliseconds), reads again every 10 ms for 100 ms, then less often, for about a
 * second in all: cheap reads, and far less latency than waiting for the next hint or poll.
 */
const maxRechecks = 16
const recheckDelay = (left: number) => (maxRechecks - left < 10 ? 10 : 10 * 2 ** Math.min(4, maxRechecks - left - 9))

/** The events a partition reads: its definition's types and categories, in its partition. */
const readFilters = <A, E, R>(rt: Runtime<A, E, R>, cell: Cell): EventStore.HeldBackOptions => ({
  ...(rt.def.types === undefined ? {} : { types: rt.def.types }),
  ...(rt.def.categories === undefined ? {} : { categories: rt.def.categories }),
  ...(rt.def.partitions === 1 ? {} : { partition: { count: rt.def.partitions, index: cell.partition } })
})

const readBatch = <A, E, R>(rt: Runtime<A, E, R>, cell: Cell, after: Event.Checkpoint, size = rt.def.batchSize) =>
  rt.events
    .readAll({ after, batchSize: size, maxCount: size, ...readFilters(rt, cell) })
    .pipe(Stream.runCollect, Effect.map(Chunk.toReadonlyArray))

const readDecoded = <A, E, R>(rt: Runtime<A, E, R>, cell: Cell, after: Event.Checkpoint) =>
  Effect.map(readBatch(rt, cell, after), (events) => decodeBatch(rt, events))

/**
 * Samples the lag gauges of the owned partitions. A live one has read all it can: its events held back
 * behind the read horizon, if any (`EventStore.heldBack`: how many, and the age of the oldest), else 0.
 * Otherwise, if an event waits, the positions between the checkpoint and the head, and the age of the
 * oldest waiting event (so a stalled or halted partition shows a growing lag even though it commits
 * nothing). One `head` read, then per partition one `heldBack` (live) or a read of one event (not live).
 */
const sampleLag = <A, E, R>(rt: Runtime<A, E, R>, owned: () => ReadonlyArray<Cell>): Effect.Effect<void> =>
  Effect.gen(function* () {
    if (owned().length === 0) return
    const head = yield* rt.events.head
    for (const cell of owned()) {
      // the log grew meanwhile: a catch-up heads for the new head
      if (Option.isSome(cell.progress)) Progress.extend(cell.progress.value, head)
      const gauges = lagGauges(rt.def, cell.partition)
      const checkpoint = cell.checkpoint
      const live = cell.state === "live"
      const waiting = live ? [] : yield* readBatch(rt, cell, checkpoint, 1)
      // a live partition has read all it can: events may still wait behind the read horizon
      const heldBack = live ? yield* rt.events.heldBack(readFilters(rt, cell)) : Option.none()
      // dropped meanwhile: its gauges were reset, and are another worker's now
      if (!owned().includes(cell)) continue
      const wasHeldBack = Option.isSome(cell.heldBack)
      cell.heldBack = heldBack
      const now = yield* Clock.currentTimeMillis
      if (Option.isSome(heldBack)) {
        yield* Metric.set(gauges.events, heldBack.value.events)
        yield* Metric.set(gauges.seconds, Math.max(0, now - heldBack.value.since.epochMillis) / 1000)
        continue
      }
      if (waiting.length === 0) {
        yield* Metric.set(gauges.events, 0)
        // a live partition's seconds are its own (set as it commits), unless they showed a stall now over
        if (!live || wasHeldBack) yield* Metric.set(gauges.seconds, 0)
        continue
      }
      yield* Metric.set(gauges.events, Math.max(1, Number(head.position - checkpoint.position)))
      yield* Metric.set(gauges.seconds, Math.max(0, now - waiting[0]!.recordedAt.epochMillis) / 1000)
    }
  }).pipe(Effect.catchAllCause((cause) => Effect.logDebug("could not sample the projection lag", cause)))

const resetLag = <A, E, R>(rt: Runtime<A, E, R>, partition: number) =>
  Effect.suspend(() => {
    const gauges = lagGauges(rt.def, partition)
    return Effect.zipRight(Metric.set(gauges.events, 0), Metric.set(gauges.seconds, 0))
  })

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

// ---------------------------------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------------------------------

const severity: ReadonlyArray<State> = ["failed", "stalled", "starting", "catching-up", "live"]

/** A live partition whose events wait behind the read horizon for longer than `stallAfter` is stalled. */
const heldBackTooLong = (p: PartitionStatus, now: number, stallAfter: number): PartitionStatus => {
  if (p.state !== "live" || Option.isNone(p.heldBack)) return p
  const { blocker, events, since } = p.heldBack.value
  const waited = now - since.epochMillis
  if (waited <= stallAfter) return p
  return {
    ...p,
    state: "stalled",
    lastError: Option.some(
      `${events} committed event(s) held back for ${Math.round(waited / 1000)} s by the read horizon` +
        Option.match(blocker, { onNone: () => "", onSome: (b) => `: the oldest open transaction is ${b}` })
    )
  }
}

const status = <A, E, R>(
  rt: Runtime<A, E, R>,
  cells: () => ReadonlyArray<Cell>
): Effect.Effect<Omit<Status, "tenant">> =>
  Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    const owned = cells()
      .map((cell) => heldBackTooLong(snapshot(cell, now), now, rt.stallAfter))
      .sort((a, b) => a.partition - b.partition)
    const head = yield* Effect.option(rt.events.head)
    let events = 0
    // positions count every partition's events: the farthest partition behind is the backlog (summing
    // the distances would count the events between them once per partition)
    let behindInLog = 0
    let seconds = 0
    for (const p of owned) {
      if (Option.isSome(p.heldBack)) {
        events += p.heldBack.value.events
        seconds = Math.max(seconds, (now - p.heldBack.value.since.epochMillis) / 1000)
      }
      if (p.state === "live" || Option.isSome(p.heldBack)) continue
      if (Option.isSome(head)) behindInLog = Math.max(behindInLog, Number(head.value.position - p.checkpoint.position))
      // a batch that cannot be handled (a broker outage) shows the age of its oldest event
      const behind = Option.orElse(p.pendingSince, () => p.lastEventAt)
      if (Option.isSome(behind)) seconds = Math.max(seconds, (now - behind.value.epochMillis) / 1000)
    }
    const state = owned.length === 0 ? "idle" : severity.find((s) => owned.some((p) => p.state === s))!
    return {
      name: rt.def.name,
      version: rt.def.version,
      worker: rt.worker,
      state,
      partitions: rt.def.partitions,
      owned,
      lag: { events: events + behindInLog, seconds },
      progress: Progress.slowest(owned.flatMap((p) => Option.toArray(p.progress))),
      lastError: Option.firstSomeOf(owned.map((p) => p.lastError))
    }
  })
