/**
 * The endpoint groups of `EventBrowserApi`'s `Api` and its admin guard (re-exported by `EventBrowserApi`,
 * which documents the endpoints): the global log and streams, runners, sagas, the system endpoints and the
 * console page's, and the admin operations.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import * as Event from "../../Event.js"
import * as SagaStore from "../../SagaStore.js"
import * as ConsoleModel from "./consoleModel.js"
import * as Model from "./eventBrowserModel.js"

const Limit = Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, Model.maxLimit)).annotations({
  description: `Page size, 1 to ${Model.maxLimit}; default ${Model.defaultLimit}`
})

const Repeated = (item: Schema.Schema<string>, description: string) =>
  Schema.optional(Schema.Array(item).pipe(Schema.maxItems(100)).annotations({ description }))

const Filters = {
  category: Repeated(Model.Category, "Only these stream categories (repeatable, up to 100: any matches)"),
  type: Repeated(Event.EventType, "Only these event types (repeatable, up to 100: any matches)")
}

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
          ...Filters,
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
    HttpApiEndpoint.get("liveEvents", "/events/live")
      .setUrlParams(Schema.Struct({ after: Schema.optional(Model.Cursor), ...Filters }))
      .setHeaders(Schema.Struct({ "last-event-id": Schema.optional(Model.Cursor) }))
      .addSuccess(HttpApiSchema.Text({ contentType: "text/event-stream" }))
  )
  .add(
    HttpApiEndpoint.get("streamStates", "/streams/:streamId/states")
      .setPath(Schema.Struct({ streamId: Event.StreamId }))
      .setUrlParams(StreamParams)
      .addSuccess(ConsoleModel.StreamStates)
      .addError(Model.NotFound)
  )
  .add(
    HttpApiEndpoint.get("readAggregate", "/events/aggregate/:id")
      .setPath(Schema.Struct({ id: Event.StreamId }))
      .setUrlParams(StreamParams)
      .addSuccess(Model.StreamPage)
      .addError(Model.NotFound)
  )
  .annotate(OpenApi.Description, "The global log (pages, or live as Server-Sent Events) and single streams") {}

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

/** `GET /sagas/:name` and `GET /sagas/:name/:id`. */
export class SagasGroup extends HttpApiGroup.make("sagas")
  .add(
    HttpApiEndpoint.get("listSagaInstances", "/sagas/:name")
      .setPath(Schema.Struct({ name: Schema.String }))
      .setUrlParams(
        Schema.Struct({
          status: Schema.optional(SagaStore.Status),
          after: Schema.optional(Model.SagaInstanceId),
          limit: Schema.optional(Limit)
        })
      )
      .addSuccess(ConsoleModel.SagaInstances)
      .addError(Model.NotFound)
  )
  .add(
    HttpApiEndpoint.get("getSagaInstance", "/sagas/:name/:id")
      .setPath(Schema.Struct({ name: Schema.String, id: Model.SagaInstanceId }))
      .addSuccess(Model.SagaInstance)
      .addError(Model.NotFound)
  )
  .annotate(OpenApi.Description, "Saga instances") {}

/** `GET /health`, `GET /metrics`, `GET /`, `GET /assets/:name` and `GET /favicon.ico` (the console page). */
export class SystemGroup extends HttpApiGroup.make("system")
  .add(HttpApiEndpoint.get("health", "/health").addSuccess(Model.HealthReport).addError(Model.Unhealthy))
  .add(
    HttpApiEndpoint.get("metrics", "/metrics").addSuccess(
      HttpApiSchema.Text({ contentType: "text/plain; version=0.0.4; charset=utf-8" })
    )
  )
  .add(HttpApiEndpoint.get("page", "/").addSuccess(HttpApiSchema.Text({ contentType: "text/html; charset=utf-8" })))
  .add(HttpApiEndpoint.get("favicon", "/favicon.ico").addSuccess(HttpApiSchema.Text({ contentType: "image/svg+xml" })))
  .add(
    HttpApiEndpoint.get("asset", "/assets/:name")
      .setPath(Schema.Struct({ name: Schema.Literal("console.css", "console.js", "console.svg") }))
      .addSuccess(HttpApiSchema.Text({ contentType: "text/css, text/javascript, image/svg+xml" }))
  )
  .annotate(OpenApi.Description, "Health, metrics and the console page") {}

/** `GET /console`, `GET /console/samples`, `GET /dead-letters`: what the console page shows. */
export class ConsoleGroup extends HttpApiGroup.make("console")
  .add(HttpApiEndpoint.get("consoleInfo", "/console").addSuccess(ConsoleModel.ConsoleInfo))
  .add(HttpApiEndpoint.get("samples", "/console/samples").addSuccess(ConsoleModel.Samples))
  .add(
    HttpApiEndpoint.get("deadLetters", "/dead-letters")
      .setUrlParams(Schema.Struct({ projection: Schema.optional(Schema.String) }))
      .addSuccess(ConsoleModel.DeadLetters)
      .addError(Model.NotFound)
  )
  .annotate(OpenApi.Description, "The console: its configuration, runner samples, dead letters") {}

const DeadLetterPath = Schema.Struct({
  projection: Schema.String,
  id: Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, Number.MAX_SAFE_INTEGER))
})

/**
 * The admin guard: `Authorization: Bearer <token>` against the `adminToken` of the options; answers 404
 * when no token is configured and 401 for a missing or wrong one.
 */
export class AdminAuth extends HttpApiMiddleware.Tag<AdminAuth>()("effect-eventsourcing/EventBrowserApi/AdminAuth", {
  failure: Schema.Union(Model.Unauthorized, Model.NotFound),
  security: { bearer: HttpApiSecurity.bearer }
}) {}

const StreamPath = Schema.Struct({ streamId: Event.StreamId })

/** The rebuild, dead-letter, stream lifecycle and erasure operations, behind {@link AdminAuth}. */
export class AdminGroup extends HttpApiGroup.make("admin")
  .add(
    HttpApiEndpoint.post("rebuildProjection", "/admin/projections/:name/rebuild")
      .setPath(Schema.Struct({ name: Schema.String }))
      .addSuccess(Schema.Struct({ projection: Schema.String, versions: Schema.Array(Schema.Int) }))
      .addError(Model.NotFound)
  )
  .add(
    HttpApiEndpoint.post("retryDeadLetter", "/admin/dead-letters/:projection/:id/retry")
      .setPath(DeadLetterPath)
      .addSuccess(ConsoleModel.DeadLetterAction)
      .addError(Model.NotFound)
  )
  .add(
    HttpApiEndpoint.post("discardDeadLetter", "/admin/dead-letters/:projection/:id/discard")
      .setPath(DeadLetterPath)
      .addSuccess(ConsoleModel.DeadLetterAction)
      .addError(Model.NotFound)
  )
  .add(
    HttpApiEndpoint.post("deleteStream", "/admin/streams/:streamId/delete")
      .setPath(StreamPath)
      .addSuccess(ConsoleModel.StreamAction)
      .addError(Model.NotFound)
      .addError(Model.StreamConflict)
      .addError(Model.BadRequest)
      .annotate(
        OpenApi.Description,
        "Soft-deletes the stream: appends and reads refused, events kept (undo with undelete)"
      )
  )
  .add(
    HttpApiEndpoint.post("undeleteStream", "/admin/streams/:streamId/undelete")
      .setPath(StreamPath)
      .addSuccess(ConsoleModel.StreamAction)
      .addError(Model.NotFound)
      .addError(Model.StreamConflict)
      .addError(Model.BadRequest)
      .annotate(OpenApi.Description, "Undoes a soft delete")
  )
  .add(
    HttpApiEndpoint.post("hardDeleteStream", "/admin/streams/:streamId/hard-delete")
      .setPath(StreamPath)
      .addSuccess(ConsoleModel.StreamAction)
      .addError(Model.NotFound)
      .addError(Model.StreamConflict)
      .addError(Model.BadRequest)
      .annotate(
        OpenApi.Description,
        "Deletes the stream for good: its events, unique values, command records and snapshots"
      )
  )
  .add(
    HttpApiEndpoint.post("truncateStream", "/admin/streams/:streamId/truncate")
      .setPath(StreamPath)
      .setUrlParams(
        Schema.Struct({
          before: Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, Event.maxVersion)).annotations({
            description: "The first version kept: every event below it is removed"
          })
        })
      )
      .addSuccess(ConsoleModel.StreamAction)
      .addError(Model.NotFound)
      .addError(Model.StreamConflict)
      .addError(Model.BadRequest)
      .annotate(OpenApi.Description, "Removes the stream's events below version `before` (numbering kept)")
  )
  .add(
    HttpApiEndpoint.post("archiveStream", "/admin/streams/:streamId/archive")
      .setPath(StreamPath)
      .setUrlParams(
        Schema.Struct({
          before: Schema.optional(
            Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, Event.maxVersion)).annotations({
              description: "The first version left live: every event below it is archived (default: all)"
            })
          )
        })
      )
      .addSuccess(ConsoleModel.StreamAction)
      .addError(Model.NotFound)
      .addError(Model.StreamConflict)
      .addError(Model.BadRequest)
      .annotate(
        OpenApi.Description,
        "Moves the stream's events (below `before`, or all) to the archive: out of reads and `readAll`, " +
          "kept for reads that include archived events; the stream stays live"
      )
  )
  .add(
    HttpApiEndpoint.post("eraseSubject", "/admin/subjects/:subject/erase")
      .setPath(Schema.Struct({ subject: Model.SubjectId }))
      .addSuccess(ConsoleModel.SubjectErasure)
      .addError(Model.NotFound)
      .addError(Model.BadRequest)
      .annotate(
        OpenApi.Description,
        "Erases a data subject: deletes its key, so its personal fields read as erased from then on (for good)"
      )
  )
  .middleware(AdminAuth)
  .annotate(OpenApi.Description, "Operations, off unless an admin token is configured") {}
