/**
 * Read-your-writes: waiting, bounded, until projections have handled what a command wrote, so that a query
 * answered from their read models right after shows it. Works across processes: it compares the checkpoints
 * the projections committed (in the `CheckpointStore`) with the written events' places in the log.
 */
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as CheckpointStore from "../CheckpointStore.js"
import * as Event from "../Event.js"
import * as EventStore from "../EventStore.js"
import type { Definition } from "./runner.js"

/** What a command (or an append) wrote: its stream, the stream's version after it, and its event positions. */
export interface Written {
  readonly streamId: string
  /** The stream's version after the write: its last event. */
  readonly version: number
  /** The positions of the events written; none means nothing was written (nothing to wait for). */
  readonly positions?: ReadonlyArray<bigint>
}

/** Options of {@link waitFor}. */
export interface WaitOptions {
  /** How long to wait at most; default 5 seconds. */
  readonly timeout?: Duration.DurationInput
}

/** A projection had not handled a write when the wait timed out. Transient: it is catching up, or stopped. */
export class ProjectionBehind extends Schema.TaggedError<ProjectionBehind>()("ProjectionBehind", {
  projection: Schema.String,
  version: Schema.Int,
  streamId: Schema.String,
  streamVersion: Schema.Int,
  /** Log positions between the projection's checkpoint (its partition's) and the write; none if not registered. */
  positionsBehind: Schema.OptionFromNullOr(Schema.Number),
  waitedMillis: Schema.Number,
  transient: Schema.optionalWith(Schema.Boolean, { default: () => true })
}) {
  override get message() {
    const behind = Option.match(this.positionsBehind, {
      onNone: () => "it has no checkpoint yet (is it running?)",
      onSome: (n) => `its partition is ${n} log position(s) behind`
    })
    return `Projection ${this.projection} v${this.version} had not handled ${this.streamId}@${this.streamVersion} after ${this.waitedMillis} ms: ${behind}`
  }
}

/**
 * Waits until each projection has handled the events of `written` it reads, or fails with
 * {@link ProjectionBehind} once `timeout` has passed. A projection that reads none of them (other categories
 * or types) is not waited for; nor is a write of no events.
 *
 * The written events are read back once (to learn their places in the log, which on PostgreSQL are
 * (transaction, position) pairs); then the checkpoints of the projections' partitions holding the stream
 * are polled, from a few milliseconds apart up to 100 ms apart.
 *
 * **Gotchas**: it waits on the given version of each projection (a side-by-side rebuild's new version
 * catches up on its own time). A projection that is not running never catches up: the wait times out. A
 * `skip`ped poison event counts as handled.
 */
export const waitFor = (
  projections: ReadonlyArray<Pick<Definition<any, any, any>, "name" | "version" | "categories" | "types">>,
  written: Written,
  options?: WaitOptions
): Effect.Effect<
  void,
  ProjectionBehind | EventStore.EventStoreError | CheckpointStore.CheckpointStoreError | Event.InvalidStreamId,
  EventStore.EventStore | CheckpointStore.CheckpointStore
> =>
  Effect.gen(function* () {
    const count = written.positions?.length
    if (count === 0 || projections.length === 0) return
    const store = yield* EventStore.EventStore
    const checkpoints = yield* CheckpointStore.CheckpointStore
    const events = yield* store
      .readStream(written.streamId, {
        fromVersion: Math.max(1, written.version - (count ?? 1) + 1),
        maxCount: count ?? 1
      })
      .pipe(
        Stream.runCollect,
        Effect.map(Chunk.toReadonlyArray),
        // a deleted stream's events cannot be located: nothing to wait for
        Effect.catchTags({ StreamNotFound: () => Effect.succeed([]), StreamDeleted: () => Effect.succeed([]) })
      )
    const started = yield* Clock.currentTimeMillis
    const timeout = Duration.toMillis(options?.timeout ?? "5 seconds")
    for (const projection of projections) {
      // the last written event it reads: once handled, every earlier one is
      const last = events.findLast((e) => reads(projection, e))
      if (last === undefined) continue
      const target = Event.checkpointOf(last)
      const id = { name: projection.name, version: projection.version }
      /** Log positions the partition holding the stream is behind the target (0: handled it); none if unregistered. */
      const behind = Effect.map(checkpoints.partitions(id), (partitions) => {
        if (partitions.length === 0) return Option.none<number>()
        const held = partitions[Event.partitionOf(last.streamId, partitions.length)]!
        return Option.some(
          Event.checkpointOrder(held.checkpoint, target) >= 0
            ? 0
            : Math.max(1, Number(target.position - held.checkpoint.position))
        )
      })
      const isHandled = (b: Option.Option<number>) => Option.isSome(b) && b.value === 0
      // checked once at least, however long the projections before took
      if (isHandled(yield* behind)) continue
      const remaining = Math.max(0, timeout - ((yield* Clock.currentTimeMillis) - started))
      const handled = yield* behind.pipe(
        Effect.repeat({ until: isHandled, schedule: polling }),
        Effect.timeoutTo({ duration: remaining, onTimeout: () => false, onSuccess: () => true })
      )
      if (handled) continue
      return yield* new ProjectionBehind({
        projection: projection.name,
        version: projection.version,
        streamId: written.streamId,
        streamVersion: last.version,
        positionsBehind: yield* behind,
        waitedMillis: (yield* Clock.currentTimeMillis) - started
      })
    }
  })

/** From 5 ms apart, doubling, to 100 ms apart. */
const polling = Schedule.exponential("5 millis").pipe(Schedule.union(Schedule.spaced("100 millis")))

const reads = (
  projection: Pick<Definition<any, any, any>, "categories" | "types">,
  event: Event.RecordedEvent
): boolean =>
  (projection.categories === undefined || projection.categories.includes(event.category)) &&
  (projection.types === undefined || projection.types.includes(event.type))
