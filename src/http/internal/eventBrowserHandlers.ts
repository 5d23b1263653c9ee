/**
 * What the `EventBrowserApi` endpoints do, apart from HTTP: paging the global log and streams, runner and
 * saga statuses, health checks, metrics, rebuilds and the admin token check. Each function takes the
 * decoded request and the configuration made from the options by {@link config}.
 */
import { HttpApiDecodeError } from "@effect/platform/HttpApiError"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as CheckpointStore from "../../CheckpointStore.js"
import * as Event from "../../Event.js"
import * as EventStore from "../../EventStore.js"
import * as Projection from "../../Projection.js"
import * as Saga from "../../Saga.js"
import type * as SagaStore from "../../SagaStore.js"
import * as Prometheus from "../prometheus.js"
import type * as EventBrowserApi from "../EventBrowserApi.js"
import type { StateView } from "./consoleHandlers.js"
import * as Model from "./eventBrowserModel.js"

/** Validated options. */
export interface Config {
  readonly sagas: ReadonlyMap<string, Saga.Saga<unknown, unknown, unknown>>
  /** Rebuild targets by name: every version given. */
  readonly projections: ReadonlyMap<string, ReadonlyArray<Projection.Projection<unknown, unknown, never>>>
  readonly adminToken: Option.Option<Uint8Array>
  readonly checks: ReadonlyArray<readonly [string, Effect.Effect<unknown, unknown>]>
  readonly healthTimeout: Duration.Duration
  readonly metrics: Effect.Effect<string>
  readonly scanLimit: number
  /** Time travel: the registered deciders by category. */
  readonly deciders: ReadonlyMap<string, StateView>
  readonly sampleInterval: Duration.Duration
  readonly sampleWindow: Duration.Duration
  readonly livePollInterval: Duration.Duration
}

const builtinChecks = ["eventStore", "projections"]

/** Validates the options; throws on a wiring bug (see `EventBrowserApi.layer`). */
export const config = (options: EventBrowserApi.Options): Config => {
  const problems: Array<string> = []
  const sagas = new Map<string, Saga.Saga<unknown, unknown, unknown>>()
  for (const saga of options.sagas ?? []) {
    if (sagas.has(saga.name)) problems.push(`two sagas named ${JSON.stringify(saga.name)}`)
    sagas.set(saga.name, saga)
  }
  const projections = new Map<string, Array<Projection.Projection<unknown, unknown, never>>>()
  for (const projection of options.projections ?? []) {
    const same = projections.get(projection.name) ?? []
    if (same.some((p) => p.version === projection.version)) {
      problems.push(`projection ${JSON.stringify(projection.name)} version ${projection.version} given twice`)
    }
    projections.set(projection.name, [...same, projection as Projection.Projection<unknown, unknown, never>])
  }
  const deciders = new Map<string, StateView>()
  for (const decider of options.deciders ?? []) {
    if (deciders.has(decider.category)) problems.push(`two deciders of category ${JSON.stringify(decider.category)}`)
    deciders.set(decider.category, decider)
  }
  const durations = {
    sampleInterval: Duration.decode(options.sampleInterval ?? "2 seconds"),
    sampleWindow: Duration.decode(options.sampleWindow ?? "5 minutes"),
    livePollInterval: Duration.decode(options.livePollInterval ?? "500 millis")
  }
  for (const [name, duration] of Object.entries(durations)) {
    if (!Duration.greaterThan(duration, Duration.zero) || !Duration.isFinite(duration)) {
      problems.push(`a ${name} that is positive and finite`)
    }
  }
  const token = options.adminToken === undefined ? undefined : Redacted.value(options.adminToken)
  if (token !== undefined && token.trim().length === 0) problems.push("a non-empty admin token")
  const checks = Object.entries(options.checks ?? {})
  for (const [name] of checks) if (builtinChecks.includes(name)) problems.push(`a check name other than ${name}`)
  const scanLimit = options.scanLimit ?? 10_000
  if (!Number.isSafeInteger(scanLimit) || scanLimit < 1) problems.push("a scan limit that is a positive integer")
  if (problems.length > 0) throw new Error(`EventBrowserApi options: ${problems.join("; ")}`)
  return {
    sagas,
    projections,
    adminToken: Option.map(Option.fromNullable(token), (t) => new TextEncoder().encode(t)),
    checks,
    healthTimeout: Duration.decode(options.healthTimeout ?? "5 seconds"),
    metrics: options.metrics ?? Effect.map(Metric.snapshot, Prometheus.render),
    scanLimit,
    deciders,
    ...durations
  }
}

// ---------------------------------------------------------------------------------------------------
// events
// ---------------------------------------------------------------------------------------------------

/** The decoded query of `GET /events`. */
export interface EventsQuery {
  readonly after?: Event.Checkpoint | undefined
  readonly limit?: number | undefined
  readonly category?: ReadonlyArray<string> | undefined
  readonly type?: ReadonlyArray<string> | undefined
  readonly from?: DateTime.Utc | undefined
  readonly to?: DateTime.Utc | undefined
}

/**
 * A page of the global log. Category and type filters go down to `readAll`; the time range is applied
 * here, reading at most `scanLimit` events. The page is full after `limit` matches and one more event
 * read (so `next` is `null` exactly when the log ended); `next` is then the checkpoint of the last event
 * read, every event before it having been either returned or filtered out.
 */
export const eventsPage = (
  config: Config,
  query: EventsQuery
): Effect.Effect<Model.EventPage, Model.ServiceError, EventStore.EventStore> =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const limit = query.limit ?? Model.defaultLimit
    const { from, to } = query
    const after = query.after ?? null
    if (from !== undefined && to !== undefined && DateTime.greaterThanOrEqualTo(from, to)) {
      return { events: [], next: null, last: after }
    }
    const timed = from !== undefined || to !== undefined
    const budget = timed ? config.scanLimit : Number.POSITIVE_INFINITY
    const inRange = (e: Event.RecordedEvent) =>
      (from === undefined || DateTime.greaterThanOrEqualTo(e.recordedAt, from)) &&
      (to === undefined || DateTime.lessThan(e.recordedAt, to))
    const maxCount = (timed ? config.scanLimit : limit) + 1
    const scan = {
      events: [] as Array<Event.RecordedEvent>,
      read: 0,
      last: undefined as Event.Checkpoint | undefined,
      more: false
    }
    yield* store
      .readAll({
        ...(query.after === undefined ? {} : { after: query.after }),
        ...(query.category === undefined ? {} : { categories: query.category }),
        ...(query.type === undefined ? {} : { types: query.type }),
        batchSize: Math.min(maxCount, 1000),
        maxCount
      })
      .pipe(
        Stream.runFoldWhile(
          scan,
          (s) => !s.more,
          (s, event) => {
            // one event past a full page (or the scan budget): there is more, and it starts after `last`
            if (s.events.length === limit || s.read >= budget) {
              s.more = true
              return s
            }
            s.read++
            s.last = Event.checkpointOf(event)
            if (inRange(event)) s.events.push(event)
            return s
          }
        ),
        Effect.mapError(Model.ServiceError.of("readAll"))
      )
    return { events: scan.events, next: scan.more ? (scan.last ?? null) : null, last: scan.last ?? after }
  })

/** A stream's events as HTTP answers: 404 for a stream without events (or deleted), 400 for a bad id. */
export const readEvents = (
  store: EventStore.EventStore["Type"],
  streamId: Event.StreamId,
  options: EventStore.ReadStreamOptions
): Effect.Effect<ReadonlyArray<Event.RecordedEvent>, Model.NotFound | Model.ServiceError | HttpApiDecodeError> =>
  store.readStream(streamId, options).pipe(
    Stream.runCollect,
    Effect.map(Chunk.toReadonlyArray),
    Effect.catchTags({
      StreamNotFound: () => Effect.fail(Model.NotFound.of("stream", streamId)),
      StreamDeleted: () => Effect.fail(Model.NotFound.of("stream", streamId)),
      InvalidStreamId: (e) => Effect.fail(new HttpApiDecodeError({ issues: [], message: e.message })),
      EventStoreError: (e) => Effect.fail(Model.ServiceError.of("readStream")(e))
    })
  )

/** A page of one stream; 404 when it has no events. */
export const streamPage = (
  streamId: Event.StreamId,
  query: { readonly fromVersion?: number | undefined; readonly limit?: number | undefined }
): Effect.Effect<Model.StreamPage, Model.NotFound | Model.ServiceError | HttpApiDecodeError, EventStore.EventStore> =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const limit = query.limit ?? Model.defaultLimit
    const read = yield* readEvents(store, streamId, { fromVersion: query.fromVersion ?? 1, maxCount: limit + 1 })
    return {
      streamId,
      events: read.slice(0, limit),
      next: read.length > limit ? read[limit]!.version : null
    }
  })

// ---------------------------------------------------------------------------------------------------
// runners and sagas
// ---------------------------------------------------------------------------------------------------

/**
 * The statuses of the runners in the registry, by name then version; with a tenant in context (see
 * `Tenancy`), that tenant's runners only.
 */
export const statuses: Effect.Effect<ReadonlyArray<Projection.Status>, never, Projection.Registry> = Effect.gen(
  function* () {
    const all = yield* Effect.flatMap(Projection.Registry, (registry) => registry.statuses)
    const tenant = yield* Event.CurrentTenant
    return all
      .filter((s) => Option.isNone(tenant) || (Option.isSome(s.tenant) && s.tenant.value === tenant.value))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.version - b.version))
  }
)

/** The runners of one name; 404 when there is none. */
export const projection = (
  name: string
): Effect.Effect<
  { readonly name: string; readonly runners: ReadonlyArray<Projection.Status> },
  Model.NotFound,
  Projection.Registry
> =>
  Effect.flatMap(statuses, (all) => {
    const runners = all.filter((s) => s.name === name)
    return runners.length === 0 ? Effect.fail(Model.NotFound.of("projection", name)) : Effect.succeed({ name, runners })
  })

/** A saga instance's status; 404 for an unknown saga or instance. */
export const sagaInstance = (
  config: Config,
  name: string,
  id: string
): Effect.Effect<typeof Model.SagaInstance.Type, Model.NotFound | Model.ServiceError, SagaStore.SagaStore> =>
  Effect.gen(function* () {
    const saga = config.sagas.get(name)
    if (saga === undefined) return yield* Model.NotFound.of("saga", name)
    const found = yield* Effect.mapError(Saga.instance(saga, id), Model.ServiceError.of("Saga.instance"))
    if (Option.isNone(found)) return yield* Model.NotFound.of("sagaInstance", id)
    const state = yield* Effect.mapError(
      Schema.encodeUnknown(saga.stateSchema)(found.value.state),
      Model.ServiceError.of("encode saga state")
    )
    return {
      saga: name,
      instance: id,
      status: found.value.status,
      state,
      version: found.value.version,
      compensations: found.value.compensations,
      pendingTimeouts: found.value.pendingTimeouts.map((t) => ({ name: t.name, dueAt: Model.utc(t.dueAt) })),
      error: found.value.error
    }
  })

// ---------------------------------------------------------------------------------------------------
// health and metrics
// ---------------------------------------------------------------------------------------------------

/** Runs every check concurrently, each bounded by the health timeout. */
export const health = (
  config: Config
): Effect.Effect<typeof Model.HealthReport.Type, Model.Unhealthy, EventStore.EventStore | Projection.Registry> =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const runners = Effect.flatMap(statuses, (all) => {
      const failed = all.filter((s) => s.state === "failed")
      return failed.length === 0
        ? Effect.void
        : Effect.fail(
            `${failed.length} runner(s) failed: ` +
              failed
                .map(
                  (s) =>
                    `${s.name}@${s.version}${Option.match(s.lastError, { onNone: () => "", onSome: (e) => `: ${e}` })}`
                )
                .join("; ")
          )
    })
    const checks: ReadonlyArray<readonly [string, Effect.Effect<unknown, unknown, Projection.Registry>]> = [
      ["eventStore", store.head],
      ["projections", runners],
      ...config.checks
    ]
    const results = yield* Effect.forEach(
      checks,
      ([name, check]) =>
        check.pipe(
          Effect.timeoutFail({
            duration: config.healthTimeout,
            onTimeout: () => `timed out after ${Duration.format(config.healthTimeout)}`
          }),
          Effect.exit,
          Effect.map((exit): readonly [string, Model.HealthCheck] => [
            name,
            Exit.isSuccess(exit) ? { status: "ok" } : { status: "failed", message: causeMessage(exit.cause) }
          ])
        ),
      { concurrency: "unbounded" }
    )
    const report = Object.fromEntries(results)
    return results.every(([, r]) => r.status === "ok")
      ? { status: "ok" as const, checks: report }
      : yield* new Model.Unhealthy({ status: "failed", checks: report })
  })

const causeMessage = (cause: Cause.Cause<unknown>): string =>
  Option.match(Cause.failureOption(cause), {
    onSome: Model.describe,
    onNone: () =>
      Option.match(Cause.dieOption(cause), {
        onSome: (defect) => `defect: ${Model.describe(defect)}`,
        onNone: () => "interrupted"
      })
  })

// ---------------------------------------------------------------------------------------------------
// admin
// ---------------------------------------------------------------------------------------------------

/** Rebuilds every given version of the named projection; 404 for a name not given in the options. */
export const rebuild = (
  config: Config,
  name: string
): Effect.Effect<
  { readonly projection: string; readonly versions: ReadonlyArray<number> },
  Model.NotFound | Model.ServiceError,
  CheckpointStore.CheckpointStore
> => {
  const targets = config.projections.get(name)
  if (targets === undefined) return Effect.fail(Model.NotFound.of("projection", name))
  return Effect.forEach(targets, (p) => Effect.as(Projection.rebuild(p), p.version)).pipe(
    Effect.mapError(Model.ServiceError.of("Projection.rebuild")),
    Effect.map((versions) => ({ projection: name, versions })),
    Effect.withSpan("EventBrowserApi.rebuild", { attributes: { projection: name } })
  )
}

/**
 * Checks an `Authorization` header against the admin token: 404 when admin is off, 401 unless it is
 * `Bearer <token>` with the right token (compared in time independent of where they differ).
 */
export const checkAdmin = (
  config: Config,
  authorization: string | undefined
): Effect.Effect<void, Model.NotFound | Model.Unauthorized> => {
  if (Option.isNone(config.adminToken)) return Effect.fail(Model.NotFound.of("endpoint", "admin"))
  const match = /^Bearer +(\S+) *$/i.exec(authorization ?? "")
  const given = new TextEncoder().encode(match === null ? "" : match[1]!)
  return match !== null && sameBytes(given, config.adminToken.value)
    ? Effect.void
    : Effect.fail(new Model.Unauthorized({ message: "a valid admin bearer token is required" }))
}

/** Compares in time that depends on the expected length only. */
const sameBytes = (given: Uint8Array, expected: Uint8Array): boolean => {
  let difference = given.length ^ expected.length
  for (let i = 0; i < expected.length; i++) difference |= expected[i]! ^ (given[i] ?? 0)
  return difference === 0
}
