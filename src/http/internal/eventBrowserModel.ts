/**
 * The wire model of `EventBrowserApi`: cursors, pages, statuses, health reports and the API's errors, as
 * Schemas (re-exported by `EventBrowserApi`, which documents them).
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as DateTime from "effect/DateTime"
import * as Either from "effect/Either"
import * as Encoding from "effect/Encoding"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Event from "../../Event.js"
import * as SagaStore from "../../SagaStore.js"

/** Largest `limit` of a page. */
export const maxLimit = 1000

/** `limit` of a page when none is given. */
export const defaultLimit = 100

// ---------------------------------------------------------------------------------------------------
// names in requests
// ---------------------------------------------------------------------------------------------------

// C0 and C1 control characters, and lone surrogates: no store keeps them in a name (PostgreSQL refuses
// a NUL in a text parameter outright), so a request naming one is bad input, not a store failure
const unstorable = /[\u0000-\u001f\u007f-\u009f]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

const requestName = (what: string, identifier: string, maxLength: number) =>
  Schema.String.pipe(
    Schema.filter(
      (s) =>
        s.length === 0
          ? `${what} must not be empty`
          : s.length > maxLength
            ? `${what} is ${s.length} characters long, the limit is ${maxLength}`
            : unstorable.test(s)
              ? `${what} contains a control character or a lone surrogate`
              : true,
      { identifier }
    )
  )

/** A category to filter on: not empty, at most a stream id's length, without control characters or lone surrogates. */
export const Category = requestName("a category", "Category", Event.maxStreamIdLength)

/** A data subject's id in a path: 1 to 255 characters, without control characters or lone surrogates. */
export const SubjectId = requestName("a subject id", "SubjectId", 255)

/** A saga instance id in a path: not empty, without control characters or lone surrogates. */
export const SagaInstanceId = requestName("a saga instance id", "SagaInstanceId", Number.POSITIVE_INFINITY)

// ---------------------------------------------------------------------------------------------------
// cursor
// ---------------------------------------------------------------------------------------------------

const maxBigint = 2n ** 63n - 1n
const tuple = /^(0|[1-9][0-9]{0,18}):(0|[1-9][0-9]{0,18})$/

/** The opaque cursor of a checkpoint: base64url (no padding) of `"<transaction>:<position>"`. */
export const encodeCursor = (checkpoint: Event.Checkpoint): string =>
  Encoding.encodeBase64Url(`${checkpoint.transaction}:${checkpoint.position}`)

/** The checkpoint of a cursor, or why it is not one (only what {@link encodeCursor} makes is accepted). */
export const decodeCursor = (cursor: string): Either.Either<Event.Checkpoint, string> => {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(cursor)) return Either.left("a cursor is a short base64url string")
  return Either.flatMap(
    Either.mapLeft(Encoding.decodeBase64UrlString(cursor), () => "a cursor is base64url"),
    (text) => {
      const match = tuple.exec(text)
      if (match === null || encodeCursor({ transaction: BigInt(match[1]!), position: BigInt(match[2]!) }) !== cursor)
        return Either.left("not a cursor of this API")
      const checkpoint = { transaction: BigInt(match[1]!), position: BigInt(match[2]!) }
      return checkpoint.transaction > maxBigint || checkpoint.position > maxBigint
        ? Either.left("cursor out of range")
        : Either.right(checkpoint)
    }
  )
}

/** A {@link Event.Checkpoint} as an opaque string (see {@link encodeCursor}). */
export const Cursor = Schema.transformOrFail(Schema.String, Schema.typeSchema(Event.Checkpoint), {
  strict: true,
  decode: (cursor, _, ast) =>
    Either.match(decodeCursor(cursor), {
      onLeft: (problem) => ParseResult.fail(new ParseResult.Type(ast, cursor, `Invalid cursor: ${problem}`)),
      onRight: ParseResult.succeed
    }),
  encode: (checkpoint) => ParseResult.succeed(encodeCursor(checkpoint))
}).annotations({
  identifier: "Cursor",
  description: "Opaque position in the global log, from a page's `next` or `last`"
})

// ---------------------------------------------------------------------------------------------------
// pages
// ---------------------------------------------------------------------------------------------------

/** A page of the global log (see `EventBrowserApi` for `next` and `last`). */
export const EventPage = Schema.Struct({
  events: Schema.Array(Event.RecordedEvent),
  /** Where the next page starts; `null` once the end of the log was reached. */
  next: Schema.NullOr(Cursor),
  /** The last event read (or the `after` given when none was): poll with it for newer events. */
  last: Schema.NullOr(Cursor)
}).annotations({ identifier: "EventPage" })
export type EventPage = typeof EventPage.Type

/** A page of one stream; `next` is the `fromVersion` of the next page, `null` at the end. */
export const StreamPage = Schema.Struct({
  streamId: Schema.String,
  events: Schema.Array(Event.RecordedEvent),
  next: Schema.NullOr(Schema.Int)
}).annotations({ identifier: "StreamPage" })
export type StreamPage = typeof StreamPage.Type

// ---------------------------------------------------------------------------------------------------
// runners and sagas
// ---------------------------------------------------------------------------------------------------

const RunnerState = Schema.Literal("starting", "catching-up", "live", "stalled", "failed", "idle")

/**
 * A catch-up's progress (`Projection.PartitionStatus` `progress`): log positions done of the total
 * (approximately events), positions per second over about the last 30 seconds, and the seconds left at
 * that rate (`null` while the rate is 0).
 */
export const Progress = Schema.Struct({
  done: Schema.Number,
  total: Schema.Number,
  rate: Schema.Number,
  etaSeconds: Schema.OptionFromNullOr(Schema.Number)
}).annotations({ identifier: "Progress" })

/** One partition a runner owns (`Projection.PartitionStatus`). */
export const PartitionStatus = Schema.Struct({
  partition: Schema.Int,
  state: RunnerState,
  checkpoint: Event.Checkpoint,
  processed: Schema.Number,
  lastError: Schema.OptionFromNullOr(Schema.String),
  lastEventAt: Schema.OptionFromNullOr(Schema.DateTimeUtc),
  /** Events committed but held back by the read horizon (PostgreSQL), and the transaction holding it. */
  heldBack: Schema.OptionFromNullOr(
    Schema.Struct({
      events: Schema.Number,
      since: Schema.DateTimeUtc,
      blocker: Schema.OptionFromNullOr(Schema.String)
    })
  ),
  /** While catching up (`null` once live). */
  progress: Schema.OptionFromNullOr(Progress)
}).annotations({ identifier: "PartitionStatus" })

/**
 * A runner's status (`Projection.Status`): position per owned partition, lag, progress while catching up,
 * state, last error.
 */
export const ProjectionStatus = Schema.Struct({
  name: Schema.String,
  version: Schema.Int,
  worker: Schema.String,
  state: RunnerState,
  /** The projection's partition count. */
  partitions: Schema.Int,
  owned: Schema.Array(PartitionStatus),
  lag: Schema.Struct({ events: Schema.Number, seconds: Schema.Number }),
  /** When the runner reads a PostgreSQL hot standby: its replication lag (`null` otherwise). */
  replica: Schema.OptionFromNullOr(
    Schema.Struct({ seconds: Schema.Number, bytes: Schema.Number, receiving: Schema.Boolean })
  ),
  /** The progress of the owned partition expected to finish catching up last; `null` once all are live. */
  progress: Schema.OptionFromNullOr(Progress),
  lastError: Schema.OptionFromNullOr(Schema.String)
}).annotations({ identifier: "ProjectionStatus" })

/** A saga instance (`Saga.instance`), its state encoded with the saga's state Schema. */
export const SagaInstance = Schema.Struct({
  saga: Schema.String,
  instance: Schema.String,
  status: SagaStore.Status,
  state: Schema.Unknown,
  version: Schema.Int,
  /** Compensations recorded and not yet run. */
  compensations: Schema.Int,
  pendingTimeouts: Schema.Array(Schema.Struct({ name: Schema.String, dueAt: Schema.DateTimeUtc })),
  error: Schema.OptionFromNullOr(Schema.String)
}).annotations({ identifier: "SagaInstance" })

/** Renders epoch milliseconds for {@link SagaInstance} `dueAt`. */
export const utc = (millis: number): DateTime.Utc => DateTime.unsafeMake(millis)

// ---------------------------------------------------------------------------------------------------
// health
// ---------------------------------------------------------------------------------------------------

/** One health check's outcome. */
export const HealthCheck = Schema.Struct({
  status: Schema.Literal("ok", "failed"),
  message: Schema.optional(Schema.String)
}).annotations({ identifier: "HealthCheck" })
export type HealthCheck = typeof HealthCheck.Type

const checks = Schema.Record({ key: Schema.String, value: HealthCheck })

/** `GET /health` when every check passed. */
export const HealthReport = Schema.Struct({ status: Schema.Literal("ok"), checks }).annotations({
  identifier: "HealthReport"
})

/** `GET /health` when a check failed (503): the same fields as {@link HealthReport}. */
export class Unhealthy extends Schema.TaggedError<Unhealthy>()(
  "Unhealthy",
  { status: Schema.Literal("failed"), checks },
  HttpApiSchema.annotations({ status: 503 })
) {
  override get message() {
    const failed = Object.entries(this.checks).filter(([, c]) => c.status === "failed")
    return `Unhealthy: ${failed.map(([name]) => name).join(", ")}`
  }
}

// ---------------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------------

/** What a 404 did not find. */
export const Resource = Schema.Literal(
  "stream",
  "projection",
  "saga",
  "sagaInstance",
  "endpoint",
  "decider",
  "deadLetter",
  "keyStore"
)

/** 404: no such stream, runner, saga, instance, decider, dead letter or key store (or the admin endpoints are off). */
export class NotFound extends Schema.TaggedError<NotFound>()(
  "NotFound",
  { resource: Resource, id: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {
  /** A 404 with its message. */
  static of(resource: typeof Resource.Type, id: string): NotFound {
    return new NotFound({ resource, id, message: `No ${resource} ${JSON.stringify(id)}` })
  }
}

/**
 * 409: the stream is deleted (`hard`: for good), so the operation does not apply to it: truncating or
 * soft-deleting a stream deleted for good, undeleting one, truncating a soft-deleted one. Nothing changed.
 */
export class StreamConflict extends Schema.TaggedError<StreamConflict>()(
  "StreamConflict",
  { streamId: Schema.String, hard: Schema.Boolean, message: Schema.String },
  HttpApiSchema.annotations({ status: 409 })
) {}

/** 400: a request the store refused as bad input (what the request's Schemas did not catch). Nothing changed. */
export class BadRequest extends Schema.TaggedError<BadRequest>()(
  "BadRequest",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 400 })
) {}

/** 401: the admin bearer token is missing or wrong. */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 401 })
) {}

/** 500: a store or a rebuild failed; `message` says why. Usually retryable. */
export class ServiceError extends Schema.TaggedError<ServiceError>()(
  "ServiceError",
  { operation: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 500 })
) {
  /** Wraps any failure of `operation`. */
  static of(operation: string): (cause: unknown) => ServiceError {
    return (cause) => new ServiceError({ operation, message: describe(cause) })
  }
}

/** A short, single-line description of a failure. */
export const describe = (cause: unknown): string => {
  if (typeof cause === "object" && cause !== null) {
    const message = (cause as { readonly message?: unknown }).message
    const tag = (cause as { readonly _tag?: unknown })._tag
    if (typeof message === "string" && message.length > 0) return message
    if (typeof tag === "string") return tag
  }
  return String(cause)
}
