/**
 * Snapshots: an aggregate's state saved at a stream version, so that loading it reads only the events
 * after that version.
 *
 * A snapshot is a cache, never the truth: it is encoded with the decider's state Schema and tagged with
 * the state's schema version; one whose schema version differs or whose data no longer decodes is
 * ignored (with a warning) and the next older one is tried, down to none: then the aggregate is rebuilt from
 * its events. Saving a snapshot never fails a command: errors are logged. A strategy decides when to save
 * (every N events, or a predicate); the store keeps the last K snapshots of each stream, reports
 * {@link SnapshotStats} and prunes on demand. Personal fields of the state (`Personal.field`) are stored
 * sealed and opened on load, as in events.
 */
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Event from "./Event.js"
import * as Personal from "./Personal.js"

/** A stored snapshot. `state` is the state Schema's encoded (JSON) form. */
export interface SnapshotRecord {
  readonly streamId: string
  /** The stream version the state reflects. */
  readonly version: number
  /** The state Schema's version when it was taken. */
  readonly stateVersion: number
  readonly state: unknown
  readonly takenAt: DateTime.Utc
}

/** Counts and sizes of stored snapshots, for monitoring and housekeeping. */
export interface SnapshotStats {
  /** Snapshots stored. */
  readonly count: number
  /** Streams (aggregates) with at least one snapshot. */
  readonly streams: number
  /** UTF-8 bytes of the stored states (their JSON). */
  readonly bytes: number
  /** The same per category (the stream id's part before its first `-`, see `Event.categoryOf`), by name. */
  readonly categories: ReadonlyArray<CategoryStats>
}

/** {@link SnapshotStats} of one category. */
export interface CategoryStats {
  readonly category: string
  readonly count: number
  readonly streams: number
  readonly bytes: number
}

/** Which snapshots {@link SnapshotStore} `prune` deletes: those any given condition selects. */
export interface PruneOptions {
  /** All but the newest `keep` snapshots of each stream (at least 1). */
  readonly keep?: number
  /** Snapshots taken with a state version below this one (ignored by loading once the state's version is bumped). */
  readonly stateVersionBelow?: number
  /** Only streams of this category. */
  readonly category?: string
}

/** A snapshot store failed (not fatal for commands: snapshots are an optimisation). */
export class SnapshotStoreError extends Schema.TaggedError<SnapshotStoreError>()("SnapshotStoreError", {
  operation: Schema.String,
  cause: Schema.Defect,
  /** Whether the operation may pass if retried as is (a lost connection, a timeout); decided where the failure entered. */
  transient: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  /** The stream version of a stored snapshot that cannot be read at all (not JSON): loading tries older ones. */
  version: Schema.optional(Schema.Number)
}) {}

/** Where snapshots live. */
export class SnapshotStore extends Context.Tag("effect-eventsourcing/SnapshotStore")<
  SnapshotStore,
  {
    /**
     * The latest snapshot of a stream, or with `before` the latest below that stream version. A stored
     * snapshot that cannot be read at all fails with its `version` in the error (a permanent one).
     */
    readonly load: (
      streamId: string,
      options?: { readonly before?: number }
    ) => Effect.Effect<Option.Option<SnapshotRecord>, SnapshotStoreError>
    /** Saves a snapshot, then drops all but the newest `keep` of that stream. */
    readonly save: (record: SnapshotRecord) => Effect.Effect<void, SnapshotStoreError>
    readonly stats: Effect.Effect<SnapshotStats, SnapshotStoreError>
    /**
     * Deletes the snapshots `options` select and returns how many; nothing when it selects none. Runs in
     * bounded batches (each its own transaction on SQL stores): a failure may leave part of the work done,
     * which is harmless (snapshots are a cache) and done again by the next run.
     */
    readonly prune: (options: PruneOptions) => Effect.Effect<number, SnapshotStoreError>
    /** Deletes every snapshot of a stream (after `EventStore` `hardDeleteStream`) and returns how many. */
    readonly deleteStream: (streamId: string) => Effect.Effect<number, SnapshotStoreError>
  }
>() {}

/** When to take a snapshot, after a command appended events. */
export type Strategy = (context: {
  /** The stream version after the append. */
  readonly version: number
  /** The version of the snapshot the state was loaded from (0 if none). */
  readonly snapshotVersion: number
}) => boolean

/** A snapshot whenever at least `n` events were appended since the last one. */
export const everyNEvents =
  (n: number): Strategy =>
  ({ snapshotVersion, version }) =>
    version - snapshotVersion >= n

/** How a decider's state is snapshotted. */
export interface Options<S, SI> {
  /** Encodes and decodes the state. */
  readonly state: Schema.Schema<S, SI>
  /** Bump when the state Schema changes incompatibly: older snapshots are then ignored. Default 1. */
  readonly version?: number
  readonly strategy: Strategy
}

/** Options of {@link makeMemory}. */
export interface MemoryOptions {
  /** Snapshots kept per stream; default 3. */
  readonly keep?: number
}

/** An in-memory snapshot store. */
export const makeMemory = (options?: MemoryOptions): Effect.Effect<SnapshotStore["Type"]> =>
  Effect.sync(() => {
    const keep = Math.max(1, options?.keep ?? 3)
    /** Each stream's snapshots, oldest first. */
    const byStream = new Map<string, Array<SnapshotRecord & { readonly bytes: number }>>()
    return SnapshotStore.of({
      load: (streamId, loadOptions) =>
        Effect.sync(() => {
          const before = loadOptions?.before ?? Number.POSITIVE_INFINITY
          return Option.fromNullable(byStream.get(streamId)?.findLast((s) => s.version < before))
        }),
      save: (record) =>
        Effect.sync(() => {
          const json = JSON.stringify(record.state)
          const list = (byStream.get(record.streamId) ?? []).filter((s) => s.version !== record.version)
          list.push({ ...record, state: JSON.parse(json), bytes: Buffer.byteLength(json) })
          list.sort((a, b) => a.version - b.version)
          byStream.set(record.streamId, list.slice(-keep))
        }),
      stats: Effect.sync(() => statsOf([...byStream.entries()])),
      prune: (prune) =>
        Effect.sync(() => {
          let deleted = 0
          for (const [streamId, list] of byStream) {
            if (prune.category !== undefined && Event.categoryOf(streamId) !== prune.category) continue
            const kept = list.filter((s, i) => !pruned(prune, s.stateVersion, list.length - i))
            deleted += list.length - kept.length
            if (kept.length === 0) byStream.delete(streamId)
            else byStream.set(streamId, kept)
          }
          return deleted
        }),
      deleteStream: (streamId) =>
        Effect.sync(() => {
          const count = byStream.get(streamId)?.length ?? 0
          byStream.delete(streamId)
          return count
        })
    })
  })

/** Whether `prune` selects a snapshot of `stateVersion` that is the `newness`th newest of its stream (1: the newest). */
const pruned = (prune: PruneOptions, stateVersion: number, newness: number): boolean =>
  (prune.keep !== undefined && newness > Math.max(1, prune.keep)) ||
  (prune.stateVersionBelow !== undefined && stateVersion < prune.stateVersionBelow)

const statsOf = (
  streams: ReadonlyArray<readonly [string, ReadonlyArray<{ readonly bytes: number }>]>
): SnapshotStats => {
  const categories = new Map<string, { count: number; streams: number; bytes: number }>()
  for (const [streamId, list] of streams) {
    const category = Event.categoryOf(streamId)
    const stats = categories.get(category) ?? { count: 0, streams: 0, bytes: 0 }
    stats.count += list.length
    stats.streams += 1
    stats.bytes += list.reduce((sum, s) => sum + s.bytes, 0)
    categories.set(category, stats)
  }
  const all = [...categories.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([category, stats]) => ({ category, ...stats }))
  return {
    count: all.reduce((n, c) => n + c.count, 0),
    streams: all.reduce((n, c) => n + c.streams, 0),
    bytes: all.reduce((n, c) => n + c.bytes, 0),
    categories: all
  }
}

/** A fresh in-memory snapshot store per Layer build. */
export const layerMemory = (options?: MemoryOptions): Layer.Layer<SnapshotStore> =>
  Layer.effect(SnapshotStore, makeMemory(options))

/**
 * Loads the latest usable snapshot of a stream: `None` when there is none. One from another state version,
 * one that does not decode and one that cannot be read at all are each ignored with a warning, and the
 * next older one is tried (the store keeps a few per stream), so a damaged latest snapshot costs the
 * events since an older one instead of the whole stream. A store that fails otherwise means no snapshot
 * (logged): loading never fails for a snapshot's sake.
 */
export const loadState = <S, SI>(
  store: SnapshotStore["Type"],
  options: Options<S, SI>,
  streamId: string
): Effect.Effect<Option.Option<{ readonly state: S; readonly version: number }>> => {
  const expectedVersion = options.version ?? 1
  const decode = Schema.decodeUnknown(options.state)
  const ignore = (version: number, why: string) =>
    Effect.zipRight(Effect.logWarning(`ignoring the snapshot of ${streamId}@${version}: ${why}`), from(version))
  /** The newest usable snapshot below `before`. */
  const from = (
    before: number | undefined
  ): Effect.Effect<Option.Option<{ readonly state: S; readonly version: number }>> =>
    store.load(streamId, before === undefined ? undefined : { before }).pipe(
      Effect.flatMap(
        Option.match({
          onNone: () => Effect.succeedNone,
          onSome: (record) =>
            record.stateVersion !== expectedVersion
              ? ignore(record.version, `state version ${record.stateVersion}, expected ${expectedVersion}`)
              : Personal.openOne(record.state).pipe(
                  Effect.flatMap(decode),
                  Effect.map((state) => Option.some({ state, version: record.version })),
                  Effect.catchAll((error) => ignore(record.version, error.message))
                )
        })
      ),
      Effect.catchAll((error) =>
        error.version !== undefined
          ? ignore(error.version, `unreadable (${error.message})`)
          : Effect.logWarning(`snapshot store unavailable, loading ${streamId} from events: ${error.message}`).pipe(
              Effect.as(Option.none())
            )
      )
    )
  return from(undefined)
}

/** Saves a snapshot of `state` at `version`; failures are logged, never raised. */
export const saveState = <S, SI>(
  store: SnapshotStore["Type"],
  options: Options<S, SI>,
  streamId: string,
  version: number,
  state: S
): Effect.Effect<void> =>
  Effect.gen(function* () {
    const encoded = yield* Effect.flatMap(Schema.encode(options.state)(state), (encoded) =>
      Personal.sealState(options.state, encoded)
    )
    const takenAt = yield* DateTime.now
    yield* store.save({ streamId, version, stateVersion: options.version ?? 1, state: encoded, takenAt })
  }).pipe(
    // failures only: a defect (an enclosing transaction the database ended, say) fails the command
    Effect.catchAll((error) => Effect.logWarning(`could not save a snapshot of ${streamId}@${version}`, error))
  )
