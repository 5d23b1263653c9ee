/**
 * The event browser: a typed, read-only HTTP API over the event store, the projection runners and the
 * sagas, built with `@effect/platform`'s `HttpApi` (so clients can be derived from {@link Api}), with its
 * OpenAPI document at `GET /openapi.json`, Prometheus metrics, a health check, a few guarded admin
 * operations, and a self-contained HTML page at `GET /` to browse events.
 *
 * Pages of the log neither repeat nor skip events; bad parameters are 400s, never sent to the store; a
 * store failure is a 500. It has no authentication of its own for reads. The endpoints, errors and
 * Gotchas: {@link Api}.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import type * as HttpRouter from "@effect/platform/HttpRouter"
import type * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as OpenApi from "@effect/platform/OpenApi"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as CheckpointStore from "../CheckpointStore.js"
import * as Event from "../Event.js"
import type * as EventStore from "../EventStore.js"
import type * as Projection from "../Projection.js"
import type * as Saga from "../Saga.js"
import type * as SagaStore from "../SagaStore.js"
import * as Handlers from "./internal/eventBrowserHandlers.js"
import * as Model from "./internal/eventBrowserModel.js"
import * as Page from "./page.js"
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
  ServiceError,
  StreamPage,
  Unauthorized,
  Unhealthy
} from "./internal/eventBrowserModel.js"

/** Largest `limit` of a page. */
export const maxLimit = Model.maxLimit

/** `limit` of a page when none is given. */
export const defaultLimit = Model.defaultLimit

// ---------------------------------------------------------------------------------------------------
// API definition
// ---------------------------------------------------------------------------------------------------

const Limit = Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, Model.maxLimit)).annotations({
  description: `Page size, 1 to ${Model.maxLimit}; default ${Model.defaultLimit}`
})

const Repeated = (item: Schema.Schema<string>, description: string) =>
  Schema.optional(Schema.Array(item).pipe(Schema.maxItems(100)).annotations({ description }))

const StreamParams = Schema.Struct({
  fromVersion: Schema.optional(
    Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, Event.maxVersion)).annotations({
      description: "First version of the page; default 1"
    })
  ),
  limit: Schema.optional(Limit)
})

/** `GET /events`, `GET /streams/:streamId` and its alias `GET /events/aggregate/:id`. */
export class EventsGroup extends HttpApiGroup.make("events")
  .add(
    HttpApiEndpoint.get("listEvents", "/events")
      .setUrlParams(
        Schema.Struct({
          after: Schema.optional(Model.Cursor),
          limit: Schema.optional(Limit),
          category: Repeated(Model.Category, "Only these stream categories (repeatable, up to 100: any matches)"),
          type: Repeated(Event.EventType, "Only these event types (repeatable, up to 100: any matches)"),
          from: Schema.optional(Schema.DateTimeUtc.annotations({ description: "recordedAt at or after (ISO-8601)" })),
          to: Schema.optional(Schema.DateTimeUtc.annotations({ description: "recordedAt before (ISO-8601)" }))
        })
      )
      .addSuccess(Model.EventPage)
  )
  .add(
    HttpApiEndpoint.get("readStream", "/streams/:streamId")
      .setPath(Schema.Struct({ streamId: Event.StreamId }))
      .setUrlParams(StreamParams)
      .addSuccess(Model.StreamPage)
      .addError(Model.NotFound)
  )
  .add(
    HttpApiEndpoint.get("readAggregate", "/events/aggregate/:id")
      .setPath(Schema.Struct({ id: Event.StreamId }))
      .setUrlParams(StreamParams)
      .addSuccess(Model.StreamPage)
      .addError(Model.NotFound)
  )
  .annotate(OpenApi.Description, "The global log and single streams") {}

/** `GET /projections` and `GET /projections/:name`. */
export class ProjectionsGroup extends HttpApiGroup.make("projections")
  .add(
    HttpApiEndpoint.get("listProjections", "/projections").addSuccess(
      Schema.Struct({ projections: Schema.Array(Model.ProjectionStatus) })
    )
  )
  .add(
    HttpApiEndpoint.get("getProjection", "/projections/:name")
      .setPath(Schema.Struct({ name: Schema.String }))
      .addSuccess(Schema.Struct({ name: Schema.String, runners: Schema.Array(Model.ProjectionStatus) }))
      .addError(Model.NotFound)
  )
  .annotate(OpenApi.Description, "Runners of this process: projections, sagas, the outbox relay") {}

/** `GET /sagas/:name/:id`. */
export class SagasGroup extends HttpApiGroup.make("sagas")
  .add(
    HttpApiEndpoint.get("getSagaInstance", "/sagas/:name/:id")
      .setPath(Schema.Struct({ name: Schema.String, id: Model.SagaInstanceId }))
      .addSuccess(Model.SagaInstance)
      .addError(Model.NotFound)
  )
  .annotate(OpenApi.Description, "Saga instances") {}

/** `GET /health`, `GET /metrics`, `GET /` (the HTML page). */
export class SystemGroup extends HttpApiGroup.make("system")
  .add(HttpApiEndpoint.get("health", "/health").addSuccess(Model.HealthReport).addError(Model.Unhealthy))
  .add(
    HttpApiEndpoint.get("metrics", "/metrics").addSuccess(
      HttpApiSchema.Text({ contentType: "text/plain; version=0.0.4; charset=utf-8" })
    )
  )
  .add(HttpApiEndpoint.get("page", "/").addSuccess(HttpApiSchema.Text({ contentType: "text/html; charset=utf-8" })))
  .annotate(OpenApi.Description, "Health, metrics and the browser page") {}

/**
 * The admin guard: `Authorization: Bearer <token>` against the `adminToken` of the options; answers 404
 * when no token is configured and 401 for a missing or wrong one.
 */
export class AdminAuth extends HttpApiMiddleware.Tag<AdminAuth>()("effect-eventsourcing/EventBrowserApi/AdminAuth", {
  failure: Schema.Union(Model.Unauthorized, Model.NotFound),
  security: { bearer: HttpApiSecurity.bearer }
}) {}

/** `POST /admin/projections/:name/rebuild`, behind {@link AdminAuth}. */
export class AdminGroup extends HttpApiGroup.make("admin")
  .add(
    HttpApiEndpoint.post("rebuildProjection", "/admin/projections/:name/rebuild")
      .setPath(Schema.Struct({ name: Schema.String }))
      .addSuccess(Schema.Struct({ projection: Schema.String, versions: Schema.Array(Schema.Int) }))
      .addError(Model.NotFound)
  )
  .middleware(AdminAuth)
  .annotate(OpenApi.Description, "Operations, off unless an admin token is configured") {}

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
 *   `Authorization: Bearer <token>` (compared in constant time; 401 otherwise). There is no dead-letter
 *   replay: the library has none yet.
 *
 * Errors are `Schema.TaggedError`s with a `message`: bad parameters (limit out of range, malformed cursor,
 * bad dates, invalid stream id, category, type or saga instance id) are `HttpApiDecodeError` (400, with the schema issues); `NotFound` (404),
 * `Unauthorized` (401), `ServiceError` (500: a store failed), `Unhealthy` (503).
 *
 * **Gotchas**: the API is read-only except the admin group; it has no authentication of its own for the
 * read endpoints and shows event data and metadata as stored: put it behind your own gateway when the
 * events are sensitive. Health messages include runners' last errors.
 */
export class Api extends HttpApi.make("eventBrowser")
  .add(EventsGroup)
  .add(ProjectionsGroup)
  .add(SagasGroup)
  .add(SystemGroup)
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
}

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
  )
  const projections = HttpApiBuilder.group(Api, "projections", (handlers) =>
    handlers
      .handle("listProjections", () => Effect.map(Handlers.statuses, (projections) => ({ projections })))
      .handle("getProjection", ({ path }) => Handlers.projection(path.name))
  )
  const sagas = HttpApiBuilder.group(Api, "sagas", (handlers) =>
    handlers.handle("getSagaInstance", ({ path }) => Handlers.sagaInstance(config, path.name, path.id))
  )
  const system = HttpApiBuilder.group(Api, "system", (handlers) =>
    handlers
      .handle("health", () => Handlers.health(config))
      .handle("metrics", () => config.metrics)
      .handle("page", () =>
        Effect.succeed(
          HttpServerResponse.text(Page.html, {
            contentType: "text/html; charset=utf-8",
            headers: Page.headers
          })
        )
      )
  )
  const admin = HttpApiBuilder.group(Api, "admin", (handlers) =>
    handlers.handle("rebuildProjection", ({ path }) => Handlers.rebuild(config, path.name))
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
  return Layer.mergeAll(events, projections, sagas, system, admin) as Layer.Layer<any, never, any>
}

/**
 * The handlers of {@link Api} and `GET /openapi.json`, to serve with `HttpApiBuilder.serve` (see
 * {@link layerServer}) or `HttpApiBuilder.toWebHandler`. Throws on invalid options, as {@link handlers}.
 */
export const layer = <const O extends Options>(options: O): Layer.Layer<HttpApi.Api, never, Requirements<O>> =>
  HttpApiBuilder.middlewareOpenApi().pipe(Layer.provideMerge(HttpApiBuilder.api(Api)), Layer.provide(handlers(options)))

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
