/**
 * One partition of a projection runner: claimed, then read batch after batch from its checkpoint, each
 * handed to `batch` to commit with its effects while the next ones are read ahead; live once a read comes
 * back short, then woken by hints (or polls) until its lease is lost.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as CheckpointStore from "../CheckpointStore.js"
import * as Event from "../Event.js"
import * as Wakeup from "../Wakeup.js"
import { type Batch, type Cell, handleBatch, readDecoded, type Runtime, untilDone } from "./batch.js"
import { lagGauges } from "./lag.js"
import * as Progress from "./progress.js"

/** Claims a partition, waiting while another worker holds it. */
export const claimWhenFree = <A, E, R>(rt: Runtime<A, E, R>, partition: number) =>
  untilDone(
    rt.checkpoints
      .claim(rt.id, partition, rt.worker, rt.ttl)
      .pipe(
        Effect.flatten,
        Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.whileInput(Cause.isNoSuchElementException)))
      )
  ).pipe(Effect.orDie)

export const newCell = (partition: number, checkpoint: Event.Checkpoint): Cell => ({
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

/**
 * One partition: read a batch after the checkpoint, handle and commit it, repeat; when a read comes back
 * short the partition is live, and waits for a hint (`tail`) or returns (`catchUp`). Returns when the
 * lease is lost, or in `catchUp` mode once live (or halted).
 */
export const partitionLoop = <A, E, R>(
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
      // while a batch is handled, the batches after it are read and decoded (client and database work overlap)
      let ahead: ReadAhead<A> | undefined
      const stopReading = Effect.suspend(() => {
        const reader = ahead
        ahead = undefined
        return reader === undefined ? Effect.void : Fiber.interrupt(reader.fiber)
      })
      // reads left after a hint that found nothing (the events may not be visible yet), see below
      let rechecks = 0
      while (true) {
        if (ahead === undefined) ahead = yield* readAhead(rt, cell, cell.checkpoint)
        const read = yield* Effect.flatten(Queue.take(ahead.batches))
        const batch = read.events
        // a short batch is the reader's last
        if (batch.length < rt.def.batchSize) ahead = undefined
        if (batch.length > 0) {
          rechecks = 0
          const end = Event.checkpointOf(batch[batch.length - 1]!)
          // a full batch: more follow, the partition is catching up
          if (batch.length === rt.def.batchSize && Option.isNone(cell.progress))
            cell.progress = yield* beginCatchUp(rt, cell, fromStart)
          cell.pendingSince = Option.some(batch[0]!.recordedAt)
          const outcome = yield* handleBatch(rt, lease, cell, read, lag)
          cell.pendingSince = Option.none()
          // what was read ahead follows `end`: of no use unless the batch committed up to there
          if (outcome._tag !== "Committed" || Event.checkpointOrder(cell.checkpoint, end) !== 0) yield* stopReading
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

/** A fiber reading a partition's batches ahead of its handler (see {@link readAhead}). */
interface ReadAhead<A> {
  readonly batches: Queue.Dequeue<Exit.Exit<Batch<A>>>
  readonly fiber: Fiber.RuntimeFiber<void>
}

/**
 * Starts reading the partition's batches from `after`, each after the previous one, for as long as they
 * come back full: a batch is read (and decoded) while the one before it waits to be handled, and that
 * while its predecessor is handled, so at most two batches wait beside the one being handled. Reading
 * this far ahead keeps the client busy through the handler's round trips: the next read never waits for
 * a commit. The reader ends after a short batch (the partition is live). A read's exit is queued as it is,
 * so that a defect reaches the partition fiber rather than ending the reader silently. The reader is a
 * child of the partition fiber: interrupted with it, or by it when what was read ahead is of no use.
 */
const readAhead = <A, E, R>(rt: Runtime<A, E, R>, cell: Cell, after: Event.Checkpoint) =>
  Effect.gen(function* () {
    const batches = yield* Queue.bounded<Exit.Exit<Batch<A>>>(1)
    const read = (from: Event.Checkpoint): Effect.Effect<void> =>
      Effect.flatMap(Effect.exit(untilDone(readDecoded(rt, cell, from), cell)), (exit) =>
        Effect.zipRight(
          Queue.offer(batches, exit),
          Exit.isSuccess(exit) && exit.value.events.length === rt.def.batchSize
            ? Effect.suspend(() => read(Event.checkpointOf(exit.value.events[exit.value.events.length - 1]!)))
            : Effect.void
        )
      )
    const fiber = yield* Effect.fork(read(after))
    return { batches, fiber } satisfies ReadAhead<A>
  })

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
