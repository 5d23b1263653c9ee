/**
 * Snapshots: an aggregate's state saved at a stream version, so that loading it reads only the events
 * after that version.
 *
 * A snapshot is a cache, never the truth: it is encoded with the decider's state Schema and tagged with
 * the state's schema version; one whose schema version differs or whose data no longer decodes is
 * ignored (with a warning) and the aggregate is rebuilt from its events. Saving a snapshot never fails a
 * command: errors are logged. A strategy decides when to save (every N events, or a predicate), and the
 * store keeps the last K snapshots of each stream.
 */
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

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

/** Counts and sizes, for monitoring. */
export interface SnapshotStats {
  readonly count: number
  /** UTF-8 bytes of the stored states. */
  readonly bytes: number
}

/** A snapshot store failed (not fatal for commands: snapshots are an optimisation). */
export class SnapshotStoreError extends Schema.TaggedError<SnapshotStoreError>()("SnapshotStoreError", {
  operation: Schema.String,
  cause: Schema.Defect,
  /** Whether the operation may pass if retried as is (a lost connection, a timeout); decided where the failure entered. */
  transient: Schema.optionalWith(Schema.Boolean, { default: () => true })
}) {}

/** Where snapshots live. */
export class SnapshotStore extends Context.Tag("effect-eventsourcing/SnapshotStore")<
  SnapshotStore,
  {
    /** The latest snapshot of a stream. */
    readonly load: (streamId: string) => Effect.Effect<Option.Option<SnapshotRecord>, SnapshotStoreError>
    /** Saves a snapshot, then drops all but the newest `keep` of that stream. */
    readonly save: (record: SnapshotRecord) => Effect.Effect<void, SnapshotStoreError>
    readonly stats: Effect.Effect<SnapshotStats, SnapshotStoreError>
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
    const byStream = new Map<string, Array<SnapshotRecord & { readonly bytes: number }>>()
    return SnapshotStore.of({
      load: (streamId) => Effect.sync(() => Option.fromNullable(byStream.get(streamId)?.at(-1))),
      save: (record) =>
        Effect.sync(() => {
          const json = JSON.stringify(record.state)
          const list = (byStream.get(record.streamId) ?? []).filter((s) => s.version !== record.version)
          list.push({ ...record, state: JSON.parse(json), bytes: Buffer.byteLength(json) })
          list.sort((a, b) => a.version - b.version)
          byStream.set(record.streamId, list.slice(-keep))
        }),
      stats: Effect.sync(() => {
        const all = [...byStream.values()].flat()
        return { count: all.length, bytes: all.reduce((sum, s) => sum + s.bytes, 0) }
      })
    })
  })

/** A fresh in-memory snapshot store per Layer build. */
export const layerMemory = (options?: MemoryOptions): Layer.Layer<SnapshotStore> =>
  Layer.effect(SnapshotStore, makeMemory(options))

/**
 * Loads the latest usable snapshot of a stream: `None` when there is none, or when it is from another
 * state version or does not decode (both logged as warnings, never errors).
 */
export const loadState = <S, SI>(
  store: SnapshotStore["Type"],
  options: Options<S, SI>,
  streamId: string
): Effect.Effect<Option.Option<{ readonly state: S; readonly version: number }>> => {
  const expectedVersion = options.version ?? 1
  const decode = Schema.decodeUnknown(options.state)
  return store.load(streamId).pipe(
    Effect.flatMap(
      Option.match({
        onNone: () => Effect.succeedNone,
        onSome: (record) =>
          record.stateVersion !== expectedVersion
            ? Effect.logWarning(
                `ignoring the snapshot of ${streamId}@${record.version}: state version ${record.stateVersion}, expected ${expectedVersion}`
              ).pipe(Effect.as(Option.none()))
            : decode(record.state).pipe(
                Effect.map((state) => Option.some({ state, version: record.version })),
                Effect.catchAll((error) =>
                  Effect.logWarning(`ignoring the snapshot of ${streamId}@${record.version}: ${error.message}`).pipe(
                    Effect.as(Option.none())
                  )
                )
              )
      })
    ),
    Effect.catchAll((error) =>
      Effect.logWarning(`snapshot store unavailable, loading ${streamId} from events: ${error.message}`).pipe(
        Effect.as(Option.none())
      )
    )
  )
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
    const encoded = yield* Schema.encode(options.state)(state)
    const takenAt = yield* DateTime.now
    yield* store.save({ streamId, version, stateVersion: options.version ?? 1, state: encoded, takenAt })
  }).pipe(
    // failures only: a defect (an enclosing transaction the database ended, say) fails the command
    Effect.catchAll((error) => Effect.logWarning(`could not save a snapshot of ${streamId}@${version}`, error))
  )
