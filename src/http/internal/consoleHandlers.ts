/**
 * What the operations console's endpoints of `EventBrowserApi` do, apart from HTTP: the live log as
 * Server-Sent Events, the sampler of the runners' lag and throughput, dead letters, pages of saga
 * instances and a stream's states after each version (time travel with a registered decider).
 */
import { HttpApiDecodeError } from "@effect/platform/HttpApiError"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Aggregate from "../../Aggregate.js"
import * as CheckpointStore from "../../CheckpointStore.js"
import * as Event from "../../Event.js"
import * as EventStore from "../../EventStore.js"
import * as KeyStore from "../../KeyStore.js"
import type * as Projection from "../../Projection.js"
import * as SagaStore from "../../SagaStore.js"
import * as ConsoleModel from "./consoleModel.js"
import type { Config } from "./eventBrowserHandlers.js"
import { readEvents, statuses } from "./eventBrowserHandlers.js"
import * as Model from "./eventBrowserModel.js"

// ---------------------------------------------------------------------------------------------------
// deciders registered for time travel
// ---------------------------------------------------------------------------------------------------

/** A decider as the console folds it: its category, initial state, fold step and state rendering. */
export interface StateView {
  readonly category: string
  readonly initialState: unknown
  /** The state after one recorded event, or why the event could not be decoded. */
  readonly step: (state: unknown, event: Event.RecordedEvent) => Either.Either<unknown, string>
  /** The state as JSON, or why it cannot be rendered. */
  readonly render: (state: unknown) => Either.Either<unknown, string>
  /** The decider's codec declares personal fields (`Personal`): then they are opened, if a `KeyStore` is provided. */
  readonly personal: boolean
  /** Opens the events' personal fields (see `Upcaster.EventCodec.open`). */
  readonly open: (
    events: ReadonlyArray<Event.RecordedEvent>
  ) => Effect.Effect<ReadonlyArray<Event.RecordedEvent>, EventStore.EventStoreError>
}

/** A {@link StateView} of a decider; the state is rendered with `state` if given, else as plain JSON. */
export const stateView = <E extends { readonly _tag: string }, S>(
  decider: Aggregate.Decider<any, E, S, any>,
  state?: Schema.Schema<S, any>
): StateView => ({
  category: decider.category,
  initialState: decider.initialState,
  personal: decider.codec.personal,
  open: decider.codec.open,
  step: (current, event) =>
    Either.match(decider.codec.decodeEither(event), {
      onLeft: (error) => Either.left(error.message),
      onRight: (events) => Either.right(events.reduce((s, e) => decider.evolve(s, e), current as S) as unknown)
    }),
  render: (value) =>
    state === undefined
      ? Either.mapLeft(
          Either.try(() =>
            JSON.parse(JSON.stringify(value, (_, v) => (typeof v === "bigint" ? String(v) : v)) ?? "null")
          ),
          (error) => `the state is not JSON: ${Model.describe(error)}`
        )
      : Either.mapLeft(Schema.encodeEither(state)(value as S), (error) => error.message)
})

// ---------------------------------------------------------------------------------------------------
// live log
// ---------------------------------------------------------------------------------------------------

/** The decoded query of `GET /events/live`. */
export interface LiveQuery {
  readonly after?: Event.Checkpoint | undefined
  readonly category?: ReadonlyArray<string> | undefined
  readonly type?: ReadonlyArray<string> | undefined
}

const encodeEvent = Schema.encode(Event.RecordedEvent)

/**
 * The log from `lastEventId` (a reconnecting `EventSource`), else `after`, else the head, as Server-Sent
 * Events: one `event` per recorded event, its `id` the cursor to resume from; a comment every 15 seconds
 * keeps proxies from closing an idle stream. A store failure ends the stream with an `error` event (the
 * client reconnects with its last id).
 */
export const live = (
  config: Config,
  query: LiveQuery,
  lastEventId: Event.Checkpoint | undefined
): Effect.Effect<HttpServerResponse.HttpServerResponse, Model.ServiceError, EventStore.EventStore> =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const start =
      lastEventId ?? query.after ?? (yield* Effect.mapError(store.head, Model.ServiceError.of("EventStore.head")))
    const page = (after: Event.Checkpoint) =>
      store
        .readAll({
          after,
          ...(query.category === undefined ? {} : { categories: query.category }),
          ...(query.type === undefined ? {} : { types: query.type }),
          batchSize: 200,
          maxCount: 200
        })
        .pipe(Stream.runCollect)
    const events = Stream.unfoldChunkEffect(start, (after) =>
      Effect.flatMap(page(after), (chunk) =>
        Chunk.isEmpty(chunk)
          ? Effect.as(Effect.sleep(config.livePollInterval), Option.some([Chunk.empty<string>(), after] as const))
          : Effect.map(
              Effect.forEach(chunk, (event) =>
                Effect.map(
                  encodeEvent(event),
                  (encoded) =>
                    `id: ${Model.encodeCursor(Event.checkpointOf(event))}\nevent: event\ndata: ${JSON.stringify(encoded)}\n\n`
                )
              ),
              (frames) =>
                Option.some([Chunk.fromIterable(frames), Event.checkpointOf(Chunk.unsafeLast(chunk))] as const)
            )
      )
    ).pipe(
      Stream.catchAll((error) =>
        Stream.make(`event: error\ndata: ${JSON.stringify({ message: Model.describe(error) })}\n\n`)
      )
    )
    const keepAlive = Stream.tick("15 seconds").pipe(Stream.map(() => ": keep-alive\n\n"))
    const body = Stream.make("retry: 2000\n\n").pipe(
      Stream.concat(Stream.merge(events, keepAlive, { haltStrategy: "left" })),
      Stream.encodeText
    )
    return HttpServerResponse.stream(body, {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-store", "x-accel-buffering": "no" }
    })
  })

// ---------------------------------------------------------------------------------------------------
// sampler
// ---------------------------------------------------------------------------------------------------

/** Most runners one sample keeps (bounded memory whatever the registry holds). */
export const maxRunnersPerSample = 100

interface StoredSample {
  readonly at: number
  readonly runners: ReadonlyArray<typeof ConsoleModel.RunnerSample.Type & { readonly tenant: Option.Option<string> }>
}

/** The sampler: the runners' lag and throughput every interval, over the last window. */
export interface Sampler {
  readonly samples: Effect.Effect<typeof ConsoleModel.Samples.Type>
}

/**
 * Starts sampling the registry's runner statuses every `sampleInterval` in a fiber of the scope, keeping
 * the samples of the last `sampleWindow` (at most {@link maxRunnersPerSample} runners each).
 */
export const sampler = (config: Config): Effect.Effect<Sampler, never, Projection.Registry | Scope.Scope> =>
  Effect.gen(function* () {
    const interval = Duration.toMillis(config.sampleInterval)
    const capacity = Math.max(2, Math.ceil(Duration.toMillis(config.sampleWindow) / interval))
    const ring: Array<StoredSample> = []
    let previous = new Map<string, { readonly at: number; readonly processed: number }>()
    const take = Effect.gen(function* () {
      // a fiber of its own has no tenant in context: every runner is sampled
      const all = yield* statuses
      const at = yield* Clock.currentTimeMillis
      const next = new Map<string, { readonly at: number; readonly processed: number }>()
      const runners = all.slice(0, maxRunnersPerSample).map((s) => {
        const key = JSON.stringify([s.name, s.version, s.worker, Option.getOrNull(s.tenant)])
        const processed = s.owned.reduce((n, p) => n + p.processed, 0)
        const before = previous.get(key)
        next.set(key, { at, processed })
        return {
          name: s.name,
          version: s.version,
          worker: s.worker,
          state: s.state,
          lagEvents: s.lag.events,
          lagSeconds: s.lag.seconds,
          throughput:
            before === undefined || at <= before.at
              ? 0
              : (Math.max(0, processed - before.processed) * 1000) / (at - before.at),
          tenant: s.tenant
        }
      })
      previous = next
      ring.push({ at, runners })
      if (ring.length > capacity) ring.splice(0, ring.length - capacity)
    })
    yield* Effect.forkScoped(Effect.repeat(take, Schedule.spaced(config.sampleInterval)))
    return {
      samples: Effect.map(Event.CurrentTenant, (tenant: Option.Option<string>) => ({
        intervalSeconds: interval / 1000,
        samples: ring.map((sample) => ({
          at: DateTime.unsafeMake(sample.at),
          runners: sample.runners
            .filter((r) => Option.isNone(tenant) || Option.getOrNull(r.tenant) === tenant.value)
            .map(({ tenant: _, ...runner }) => runner)
        }))
      }))
    }
  })

// ---------------------------------------------------------------------------------------------------
// dead letters
// ---------------------------------------------------------------------------------------------------

/** The dead letters of the configured projections (or of one of them); 404 for a name not configured. */
export const deadLetters = (
  config: Config,
  projection: string | undefined
): Effect.Effect<
  typeof ConsoleModel.DeadLetters.Type,
  Model.NotFound | Model.ServiceError,
  CheckpointStore.CheckpointStore
> =>
  Effect.gen(function* () {
    if (projection !== undefined && !config.projections.has(projection)) {
      return yield* Model.NotFound.of("projection", projection)
    }
    const store = yield* CheckpointStore.CheckpointStore
    const names = projection === undefined ? [...config.projections.keys()] : [projection]
    const letters = yield* Effect.forEach(names, (name) =>
      Effect.mapError(store.deadLetters(name), Model.ServiceError.of("CheckpointStore.deadLetters"))
    )
    return { deadLetters: letters.flat() }
  })

/** Asks the workers to retry a dead letter, or discards it; 404 for an unknown projection or letter. */
export const deadLetterAction = (
  config: Config,
  projection: string,
  id: number,
  action: "retry" | "discard"
): Effect.Effect<
  typeof ConsoleModel.DeadLetterAction.Type,
  Model.NotFound | Model.ServiceError,
  CheckpointStore.CheckpointStore
> =>
  Effect.gen(function* () {
    if (!config.projections.has(projection)) return yield* Model.NotFound.of("projection", projection)
    const store = yield* CheckpointStore.CheckpointStore
    const run = action === "retry" ? store.retryDeadLetter : store.discardDeadLetter
    yield* run(projection, id).pipe(
      Effect.catchTags({
        DeadLetterNotFound: () => Effect.fail(Model.NotFound.of("deadLetter", String(id))),
        CheckpointStoreError: (e) => Effect.fail(Model.ServiceError.of(`CheckpointStore.${action}DeadLetter`)(e))
      }),
      Effect.withSpan("EventBrowserApi.deadLetter", { attributes: { projection, id, action } })
    )
    return { projection, id, action }
  })

// ---------------------------------------------------------------------------------------------------
// sagas
// ---------------------------------------------------------------------------------------------------

/** A page of a configured saga's instances; 404 for a saga not configured. */
export const sagaInstances = (
  config: Config,
  name: string,
  query: {
    readonly status?: SagaStore.Status | undefined
    readonly after?: string | undefined
    readonly limit?: number | undefined
  }
): Effect.Effect<typeof ConsoleModel.SagaInstances.Type, Model.NotFound | Model.ServiceError, SagaStore.SagaStore> =>
  Effect.gen(function* () {
    if (!config.sagas.has(name)) return yield* Model.NotFound.of("saga", name)
    const store = yield* SagaStore.SagaStore
    const limit = query.limit ?? Model.defaultLimit
    const instances = yield* Effect.mapError(
      store.instances(name, {
        limit,
        ...(query.status === undefined ? {} : { status: query.status }),
        ...(query.after === undefined ? {} : { after: query.after })
      }),
      Model.ServiceError.of("SagaStore.instances")
    )
    return {
      saga: name,
      instances: instances.map((i) => ({ ...i, updatedAt: DateTime.unsafeMake(i.updatedAt) })),
      next: instances.length === limit ? instances[instances.length - 1]!.id : null
    }
  })

// ---------------------------------------------------------------------------------------------------
// time travel
// ---------------------------------------------------------------------------------------------------

/**
 * A page of a stream's versions with the state after each, folded from the first version with the
 * decider registered for the stream's category; 404 without one, or for a stream without events.
 */
export const streamStates = (
  config: Config,
  streamId: Event.StreamId,
  query: { readonly fromVersion?: number | undefined; readonly limit?: number | undefined }
): Effect.Effect<
  typeof ConsoleModel.StreamStates.Type,
  Model.NotFound | Model.ServiceError | HttpApiDecodeError,
  EventStore.EventStore
> =>
  Effect.gen(function* () {
    const category = Event.categoryOf(streamId)
    const view = config.deciders.get(category)
    if (view === undefined) return yield* Model.NotFound.of("decider", category)
    const store = yield* EventStore.EventStore
    const from = query.fromVersion ?? 1
    const limit = query.limit ?? Model.defaultLimit
    const read = yield* readEvents(store, streamId, { fromVersion: 1, maxCount: from - 1 + limit + 1 })
    // personal fields are opened with the key store the server was given; without one, they read as erased
    const keys = view.personal ? yield* Effect.serviceOption(KeyStore.KeyStore) : Option.none()
    const opened = Option.isNone(keys)
      ? read
      : yield* view.open(read).pipe(
          Effect.provideService(KeyStore.KeyStore, keys.value),
          Effect.catchTag("EventStoreError", (e) => Effect.fail(Model.ServiceError.of("readStream")(e)))
        )
    const steps: Array<typeof ConsoleModel.StateStep.Type> = []
    let state = view.initialState
    for (const [index, event] of read.slice(0, from - 1 + limit).entries()) {
      const next = view.step(state, opened[index]!)
      if (Either.isRight(next)) state = next.right
      if (event.version < from) continue
      const rendered = view.render(state)
      steps.push({
        event,
        state: Either.getOrNull(rendered),
        error: Either.isLeft(next) ? next.left : Either.isLeft(rendered) ? rendered.left : null
      })
    }
    return {
      streamId,
      category,
      initialState: Either.getOrNull(view.render(view.initialState)),
      steps,
      next: read.length > from - 1 + limit ? read[from - 1 + limit]!.version : null
    }
  })
