/**
 * Aggregates as deciders: pure `decide`/`evolve` functions over Schema-typed events, and the command
 * handling loop around them.
 *
 * Handling a command loads the stream (its events through the decider's codec, so old versions are
 * upcast), folds them with `evolve`, asks `decide` for new events, and appends them with the loaded
 * version as the expected version. If another writer got there first the append fails with
 * `ConcurrencyConflict`, nothing is written, and the whole load-decide-append runs again under a
 * `Schedule`: a decision taken on stale state never commits. Command ids, snapshots, unique values and
 * metadata: {@link handler}.
 */
import * as Chunk from "effect/Chunk"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Event from "./Event.js"
import * as EventStore from "./EventStore.js"
import * as Lanes from "./aggregate/lanes.js"
import * as StateCache from "./aggregate/stateCache.js"
import * as Traceparent from "./internal/traceparent.js"
import * as Uuid from "./internal/uuid.js"
import * as Personal from "./Personal.js"
import * as Snapshot from "./Snapshot.js"
import * as Upcaster from "./Upcaster.js"

/** A decider: the pure definition of an aggregate. */
export interface Decider<C, E extends { readonly _tag: string }, S, DE> {
  /** Stream category: the aggregate with id `42` lives in stream `<category>-42`. */
  readonly category: string
  /** Encodes and decodes (upcasting) the aggregate's events. */
  readonly codec: Upcaster.EventCodec<E>
  readonly initialState: S
  /** Pure and total: the state after an event. */
  readonly evolve: (state: S, event: E) => S
  /** Pure: the events a command produces in a state, or a typed domain error. */
  readonly decide: (command: C, state: S) => Effect.Effect<ReadonlyArray<E>, DE>
  /** Snapshotting of the state, used when a `SnapshotStore` is provided. */
  readonly snapshot?: Snapshot.Options<S, any> | undefined
  /** The state's Schema, if declared: tells whether the state can hold personal fields (see {@link handler}). */
  readonly state?: Schema.Schema<S, any> | undefined
  /** The unique values an event claims or releases (given the state before it); see `EventStore.UniqueValue`. */
  readonly unique?: ((event: E, state: S) => UniqueChanges) | undefined
}

/** Unique values an event claims and releases, atomically with its append. */
export interface UniqueChanges {
  readonly claim?: ReadonlyArray<EventStore.UniqueValue>
  readonly release?: ReadonlyArray<EventStore.UniqueValue>
}

/** What `decide` may return: events, a domain error, or an Effect of either. */
export type Decision<E, DE> =
  ReadonlyArray<E> | Either.Either<ReadonlyArray<E>, DE> | Effect.Effect<ReadonlyArray<E>, DE>

/**
 * Defines a decider. The event codec is built and checked here, so a broken upcaster declaration fails
 * where the aggregate is defined (an `UpcasterConfigError` thrown at startup: a wiring bug).
 */
export const make = <C, E extends { readonly _tag: string }, EI, S, DE = never>(options: {
  readonly category: string
  readonly events: Schema.Schema<E, EI>
  readonly versions?: Upcaster.CodecOptions<E, EI>["versions"]
  readonly upcasters?: ReadonlyArray<Upcaster.Upcaster>
  readonly initialState: S
  readonly evolve: (state: S, event: E) => S
  readonly decide: (command: C, state: S) => Decision<E, DE>
  readonly snapshot?: Snapshot.Options<S, any>
  /**
   * The state's Schema (default: the snapshots' `state`, if any): for a decider whose events have personal
   * fields but whose state keeps none, it lets the handler keep folded states (see {@link handler}).
   */
  readonly state?: Schema.Schema<S, any>
  readonly unique?: (event: E, state: S) => UniqueChanges
}): Decider<C, E, S, DE> => {
  if (options.category.length === 0 || options.category.includes("-")) {
    throw new Error(`an aggregate category must be non-empty and contain no '-': ${JSON.stringify(options.category)}`)
  }
  const codec = Effect.runSync(
    Upcaster.codec({
      events: options.events,
      ...(options.versions === undefined ? {} : { versions: options.versions }),
      ...(options.upcasters === undefined ? {} : { upcasters: options.upcasters })
    })
  )
  return {
    category: options.category,
    codec,
    initialState: options.initialState,
    evolve: options.evolve,
    decide: (command, state) => asEffect(options.decide(command, state)),
    snapshot: options.snapshot,
    state: options.state,
    unique: options.unique
  }
}

const asEffect = <E, DE>(decision: Decision<E, DE>): Effect.Effect<ReadonlyArray<E>, DE> =>
  Effect.isEffect(decision)
    ? decision
    : Either.isEither(decision)
      ? decision
      : Effect.succeed(decision as ReadonlyArray<E>)

/** Options of one command handling. */
export interface HandleOptions {
  /** Merged over the {@link Event.CommandContext}. */
  readonly metadata?: Event.Metadata
  /** Replaces the handler's retry schedule for conflicts. */
  readonly retry?: Schedule.Schedule<unknown, unknown>
  /** Tolerant-reader policy while loading; default `fail`. */
  readonly policy?: Upcaster.Policy
}

/** The outcome of a handled command. */
export interface HandleResult<E> {
  readonly streamId: Event.StreamId
  /** The stream's version after the command (unchanged if it produced no events). */
  readonly version: number
  /** The events the command produced, in order. */
  readonly events: ReadonlyArray<E>
  /** Their global positions. */
  readonly positions: ReadonlyArray<bigint>
  /** True when the command had already been handled and this is its first result. */
  readonly duplicate: boolean
}

/**
 * A command id already handled, within the store's command TTL, for another aggregate: nothing was
 * written. Permanent: a client reused an id (or two clients chose the same one); retrying cannot help.
 */
export class CommandIdReused extends Schema.TaggedError<CommandIdReused>()("CommandIdReused", {
  commandId: Schema.String,
  /** The stream this command was sent to. */
  streamId: Schema.String,
  /** The stream that handled the command id first. */
  handledBy: Schema.String
}) {
  override get message() {
    return `Command id ${this.commandId} was already handled by ${this.handledBy}; it cannot be used for ${this.streamId}`
  }
}

/** Everything handling a command can fail with besides the decider's own errors. */
export type HandleError =
  | CommandIdReused
  | EventStore.ConcurrencyConflict
  | EventStore.InvalidAppend
  | EventStore.UniqueConstraintViolation
  | EventStore.StreamDeleted
  | EventStore.EventStoreError
  | Event.InvalidStreamId
  | Upcaster.EventDecodeError
  | Upcaster.EventEncodeError

/** Default retry on conflicts: up to 5 more attempts, exponential from 5 ms, jittered. */
export const defaultRetry: Schedule.Schedule<unknown, unknown> = Schedule.exponential("5 millis").pipe(
  Schedule.jittered,
  Schedule.intersect(Schedule.recurs(5))
)

/**
 * A loaded aggregate: its state, its version, the id of the event at that version (none at version 0 or
 * straight from a snapshot), and the version of the latest snapshot known (0: none).
 */
interface Loaded<S> {
  readonly state: S
  readonly version: number
  readonly eventId: string | undefined
  readonly snapshotVersion: number
}

/** Options of {@link handler}. */
export interface HandlerOptions {
  /** Retry schedule on conflicts; default {@link defaultRetry}. */
  readonly retry?: Schedule.Schedule<unknown, unknown>
  /** Aggregates whose folded state is kept between commands (least recently used dropped); 0 keeps none. Default 1,000. */
  readonly cacheCapacity?: number
  /** Longest wait for an aggregate's lane before a command runs outside it; default 5 seconds. */
  readonly lanePatience?: Duration.DurationInput
}

/**
 * The command handler of a decider: `(id, command, options?) => Effect<HandleResult, DE | HandleError>`.
 * Conflicts are retried with `options.retry` (default {@link defaultRetry}); domain errors never are.
 *
 * **Idempotency**: when the command carries a `commandId` (in its metadata or the {@link Event.CommandContext}),
 * the store records it with the append (see `EventStore.AppendOptions`), and its events get ids derived
 * from (command id, stream, version decided on, index). Handling the same command again within the
 * store's command TTL (7 days by default), concurrently or after a crash, returns the first result with
 * `duplicate: true` and appends nothing; of concurrent handlers exactly one gets `duplicate: false`. A
 * command id handled for another aggregate fails with {@link CommandIdReused}. After the TTL the id is
 * forgotten: the command is handled as a new one (its events get new ids, as the stream has moved on).
 * A command that produced no events is not recorded (handling it again decides again).
 *
 * **Snapshots**: a decider with `snapshot` options loads from the latest usable snapshot when a
 * `SnapshotStore` is provided, and saves new ones as its strategy says (see `Snapshot`).
 *
 * **Unique values**: a decider's `unique` function names the values its events claim or release (an
 * e-mail, a username); they are claimed atomically with the append, and a value held by another stream
 * fails the command with `UniqueConstraintViolation` (not retried).
 *
 * **Metadata**: correlation id, causation id (the command id), command id, principal, tenant and the W3C
 * `traceparent` of the `Aggregate.handle` span flow from the command's context into every event.
 *
 * **Hot aggregates**: within one handler, commands to the same aggregate (per store and tenant) queue in
 * a first-come, first-served lane instead of racing into conflicts, and the folded state of the last
 * `cacheCapacity` aggregates is kept, so that a command reads only the events after it. Commands from
 * other processes still race: the store refuses a decision on stale state and the command is retried on
 * the events it missed.
 *
 * **Gotchas**: the cache is checked against the stored history on every load (the event at the cached
 * version must be the same one), so deleting, rewriting or restoring streams never feeds a command a state
 * from another history. A lane's wait is bounded by `lanePatience`, after which the command runs beside
 * the lane's holder (and may conflict): two commands for one aggregate inside the caller's own open
 * transactions could otherwise wait on each other. Each handler has its own lanes and cache: create it once.
 * A decider with personal fields (`Personal.field`, in its events or snapshot state) keeps no state: each
 * command loads it, so that an erased subject's fields read as erased from the next command on; unless its
 * state Schema (`state`, else the snapshots' `state`) has no personal field: the state copies no personal
 * value, and is kept.
 */
export const handler = <C, E extends { readonly _tag: string }, S, DE>(
  decider: Decider<C, E, S, DE>,
  handlerOptions?: HandlerOptions
) => {
  // the state's Schema, if declared (as such, or as the snapshots'), tells whether it can hold personal values
  const stateSchema = decider.state ?? decider.snapshot?.state
  const personal = stateSchema === undefined ? decider.codec.personal : Personal.fieldsOf(stateSchema).byTag.size > 0
  /** Lanes and cached states, per store (a store object is one database, a test's fresh store another). */
  const perStore = new WeakMap<object, { readonly lanes: Lanes.Lanes; readonly cache: StateCache.StateCache<S> }>()
  const hotFor = (store: object) => {
    let hot = perStore.get(store)
    if (hot === undefined) {
      hot = {
        lanes: Lanes.make(handlerOptions?.lanePatience ?? "5 seconds"),
        // a state holding personal values is never kept: an erasure must reach the next command's state
        cache: StateCache.make(personal ? 0 : (handlerOptions?.cacheCapacity ?? 1000))
      }
      perStore.set(store, hot)
    }
    return hot
  }

  /**
   * Folds the stream's events from `from.version + 1` onto `from`. With `cached`, reads from `from.version`
   * and returns `undefined` unless the event found there is `from.eventId`: the state is of another history.
   */
  const foldFrom = (streamId: string, from: Loaded<S>, policy: Upcaster.Policy | undefined, cached: boolean) =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      let { eventId, state, version } = from
      let checked = !cached
      let sameHistory = true
      // read and folded a page at a time, without a Stream (whose run alone costs more than reading a few
      // events): loading is a hot path
      let cursor: number | undefined = cached ? from.version : from.version + 1
      while (cursor !== undefined && sameHistory) {
        const page: EventStore.StreamPage = yield* store
          .readStreamPage(streamId, { fromVersion: cursor })
          .pipe(Effect.catchTag("StreamNotFound", () => Effect.succeed(noEvents)))
        for (const { envelope, event } of yield* Upcaster.decodePage(decider.codec, page.events, policy)) {
          if (!checked) {
            checked = true
            sameHistory = envelope.version === from.version && envelope.eventId === from.eventId
          }
          if (envelope.version <= from.version || !sameHistory) continue
          state = decider.evolve(state, event)
          version = envelope.version
          eventId = envelope.eventId
        }
        cursor = page.next
      }
      return checked && sameHistory ? { ...from, state, version, eventId } : undefined
    })

  /**
   * The cached state and the events after it; else the latest usable snapshot (if snapshots are configured
   * and a store is provided), then the events after it.
   */
  const load = (cache: StateCache.StateCache<S>, key: string, streamId: string, policy: Upcaster.Policy | undefined) =>
    Effect.gen(function* () {
      // a state folded while skipping undecodable events is not the state a failing load would see
      const cached = policy === "skip" ? undefined : cache.get(key)
      if (cached !== undefined) {
        const loaded = yield* foldFrom(streamId, cached, policy, true)
        if (loaded !== undefined) return loaded
        cache.delete(key)
      }
      const snapshots =
        decider.snapshot === undefined ? Option.none() : yield* Effect.serviceOption(Snapshot.SnapshotStore)
      const snapshot = Option.isSome(snapshots)
        ? yield* Snapshot.loadState(snapshots.value, decider.snapshot!, streamId)
        : Option.none()
      const start: Loaded<S> = Option.match(snapshot, {
        onNone: () => ({ state: decider.initialState, version: 0, eventId: undefined, snapshotVersion: 0 }),
        onSome: ({ state, version }) => ({ state, version, eventId: undefined, snapshotVersion: version })
      })
      return (yield* foldFrom(streamId, start, policy, false))!
    })

  /** Keeps a loaded state for the next command, when it is known which event it follows. */
  const remember = (
    cache: StateCache.StateCache<S>,
    key: string,
    policy: Upcaster.Policy | undefined,
    loaded: Loaded<S>
  ) => {
    if (loaded.eventId !== undefined && policy !== "skip") cache.set(key, { ...loaded, eventId: loaded.eventId })
  }

  /**
   * The first result of a command already handled: what the store recorded, with its events decoded; or
   * {@link CommandIdReused} if it was handled for another stream.
   */
  const firstResult = (
    commandId: string,
    streamId: Event.StreamId,
    record: {
      readonly streamId: string
      readonly version: number
      readonly positions: ReadonlyArray<bigint>
    }
  ): Effect.Effect<
    HandleResult<E>,
    | CommandIdReused
    | Upcaster.EventDecodeError
    | Event.InvalidStreamId
    | EventStore.StreamDeleted
    | EventStore.EventStoreError,
    EventStore.EventStore
  > =>
    record.streamId === streamId
      ? decodedResult(record)
      : Effect.fail(new CommandIdReused({ commandId, streamId, handledBy: record.streamId }))

  const decodedResult = (record: {
    readonly streamId: string
    readonly version: number
    readonly positions: ReadonlyArray<bigint>
  }): Effect.Effect<
    HandleResult<E>,
    Upcaster.EventDecodeError | Event.InvalidStreamId | EventStore.StreamDeleted | EventStore.EventStoreError,
    EventStore.EventStore
  > =>
    Effect.map(
      record.positions.length === 0
        ? Effect.succeed(Chunk.empty<Upcaster.Decoded<E>>())
        : Upcaster.readStream(decider.codec, record.streamId, {
            fromVersion: record.version - record.positions.length + 1,
            maxCount: record.positions.length
          }).pipe(
            Stream.catchTag("StreamNotFound", () => Stream.empty),
            Stream.runCollect
          ),
      (decoded): HandleResult<E> => ({
        streamId: record.streamId as Event.StreamId,
        version: record.version,
        events: Chunk.toArray(decoded).map((d) => d.event),
        positions: record.positions,
        duplicate: true
      })
    )

  /** The unique values the events claim and release, each event seeing the state before it. */
  const uniqueChanges = (state: S, events: ReadonlyArray<E>) => {
    if (decider.unique === undefined) return {}
    const claims: Array<EventStore.UniqueValue> = []
    const releases: Array<EventStore.UniqueValue> = []
    let current = state
    for (const event of events) {
      const changes = decider.unique(event, current)
      claims.push(...(changes.claim ?? []))
      releases.push(...(changes.release ?? []))
      current = decider.evolve(current, event)
    }
    return { claims, releases }
  }

  /**
   * After a successful append: a snapshot of `state` (at `version`) if the strategy asks for one (never
   * failing the command). Returns the version of the latest snapshot known.
   */
  const maybeSnapshot = (streamId: string, snapshotVersion: number, state: S, version: number) =>
    Effect.gen(function* () {
      const options = decider.snapshot
      if (options === undefined || !options.strategy({ version, snapshotVersion })) return snapshotVersion
      const snapshots = yield* Effect.serviceOption(Snapshot.SnapshotStore)
      if (Option.isNone(snapshots)) return snapshotVersion
      yield* Snapshot.saveState(snapshots.value, options, streamId, version, state)
      return version
    })

  const attempt = (
    store: EventStore.EventStore["Type"],
    cache: StateCache.StateCache<S>,
    key: string,
    streamId: Event.StreamId,
    command: C,
    metadata: Event.Metadata,
    policy: Upcaster.Policy | undefined
  ) =>
    Effect.gen(function* () {
      const commandId = metadata.commandId
      if (commandId !== undefined) {
        const handled = yield* store.findCommand(commandId)
        if (Option.isSome(handled)) return yield* firstResult(commandId, streamId, handled.value)
      }
      const loaded = yield* load(cache, key, streamId, policy)
      remember(cache, key, policy, loaded)
      const events = yield* decider.decide(command, loaded.state)
      if (events.length === 0) {
        return { streamId, version: loaded.version, events, positions: [], duplicate: false } satisfies HandleResult<E>
      }
      const encoded = yield* Effect.forEach(events, (event) => decider.codec.encode(event))
      const data = yield* Event.makeAll(
        encoded.map((fields, index) => ({
          ...fields,
          metadata,
          ...(commandId === undefined
            ? {}
            : {
                // with tenants, the same command id and stream id in two tenants make two events; the
                // version decided on tells a command handled again after its TTL from a concurrent copy
                eventId: Uuid.fromName(
                  metadata.tenantId === undefined
                    ? `${commandId}\u0000${streamId}\u0000${loaded.version}\u0000${index}`
                    : `${metadata.tenantId}\u0000${commandId}\u0000${streamId}\u0000${loaded.version}\u0000${index}`
                )
              })
        }))
      )
      return yield* store
        .append(streamId, data, {
          expectedVersion: loaded.version === 0 ? Event.NoStream : Event.Exact(loaded.version),
          ...uniqueChanges(loaded.state, events),
          ...(commandId === undefined ? {} : { commandId })
        })
        .pipe(
          Effect.tap((result) =>
            Effect.gen(function* () {
              const state = events.reduce(decider.evolve, loaded.state)
              const snapshotVersion = yield* maybeSnapshot(streamId, loaded.snapshotVersion, state, result.version)
              const eventId = data[data.length - 1]!.eventId
              remember(cache, key, policy, { state, version: result.version, eventId, snapshotVersion })
            })
          ),
          Effect.map((result): HandleResult<E> => ({ ...result, events, duplicate: false })),
          // the same command, handled concurrently by someone else: theirs is the first result
          Effect.catchTag("DuplicateCommand", (duplicate) => firstResult(duplicate.commandId, streamId, duplicate))
        )
    })

  return (
    id: string,
    command: C,
    options?: HandleOptions
  ): Effect.Effect<HandleResult<E>, DE | HandleError, EventStore.EventStore> =>
    Effect.gen(function* () {
      const streamId = yield* Event.makeStreamId(decider.category, id)
      const metadata = yield* eventMetadata(options?.metadata)
      const retry = options?.retry ?? handlerOptions?.retry ?? defaultRetry
      const store = yield* EventStore.EventStore
      const tenant = yield* Event.CurrentTenant
      // one stream id names two aggregates in two tenants of a shared store
      const key = Option.isSome(tenant) ? `${tenant.value}\u0000${streamId}` : streamId
      const { cache, lanes } = hotFor(store)
      return yield* lanes(
        key,
        attempt(store, cache, key, streamId, command, metadata, options?.policy).pipe(
          Effect.retry({
            schedule: retry,
            while: (error) => (error as { readonly _tag?: unknown })._tag === "ConcurrencyConflict"
          })
        )
      )
    }).pipe(
      Effect.withSpan("Aggregate.handle", {
        attributes: { category: decider.category, aggregateId: id },
        captureStackTrace: false
      })
    )
}

/** The metadata of the events of the command being handled: context, explicit metadata, trace. */
/** The page of a stream that was never written. */
const noEvents: EventStore.StreamPage = { events: [], next: undefined }

const eventMetadata = (explicit: Event.Metadata | undefined): Effect.Effect<Event.Metadata> =>
  Effect.gen(function* () {
    const context = yield* Event.CommandContext
    const merged: Record<string, unknown> = { ...context, ...explicit }
    const commandId = merged.commandId as string | undefined
    if (commandId !== undefined) {
      merged.causationId ??= commandId
      merged.correlationId ??= commandId
    }
    const span = yield* Effect.option(Effect.currentSpan)
    if (Option.isSome(span) && merged.traceparent === undefined) {
      merged.traceparent = Traceparent.format(span.value)
    }
    return merged as Event.Metadata
  })
