/**
 * The event model: stream ids, events to append, recorded events, metadata, checkpoints and expected
 * versions.
 *
 * Everything here is an Effect Schema, so the same definitions validate input, type the code and
 * serialize across HTTP and NATS (bigint positions travel as strings, timestamps as ISO strings).
 * Storage is encoded JSON: `data` is whatever the event's own Schema encoder produced. Turning a
 * recorded event into a typed domain event is the job of `Upcaster` one level up.
 *
 * A stream id is conventionally `"<category>-<id>"` (`Account-42`); the category is the part before the
 * first `-` (the whole id when there is none), the same rule as EventStoreDB's category projections.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Order from "effect/Order"
import * as Schema from "effect/Schema"
import * as Uuid from "./internal/uuid.js"

// ---------------------------------------------------------------------------------------------------
// identifiers
// ---------------------------------------------------------------------------------------------------

/** Longest accepted stream id, in UTF-16 code units. */
export const maxStreamIdLength = 255

/** Longest accepted event type name. */
export const maxEventTypeLength = 255

// C0 and C1 control characters, and lone surrogates (which no database stores faithfully)
const forbiddenCharacter =
  /[\u0000-\u001f\u007f-\u009f]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

const nameProblem = (what: string, maxLength: number) => (s: string) => {
  if (s.length === 0) return `${what} must not be empty`
  if (s.length > maxLength) return `${what} is ${s.length} characters long, the limit is ${maxLength}`
  if (forbiddenCharacter.test(s)) return `${what} contains a control character or a lone surrogate`
  if (s.trim() !== s) return `${what} must not start or end with whitespace`
  return undefined
}

const streamIdProblem = nameProblem("a stream id", maxStreamIdLength)
const eventTypeProblem = nameProblem("an event type", maxEventTypeLength)

/** A validated stream id: non-empty, at most {@link maxStreamIdLength} characters, printable, trimmed. */
export const StreamId = Schema.String.pipe(
  Schema.filter((s) => streamIdProblem(s) ?? true, { identifier: "StreamId" }),
  Schema.brand("StreamId")
)
export type StreamId = typeof StreamId.Type

/** A string that is not a valid {@link StreamId}. */
export class InvalidStreamId extends Schema.TaggedError<InvalidStreamId>()("InvalidStreamId", {
  streamId: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `Invalid stream id ${JSON.stringify(this.streamId.slice(0, 80))}: ${this.reason}`
  }
}

/** Validates a raw string as a {@link StreamId}. */
export const streamId = (raw: string): Effect.Effect<StreamId, InvalidStreamId> => {
  const reason = typeof raw === "string" ? streamIdProblem(raw) : "a stream id must be a string"
  return reason === undefined
    ? Effect.succeed(raw as StreamId)
    : Effect.fail(new InvalidStreamId({ streamId: String(raw), reason }))
}

/** Builds `"<category>-<id>"`; the category must not contain `-`, or the id would not round-trip. */
export const makeStreamId = (category: string, id: string): Effect.Effect<StreamId, InvalidStreamId> =>
  category.length === 0 || category.includes("-")
    ? Effect.fail(
        new InvalidStreamId({
          streamId: `${category}-${id}`,
          reason: "a category must be non-empty and contain no '-'"
        })
      )
    : streamId(`${category}-${id}`)

/** Separates a tenant from the stream id in a tenant-scoped stream id (`<tenant>~<streamId>`, see `Tenancy`). */
export const tenantSeparator = "~"

/** The tenant of a tenant-scoped stream id, or `undefined`. */
export const tenantOf = (streamId: string): string | undefined => {
  const at = streamId.indexOf(tenantSeparator)
  return at > 0 ? streamId.slice(0, at) : undefined
}

/** The category of a stream id: the part before the first `-`, or the whole id. */
export const categoryOf = (streamId: string): string => {
  const dash = streamId.indexOf("-")
  return dash <= 0 ? streamId : streamId.slice(0, dash)
}

/** An event type name, such as `"MoneyDeposited"`; the same rules as a stream id. */
export const EventType = Schema.String.pipe(
  Schema.filter((s) => eventTypeProblem(s) ?? true, { identifier: "EventType" })
)

/** An event id: a UUID in canonical lower-case form (v7 when generated here). */
export const EventId = Schema.String.pipe(Schema.pattern(Uuid.pattern, { identifier: "EventId" }))

// ---------------------------------------------------------------------------------------------------
// metadata
// ---------------------------------------------------------------------------------------------------

/**
 * Event metadata: the well-known keys below plus any user keys (JSON values). The command handler fills
 * correlation, causation and command ids; tracing fills `traceparent` (W3C trace context).
 */
export const Metadata = Schema.Struct(
  {
    /** Shared by every message of one business flow. */
    correlationId: Schema.optional(Schema.String),
    /** The id of the message (command or event) that caused this one. */
    causationId: Schema.optional(Schema.String),
    /** The id of the command whose handling produced this event. */
    commandId: Schema.optional(Schema.String),
    /** Who issued the command (user or service id). */
    principal: Schema.optional(Schema.String),
    /** Tenant owning the stream, when multi-tenancy is on. */
    tenantId: Schema.optional(Schema.String),
    /** W3C `traceparent` of the span that appended the event. */
    traceparent: Schema.optional(Schema.String)
  },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
).pipe(
  // a `__proto__` key (JSON.parse keeps it as a key) would become the decoded object's prototype, and its
  // keys would read as metadata that was never checked
  Schema.filter(
    (metadata) => {
      const proto = Object.getPrototypeOf(metadata)
      return proto === Object.prototype || proto === null || "metadata must not have a __proto__ key"
    },
    { identifier: "Metadata" }
  )
)
export type Metadata = typeof Metadata.Type

// ---------------------------------------------------------------------------------------------------
// events
// ---------------------------------------------------------------------------------------------------

/** Largest version number of any kind (a 32-bit signed integer, what SQL stores hold). */
export const maxVersion = 2 ** 31 - 1

/** Version of an event's payload schema; starts at 1 and is what upcasters step from. */
export const SchemaVersion = Schema.Int.pipe(Schema.between(1, maxVersion))

/**
 * An event to append. `data` and `metadata` must be plain JSON values (see the store's `InvalidAppend`):
 * they are stored exactly as given and read back so, key order included (every store; guarantee 11).
 */
export const EventData = Schema.Struct({
  eventId: EventId,
  type: EventType,
  schemaVersion: SchemaVersion,
  data: Schema.Unknown,
  metadata: Schema.optional(Metadata)
})
export type EventData = typeof EventData.Type

const metadataKeys = ["correlationId", "causationId", "commandId", "principal", "tenantId", "traceparent"] as const

// an application has a few event types, and every appended event is checked: remember the valid ones
const validTypes = new Set<string>()
const maxValidTypes = 10_000

const isPlainObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * Why `value` is not an {@link EventData}, or `undefined` if it is: the same rules as the Schema, checked
 * without its machinery because every appended event goes through it (the test suite checks that both
 * agree). `data` and `metadata` values (including a missing `data`) are checked as JSON by the store.
 */
export const eventDataProblem = (value: unknown): string | undefined => {
  if (!isPlainObject(value)) return "an event must be an object"
  if (typeof value.eventId !== "string" || !Uuid.pattern.test(value.eventId)) {
    return "eventId must be a UUID in canonical lower-case form"
  }
  if (typeof value.type !== "string") return "type must be a string"
  if (!validTypes.has(value.type)) {
    const typeProblem = eventTypeProblem(value.type)
    if (typeProblem !== undefined) return typeProblem
    if (validTypes.size < maxValidTypes) validTypes.add(value.type)
  }
  const version = value.schemaVersion
  if (typeof version !== "number" || !Number.isInteger(version) || version < 1 || version > maxVersion) {
    return `schemaVersion must be an integer from 1 to ${maxVersion}`
  }
  const metadata = value.metadata
  if (metadata === undefined) return undefined
  if (!isPlainObject(metadata)) return "metadata must be an object"
  if (Object.hasOwn(metadata, "__proto__")) return "metadata must not have a __proto__ key"
  for (const key of metadataKeys) {
    if (metadata[key] !== undefined && typeof metadata[key] !== "string") return `metadata.${key} must be a string`
  }
  return undefined
}

/** Builds an {@link EventData}, generating a UUIDv7 event id unless one is given. */
export const make = (fields: EventFields): Effect.Effect<EventData> =>
  // one step, not three: appends make many events
  fields.eventId === undefined
    ? Effect.clockWith((clock) => Effect.succeed(build(fields, Uuid.fromMillis(clock.unsafeCurrentTimeMillis()))))
    : Effect.succeed(build(fields, fields.eventId))

/**
 * Builds several {@link EventData} at once, in order, with one clock read for all the ids it generates
 * (UUIDv7s of the same millisecond; given `eventId`s are kept). The same events as {@link make} on each,
 * in one step: an append of many events is built without a step per event.
 */
export const makeAll = (fields: ReadonlyArray<EventFields>): Effect.Effect<ReadonlyArray<EventData>> =>
  Effect.clockWith((clock) => {
    const millis = clock.unsafeCurrentTimeMillis()
    return Effect.succeed(fields.map((f) => build(f, f.eventId ?? Uuid.fromMillis(millis))))
  })

/** What {@link make} and {@link makeAll} take. */
export interface EventFields {
  readonly type: string
  readonly data: unknown
  readonly schemaVersion?: number
  readonly metadata?: Metadata
  readonly eventId?: string
}

const build = (fields: EventFields, eventId: string): EventData => ({
  eventId,
  type: fields.type,
  schemaVersion: fields.schemaVersion ?? 1,
  data: fields.data,
  metadata: fields.metadata ?? {}
})

/**
 * A position in the global log that a reader can resume after. Readers order events by
 * (`transaction`, `position`) and a checkpoint is that whole pair: comparing positions alone would skip
 * events on stores where position order is not commit order (PostgreSQL, see `SqlEventStore`).
 * `transaction` is the store's commit-order key: a transaction id on PostgreSQL, the append's own
 * sequence number where appends are serialized (memory, SQLite).
 */
export const Checkpoint = Schema.Struct({ transaction: Schema.BigInt, position: Schema.BigInt })
export type Checkpoint = typeof Checkpoint.Type

/** The checkpoint before the first event. */
export const start: Checkpoint = { transaction: 0n, position: 0n }

/**
 * A partition of the global log: the events of the streams whose {@link partitionOf} is `index` out of
 * `count`. Every event of one stream is in the same partition, so per-stream order holds within it.
 */
export interface Partition {
  readonly count: number
  readonly index: number
}

/**
 * The stream's hash that partitions are cut from: FNV-1a (32-bit) of the stream id's UTF-16 code units,
 * then MurmurHash3's `fmix32` finalizer, so that every bit depends on every character (stream ids often
 * differ only in their last ones). Unsigned; stable across processes and releases. SQL stores keep it in
 * a column so partition filters run in the database.
 */
export const streamHash = (streamId: string): number => {
  let hash = 0x811c9dc5
  for (let i = 0; i < streamId.length; i++) {
    hash ^= streamId.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  hash ^= hash >>> 16
  hash = Math.imul(hash, 0x85ebca6b)
  hash ^= hash >>> 13
  hash = Math.imul(hash, 0xc2b2ae35)
  hash ^= hash >>> 16
  return hash >>> 0
}

/** Most partitions a log may be cut into. */
export const maxPartitions = 1024

/**
 * The partition of a stream among `count`: the slice of the 32-bit hash range its {@link streamHash}
 * falls in. Ranges (rather than a modulo) let SQL stores filter partitions with a range condition on the
 * stored hash, which their planners estimate well.
 */
export const partitionOf = (streamId: string, count: number): number =>
  Math.floor((streamHash(streamId) * count) / hashRange)

/** The hashes of a partition: `from` (inclusive) to `to` (exclusive); see {@link partitionOf}. */
export const partitionRange = (partition: Partition): { readonly from: number; readonly to: number } => ({
  from: firstHashOf(partition.index, partition.count),
  to: firstHashOf(partition.index + 1, partition.count)
})

const hashRange = 2 ** 32

/** The least hash `h` with `floor(h * count / 2^32) >= index`, computed exactly. */
const firstHashOf = (index: number, count: number): number =>
  Number((BigInt(index) * BigInt(hashRange) + BigInt(count) - 1n) / BigInt(count))

/** Global order: by transaction, then position. */
export const checkpointOrder: Order.Order<Checkpoint> = Order.combine(
  Order.mapInput(Order.bigint, (c: Checkpoint) => c.transaction),
  Order.mapInput(Order.bigint, (c: Checkpoint) => c.position)
)

/** The checkpoint of a recorded event: resuming after it yields the events that follow it. */
export const checkpointOf = (event: RecordedEvent): Checkpoint => ({
  transaction: event.transaction,
  position: event.position
})

/** A stored event, as every read returns it. */
export const RecordedEvent = Schema.Struct({
  eventId: Schema.String,
  type: Schema.String,
  schemaVersion: Schema.Int,
  data: Schema.Unknown,
  metadata: Metadata,
  streamId: StreamId,
  category: Schema.String,
  /** 1, 2, 3... within the stream, without gaps. */
  version: Schema.Int,
  /** Global, unique, 64-bit; increasing in append order but, on PostgreSQL, not in commit order. */
  position: Schema.BigInt,
  /** The commit-order key, see {@link Checkpoint}. */
  transaction: Schema.BigInt,
  recordedAt: Schema.DateTimeUtc
})
export type RecordedEvent = typeof RecordedEvent.Type

// ---------------------------------------------------------------------------------------------------
// expected version
// ---------------------------------------------------------------------------------------------------

/**
 * The optimistic concurrency condition of an append. Versions count events: a stream holding three
 * events is at version 3, and a stream that does not exist is at version 0.
 */
export const ExpectedVersion = Schema.Union(
  Schema.TaggedStruct("Any", {}),
  Schema.TaggedStruct("NoStream", {}),
  Schema.TaggedStruct("StreamExists", {}),
  Schema.TaggedStruct("Exact", { version: Schema.Int.pipe(Schema.between(0, maxVersion)) })
)
export type ExpectedVersion = typeof ExpectedVersion.Type

/** Append whatever the stream's state. */
export const Any: ExpectedVersion = { _tag: "Any" }
/** Append only if the stream has no events. */
export const NoStream: ExpectedVersion = { _tag: "NoStream" }
/** Append only if the stream has at least one event. */
export const StreamExists: ExpectedVersion = { _tag: "StreamExists" }
/** Append only if the stream is exactly at `version` (0 = no stream). */
export const Exact = (version: number): ExpectedVersion => ({ _tag: "Exact", version })

/** Why `value` is not an {@link ExpectedVersion}, or `undefined` if it is. */
export const expectedVersionProblem = (value: unknown): string | undefined => {
  if (!isPlainObject(value)) return "an expected version must be an object"
  switch (value._tag) {
    case "Any":
    case "NoStream":
    case "StreamExists":
      return undefined
    case "Exact": {
      const v = value.version
      return typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= maxVersion
        ? undefined
        : `an exact expected version must be an integer from 0 to ${maxVersion}`
    }
    default:
      return "an expected version is Any, NoStream, StreamExists or Exact"
  }
}

/** Whether a stream currently at `actual` satisfies `expected`. */
export const satisfies = (expected: ExpectedVersion, actual: number): boolean => {
  switch (expected._tag) {
    case "Any":
      return true
    case "NoStream":
      return actual === 0
    case "StreamExists":
      return actual > 0
    case "Exact":
      return actual === expected.version
  }
}

// ---------------------------------------------------------------------------------------------------
// context
// ---------------------------------------------------------------------------------------------------

/**
 * The context of the command being handled: its metadata (command id, correlation id, principal, tenant...)
 * goes into every event it produces (see `Aggregate.handler`, `CommandBus`).
 */
export class CommandContext extends Context.Reference<CommandContext>()("effect-eventsourcing/CommandContext", {
  defaultValue: (): Metadata => ({})
}) {}

/** Runs `effect` with `metadata` (command id, correlation id, principal...) as its command context. */
export const withCommandContext =
  (metadata: Metadata) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.provideService(effect, CommandContext, metadata)

/** The tenant of the current operation, if any (see `Tenancy`, which sets and checks it). */
export class CurrentTenant extends Context.Reference<CurrentTenant>()("effect-eventsourcing/CurrentTenant", {
  defaultValue: (): Option.Option<string> => Option.none()
}) {}
