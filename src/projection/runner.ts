/**
 * The checkpointed runner behind `Projection` (and so sagas and the outbox relay): a supervisor per worker
 * that keeps a fair share of partition leases, and a fiber per owned partition (`partition`) that reads
 * batches after its checkpoint and hands each to `batch`, which commits its effects with the checkpoint.
 * What it reports about itself: `status`; its lag gauges: `lag`.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as CheckpointStore from "../CheckpointStore.js"
import * as Event from "../Event.js"
import * as EventStore from "../EventStore.js"
import type * as Upcaster from "../Upcaster.js"
import * as Wakeup from "../Wakeup.js"
import { type Cell, type Runtime, untilDone } from "./batch.js"
import { resetLag, sampleLag } from "./lag.js"
import { claimWhenFree, newCell, partitionLoop } from "./partition.js"
import { handleRequests } from "./requests.js"
import { Registry, snapshot, status, type PartitionStatus, type Status } from "./status.js"
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
