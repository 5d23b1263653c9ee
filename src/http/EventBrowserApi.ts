/**
 * The event browser and operations console: a typed HTTP API over the event store, the projection runners
 * and the sagas, built with `@effect/platform`'s `HttpApi` (so clients can be derived from {@link Api}),
 * with its OpenAPI document at `GET /openapi.json` and reference at `GET /docs`, Prometheus metrics, a
 * health check, a live log, runner samples, guarded admin operations (rebuilds, dead letters, stream
 * deletion and truncation, erasing data subjects), and the console page at `GET /` (plain HTML, CSS and
 * JavaScript files shipped in the package).
 *
 * Pages of the log neither repeat nor skip events; bad parameters are 400s, never sent to the store; a
 * store failure is a 500. It has no authentication of its own for reads. The endpoints, errors and
 * Gotchas: {@link Api}.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiScalar from "@effect/platform/HttpApiScalar"
import type * as HttpRouter from "@effect/platform/HttpRouter"
import type * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Aggregate from "../Aggregate.js"
import type * as CheckpointStore from "../CheckpointStore.js"
import type * as EventStore from "../EventStore.js"
import type * as Projection from "../Projection.js"
import type * as Saga from "../Saga.js"
import type * as SagaStore from "../SagaStore.js"
import * as Assets from "./internal/assets.js"
import * as Console from "./internal/consoleHandlers.js"
import {
  AdminAuth,
  AdminGroup,
  ConsoleGroup,
  EventsGroup,
  ProjectionsGroup,
  SagasGroup,
  SystemGroup
} from "./internal/eventBrowserGroups.js"
import * as Handlers from "./internal/eventBrowserHandlers.js"
import * as Model from "./internal/eventBrowserModel.js"
import * as Lifecycle from "./internal/lifecycleHandlers.js"
import * as Tenants from "./tenancy.js"

export {
  Cursor,
  decodeCursor,
  encodeCursor,
  EventPage,
  HealthCheck,
  HealthReport,
  NotFound,
  PartitionStatus,
  Progress,
  ProjectionStatus,
  SagaInstance,
  BadRequest,
  ServiceError,
  StreamConflict,
  StreamPage,
  Unauthorized,
  Unhealthy
} from "./internal/eventBrowserModel.js"
export {
  ConsoleInfo,
  StreamAction,
  SubjectErasure,
  DeadLetter,
  DeadLetterAction,
  DeadLetters,
  RunnerSample,
  Sample,
  Samples,
  SagaInstances,
  StateStep,
  StreamStates
} from "./internal/consoleModel.js"

/** Largest `limit` of a page. */
export const maxLimit = Model.maxLimit

/** `limit` of a page when none is given. */
export const defaultLimit = Model.defaultLimit

export {
  AdminAuth,
  AdminGroup,
  ConsoleGroup,
  EventsGroup,
  ProjectionsGroup,
  SagasGroup,
  SystemGroup
} from "./internal/eventBrowserGroups.js"

// ---------------------------------------------------------------------------------------------------
// API definition
// ---------------------------------------------------------------------------------------------------

/**
 * The API definition: derive clients from it (`HttpApiClient.make(Api)`), or serve it with {@link layer}.
 *
 * Endpoints (all JSON unless said; bigints such as positions and transactions are decimal strings,
 * timestamps ISO-8601 strings):
 * - `GET /events?after=&limit=&category=&type=&from=&to=`: the global log in the store's no-skip order,
 *   `{ events, next, last }`. `after` is an opaque cursor (base64url of `transaction:position`, the full
 *   checkpoint) taken from `next` or `last`; `limit` is 1 to 1000 (default 100). `category` and `type`
 *   are repeatable, not comma lists (`?type=A&type=B`: either; up to 100 each) and pushed down to `readAll`;
 *   a value that no stream or event could have (empty, a control character such as NUL, a lone surrogate, longer
 *   than a name may be) is a 400, never sent to the store. `from` (inclusive) and `to`
 *   (exclusive) filter on `recordedAt`; the store cannot index them, so such a page scans at most
 *   `scanLimit` events and may come back short, or empty, with a `next` cursor. Follow `next` until it is
 *   `null` (the end of the log when read): pages neither repeat nor skip events. `last` is the cursor of
 *   the last event read (or `after` when none was): poll with it for events appended later.
 * - `GET /streams/:streamId?fromVersion=&limit=` (alias `GET /events/aggregate/:id`): one stream by
 *   version, `{ streamId, events, next }` where `next` is the `fromVersion` of the next page or `null`;
 *   404 when the stream has no events.
 * - `GET /projections`, `GET /projections/:name`: the statuses of the runners in the projection
 *   `Registry` (projections, sagas as `saga:<name>`, the outbox relay); one name may have several runners
 *   (versions side by side, several workers). 404 for a name with no runner in this process.
 * - `GET /sagas/:name/:id`: a saga instance (`Saga.instance`), for the sagas given in the options; the
 *   state is rendered with the saga's state Schema. 404 for an unknown saga or instance; 400 for an id with a
 *   control character or a lone surrogate.
 * - `GET /health`: 200 `{ status: "ok", checks }`, or 503 with the same fields (and `_tag: "Unhealthy"`)
 *   when a check fails: `eventStore` (reads the head), `projections` (no runner `failed`), and the
 *   `checks` of the options, each bounded by `healthTimeout`.
 * - `GET /metrics`: Prometheus text (`text/plain; version=0.0.4`), from the `metrics` option or else
 *   Effect's own metrics rendered by `prometheus.ts`.
 * - `POST /admin/projections/:name/rebuild`: `Projection.rebuild` of the projections of that name given in
 *   the options. Admin endpoints answer 404 unless `adminToken` is set, then require
 *   `Authorization: Bearer <token>` (compared in constant time; 401 otherwise).
 * - `POST /admin/dead-letters/:projection/:id/retry` and `.../discard`: `CheckpointStore.retryDeadLetter`
 *   (the running workers handle the event again) or `discardDeadLetter`, for the projections given in the
 *   options; behind the admin token. 404 for an unknown projection or letter; 400 for an id that is not a
 *   positive integer.
 * - `POST /admin/streams/:streamId/delete`, `.../undelete`, `.../hard-delete` and `.../truncate?before=n`,
 *   behind the admin token: `EventStore`'s stream lifecycle (a hard delete removes the stream's snapshots
 *   too when a `SnapshotStore` is provided). 404 for an unknown stream, 409 `StreamConflict` for a deleted
 *   one (`hard`: for good), 400 for a bad id or `before`.
 * - `POST /admin/subjects/:subject/erase`, behind the admin token: `KeyStore.erase` with the `KeyStore`
 *   provided to the Layer (404 without one; 400 for a bad subject id).
 * - `GET /dead-letters?projection=`: the dead letters of the projections given in the options, oldest first.
 * - `GET /events/live?after=&category=&type=`: the log as it grows, as Server-Sent Events (`text/event-stream`):
 *   each event is an `event` frame whose `id` is its cursor and `data` the recorded event as JSON. It starts
 *   after the `Last-Event-ID` header (an `EventSource` reconnecting), else `after`, else at the head; it
 *   polls the store every `livePollInterval` once at the end, and sends a comment every 15 seconds.
 * - `GET /streams/:streamId/states?fromVersion=&limit=`: time travel, for a stream whose category has a
 *   decider registered in the options (see {@link decider}): `{ streamId, category, initialState, steps,
 *   next }`, each step an event and the state after it. 404 without such a decider or for a stream without
 *   events.
 * - `GET /sagas/:name?status=&after=&limit=`: a page of a saga's instances by id (`SagaStore.instances`),
 *   `next` being the `after` of the next page or `null`.
 * - `GET /console`: what the page may show (sagas, projections, deciders, whether admin is on);
 *   `GET /console/samples`: the runners' lag and throughput sampled every `sampleInterval` over the last
 *   `sampleWindow` (bounded memory: at most 100 runners a sample).
 * - `GET /`, `GET /assets/console.css|js|svg` (the icon also at `/favicon.ico`): the console page (strict CSP: its own
 *   files only; `ETag` and `Cache-Control: no-cache`, so a 304 when unchanged). `GET /docs` (with
 *   {@link layer}, or {@link layerDocs}): the API reference, served without any external resource. *
 * Errors are `Schema.TaggedError`s with a `message`: bad parameters (limit out of range, malformed cursor,
 * bad dates, invalid stream id, category, type or saga instance id) are `HttpApiDecodeError` (400, with the schema issues); `NotFound` (404),
 * `Unauthorized` (401), `StreamConflict` (409), `BadRequest` (400), `ServiceError` (500: a store failed),
 * `Unhealthy` (503).
 *
 * **Gotchas**: the API is read-only except the admin group; it has no authentication of its own for the
 * read endpoints and shows event data and metadata as stored: put it behind your own gateway when the
 * events are sensitive. Health messages include runners' last errors. A live-log connection is a request
 * in flight until the client leaves: a server that drains requests at shutdown waits for it (up to its
 * grace period). Samples are of the runners of this process only.
 */
export class Api extends HttpApi.make("eventBrowser")
  .add(EventsGroup)
  .add(ProjectionsGroup)
  .add(SagasGroup)
  .add(SystemGroup)
  .add(ConsoleGroup)
  .add(AdminGroup)
  .addError(Model.ServiceError)
  .annotate(OpenApi.Title, "effect-eventsourcing event browser") {}

// ---------------------------------------------------------------------------------------------------
// layers
// ---------------------------------------------------------------------------------------------------

/** Options of {@link layer}. */
export interface Options {
  /** Sagas whose instances `GET /sagas/:name/:id` shows; they need the `SagaStore`. */
  readonly sagas?: ReadonlyArray<Saga.Saga<any, any, any>>
  /** Projections the admin endpoints may rebuild; they need the `CheckpointStore` (and their own context). */
  readonly projections?: ReadonlyArray<Projection.Projection<any, any, any>>
  /** Turns the admin endpoints on, guarded by this bearer token (not empty). */
  readonly adminToken?: Redacted.Redacted<string>
  /** Extra health checks by name (a failure or a timeout is unhealthy); `eventStore` and `projections` are taken. */
  readonly checks?: Readonly<Record<string, Effect.Effect<unknown, unknown>>>
  /** How long one health check may take; default 5 seconds. */
  readonly healthTimeout?: Duration.DurationInput
  /** The body of `GET /metrics`; default: Effect's metric snapshot rendered by `prometheus.ts`. */
  readonly metrics?: Effect.Effect<string>
  /** Most events a time-filtered page of `GET /events` reads (it may come back short); default 10,000. */
  readonly scanLimit?: number
  /**
   * With multi-tenancy (`Tenancy`): the request header naming the tenant (e.g. `"x-tenant-id"`), required
   * on every request; the API then reads that tenant's streams only (see {@link layerServer}).
   */
  readonly tenantHeader?: string
  /**
   * Deciders whose streams `GET /streams/:streamId/states` folds (time travel), one per category: see
   * {@link decider}.
   */
  readonly deciders?: ReadonlyArray<Decider>
  /** How often the console's sampler reads the runners' lag and throughput; default 2 seconds. */
  readonly sampleInterval?: Duration.DurationInput
  /** How far back `GET /console/samples` goes; default 5 minutes. */
  readonly sampleWindow?: Duration.DurationInput
  /** How often `GET /events/live` reads the log once it reached its end; default 500 milliseconds. */
  readonly livePollInterval?: Duration.DurationInput
}

export type { StateView } from "./internal/consoleHandlers.js"

/** A decider registered with the console (see {@link decider}): a {@link StateView}. */
export type Decider = Console.StateView

/**
 * Registers an aggregate's decider with the console: `GET /streams/:streamId/states` of its category's
 * streams shows the state after each version, folded with `evolve` from `initialState` (events decoded
 * with the decider's codec, upcasters included). The state is rendered with `state` when given, else as
 * plain JSON (bigints as strings).
 *
 * **Gotchas**: every page folds from the stream's first version (snapshots are not used): cheap for the
 * short streams aggregates usually have, slow for a stream of millions of events.
 */
export const decider = <E extends { readonly _tag: string }, S>(
  decider: Aggregate.Decider<any, E, S, any>,
  options?: { readonly state?: Schema.Schema<S, any> }
): Decider => Console.stateView(decider, options?.state)

/**
 * What {@link layer} needs, given its options: always the event store and the projection `Registry`; the
 * `SagaStore` when `sagas` may be given; the `CheckpointStore` and the projections' own context when
 * `projections` may be given (an options value typed `Options` may hold both, so it needs both).
 */
export type Requirements<O extends Options> =
  | EventStore.EventStore
  | Projection.Registry
  | (MayHave<O, "sagas"> extends true ? SagaStore.SagaStore : never)
  | (MayHave<O, "projections"> extends true
      ? CheckpointStore.CheckpointStore | ProjectionContext<NonNullable<O["projections"]>[number]>
      : never)

/** Whether options of type `O` may set `K` (a type-level helper of {@link Requirements}). */
export type MayHave<O, K extends PropertyKey> = K extends keyof O
  ? [NonNullable<O[K]>] extends [never]
    ? false
    : true
  : false

/** What a projection's handler requires (a type-level helper of {@link Requirements}). */
export type ProjectionContext<P> = P extends Projection.Projection<any, any, infer R> ? R : never

/**
 * The implementations of {@link Api}'s groups, for an application that serves its own API made of these
 * groups and its own (`HttpApiBuilder.api(EventBrowserApi.Api.add(MyGroup))`, see the bank example).
 * Throws on invalid options (an empty admin token, a scan limit that is not a positive integer, two sagas
 * of one name, a check named `eventStore` or `projections`): a wiring bug.
 */
export const handlers = <const O extends Options>(
  options: O
): Layer.Layer<
  | HttpApiGroup.ApiGroup<"eventBrowser", "events">
  | HttpApiGroup.ApiGroup<"eventBrowser", "projections">
  | HttpApiGroup.ApiGroup<"eventBrowser", "sagas">
  | HttpApiGroup.ApiGroup<"eventBrowser", "system">
  | HttpApiGroup.ApiGroup<"eventBrowser", "console">
  | HttpApiGroup.ApiGroup<"eventBrowser", "admin">,
  never,
  Requirements<O>
> => {
  const config = Handlers.config(options)
  const events = HttpApiBuilder.group(Api, "events", (handlers) =>
    handlers
      .handle("listEvents", ({ urlParams }) => Handlers.eventsPage(config, urlParams))
      .handle("readStream", ({ path, urlParams }) => Handlers.streamPage(path.streamId, urlParams))
      .handle("readAggregate", ({ path, urlParams }) => Handlers.streamPage(path.id, urlParams))
      .handle("liveEvents", ({ headers, urlParams }) => Console.live(config, urlParams, headers["last-event-id"]))
      .handle("streamStates", ({ path, urlParams }) => Console.streamStates(config, path.streamId, urlParams))
  )
  const projections = HttpApiBuilder.group(Api, "projections", (handlers) =>
    handlers
      .handle("listProjections", () => Effect.map(Handlers.statuses, (projections) => ({ projections })))
      .handle("getProjection", ({ path }) => Handlers.projection(path.name))
  )
  const sagas = HttpApiBuilder.group(Api, "sagas", (handlers) =>
    handlers
      .handle("listSagaInstances", ({ path, urlParams }) => Console.sagaInstances(config, path.name, urlParams))
      .handle("getSagaInstance", ({ path }) => Handlers.sagaInstance(config, path.name, path.id))
  )
  const system = HttpApiBuilder.group(Api, "system", (handlers) =>
    handlers
      .handle("health", () => Handlers.health(config))
      .handle("metrics", () => config.metrics)
      .handle("page", () => Assets.serve("console.html"))
      .handle("asset", ({ path }) => Assets.serve(path.name))
      .handle("favicon", () => Assets.serve("console.svg"))
  )
  const consoleGroup = HttpApiBuilder.group(Api, "console", (handlers) =>
    Effect.map(Console.sampler(config), (sampler) =>
      handlers
        .handle("consoleInfo", () =>
          Effect.succeed({
            sagas: [...config.sagas.keys()],
            projections: [...config.projections.keys()],
            deciders: [...config.deciders.keys()],
            admin: Option.isSome(config.adminToken),
            sampleIntervalSeconds: Duration.toMillis(config.sampleInterval) / 1000
          })
        )
        .handle("samples", () => sampler.samples)
        .handle("deadLetters", ({ urlParams }) => Console.deadLetters(config, urlParams.projection))
    )
  )
  const admin = HttpApiBuilder.group(Api, "admin", (handlers) =>
    handlers
      .handle("rebuildProjection", ({ path }) => Handlers.rebuild(config, path.name))
      .handle("retryDeadLetter", ({ path }) => Console.deadLetterAction(config, path.projection, path.id, "retry"))
      .handle("discardDeadLetter", ({ path }) => Console.deadLetterAction(config, path.projection, path.id, "discard"))
      .handle("deleteStream", ({ path }) => Lifecycle.streamAction(path.streamId, "delete"))
      .handle("undeleteStream", ({ path }) => Lifecycle.streamAction(path.streamId, "undelete"))
      .handle("hardDeleteStream", ({ path }) => Lifecycle.streamAction(path.streamId, "hard-delete"))
      .handle("truncateStream", ({ path, urlParams }) =>
        Lifecycle.streamAction(path.streamId, "truncate", urlParams.before)
      )
      .handle("archiveStream", ({ path, urlParams }) =>
        Lifecycle.streamAction(path.streamId, "archive", urlParams.before)
      )
      .handle("eraseSubject", ({ path }) => Lifecycle.eraseSubject(path.subject))
  ).pipe(
    Layer.provide(
      Layer.succeed(
        AdminAuth,
        AdminAuth.of({
          bearer: () =>
            Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
              Handlers.checkAdmin(config, request.headers.authorization)
            )
        })
      )
    )
  )
  // handlers reach the saga and checkpoint stores only when sagas or projections are configured: the
  // cast states that narrower requirement
  return Layer.mergeAll(events, projections, sagas, system, consoleGroup, admin) as Layer.Layer<any, never, any>
}

/**
 * The handlers of {@link Api} and `GET /openapi.json`, to serve with `HttpApiBuilder.serve` (see
 * {@link layerServer}) or `HttpApiBuilder.toWebHandler`. Throws on invalid options, as {@link handlers}.
 */
export const layer = <const O extends Options>(options: O): Layer.Layer<HttpApi.Api, never, Requirements<O>> =>
  Layer.merge(HttpApiBuilder.middlewareOpenApi(), layerDocs).pipe(
    Layer.provideMerge(HttpApiBuilder.api(Api)),
    Layer.provide(handlers(options))
  )

/**
 * `GET /docs`: the API's reference (Scalar, from `@effect/platform`'s `HttpApiScalar`), its script served
 * inline from the package (no CDN, no web fonts, no request proxy), for the API in context (also an
 * application's own `HttpApiBuilder.api(EventBrowserApi.Api.add(MyGroup))`).
 */
export const layerDocs: Layer.Layer<never, never, HttpApi.Api> = HttpApiScalar.layer({
  path: "/docs",
  scalar: { withDefaultFonts: false, hideTestRequestButton: true, favicon: "assets/console.svg" }
})

/**
 * {@link layer} served by the `HttpServer` in context, e.g.
 * `layerServer(options).pipe(Layer.provide(NodeHttpServer.layer(createServer, { port: 8080 })))`.
 */
export const layerServer = <const O extends Options>(
  options: O
): Layer.Layer<never, never, HttpServer.HttpServer | HttpRouter.HttpRouter.DefaultServices | Requirements<O>> =>
  HttpApiBuilder.serve(options.tenantHeader === undefined ? undefined : Tenants.middleware(options.tenantHeader)).pipe(
    Layer.provide(layer(options))
  )
