/**
 * The wire model of the operations console's endpoints in `EventBrowserApi` (the live log, runner samples,
 * dead letters, saga pages, time travel, the page's configuration), as Schemas. Re-exported by
 * `EventBrowserApi`, which documents the endpoints.
 */
import * as Schema from "effect/Schema"
import * as Event from "../../Event.js"
import * as SagaStore from "../../SagaStore.js"

/** What the page needs to know about the server: what it may show and whether admin actions are on. */
export const ConsoleInfo = Schema.Struct({
  /** Sagas whose instances can be listed. */
  sagas: Schema.Array(Schema.String),
  /** Projections that can be rebuilt and whose dead letters are shown. */
  projections: Schema.Array(Schema.String),
  /** Stream categories whose states can be stepped through (registered deciders). */
  deciders: Schema.Array(Schema.String),
  /** Whether the admin endpoints are on (an admin token is configured). */
  admin: Schema.Boolean,
  /** Seconds between two samples of `GET /console/samples`. */
  sampleIntervalSeconds: Schema.Number
}).annotations({ identifier: "ConsoleInfo" })

/** One runner in one sample: its lag and its throughput since the previous sample. */
export const RunnerSample = Schema.Struct({
  name: Schema.String,
  version: Schema.Int,
  worker: Schema.String,
  state: Schema.String,
  lagEvents: Schema.Number,
  lagSeconds: Schema.Number,
  /** Events handled per second since the previous sample (0 for the first). */
  throughput: Schema.Number
}).annotations({ identifier: "RunnerSample" })

/** The runners' lag and throughput at one instant. */
export const Sample = Schema.Struct({
  at: Schema.DateTimeUtc,
  runners: Schema.Array(RunnerSample)
}).annotations({ identifier: "Sample" })

/** `GET /console/samples`: the samples of the last minutes, oldest first. */
export const Samples = Schema.Struct({
  intervalSeconds: Schema.Number,
  samples: Schema.Array(Sample)
}).annotations({ identifier: "Samples" })

/** A dead letter (`CheckpointStore.DeadLetter`). */
export const DeadLetter = Schema.Struct({
  id: Schema.Int,
  projection: Schema.Struct({ name: Schema.String, version: Schema.Int }),
  partition: Schema.Int,
  event: Event.RecordedEvent,
  error: Schema.String,
  at: Schema.DateTimeUtc,
  retryRequested: Schema.Boolean
}).annotations({ identifier: "DeadLetter" })

/** `GET /dead-letters`. */
export const DeadLetters = Schema.Struct({ deadLetters: Schema.Array(DeadLetter) }).annotations({
  identifier: "DeadLetters"
})

/** A page of a saga's instances (`SagaStore.instances`); `next` is the `after` of the next page. */
export const SagaInstances = Schema.Struct({
  saga: Schema.String,
  instances: Schema.Array(
    Schema.Struct({
      id: Schema.String,
      version: Schema.Int,
      status: SagaStore.Status,
      updatedAt: Schema.DateTimeUtc,
      error: Schema.OptionFromNullOr(Schema.String)
    })
  ),
  next: Schema.NullOr(Schema.String)
}).annotations({ identifier: "SagaInstances" })

/** One version of a stream with the aggregate's state after it (time travel). */
export const StateStep = Schema.Struct({
  event: Event.RecordedEvent,
  /** The state after this event, as JSON; the previous state when the event could not be decoded. */
  state: Schema.Unknown,
  /** Why the event could not be decoded or the state not rendered, if so. */
  error: Schema.NullOr(Schema.String)
}).annotations({ identifier: "StateStep" })

/** `GET /streams/:streamId/states`: a page of steps; `next` is the `fromVersion` of the next page. */
export const StreamStates = Schema.Struct({
  streamId: Schema.String,
  /** The registered decider's category. */
  category: Schema.String,
  initialState: Schema.Unknown,
  steps: Schema.Array(StateStep),
  next: Schema.NullOr(Schema.Int)
}).annotations({ identifier: "StreamStates" })

/** `POST /admin/dead-letters/...`: what was done. */
export const DeadLetterAction = Schema.Struct({
  projection: Schema.String,
  id: Schema.Int,
  action: Schema.Literal("retry", "discard")
}).annotations({ identifier: "DeadLetterAction" })

/**
 * `POST /admin/streams/:streamId/...`: what was done. `removed`: the events a truncation removed;
 * `snapshots`: the snapshots a hard delete removed (`null` without a snapshot store).
 */
export const StreamAction = Schema.Struct({
  streamId: Schema.String,
  action: Schema.Literal("delete", "undelete", "hard-delete", "truncate", "archive"),
  removed: Schema.optional(Schema.Int),
  snapshots: Schema.optional(Schema.NullOr(Schema.Int))
}).annotations({ identifier: "StreamAction" })

/** `POST /admin/subjects/:subject/erase`: the subject erased (its key deleted). */
export const SubjectErasure = Schema.Struct({
  subject: Schema.String,
  erased: Schema.Literal(true)
}).annotations({ identifier: "SubjectErasure" })
