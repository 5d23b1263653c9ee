/**
 * Typed events from stored ones: an event codec built from Effect Schemas, with upcasters for schema
 * evolution. The codec encodes a domain event into what the store keeps and decodes a recorded event
 * back, upcast from whatever version was stored to the current one; the upcasters are checked when the
 * codec is made, and upcast results are never written back. Personal fields (`Personal.field`) are
 * sealed after encoding and opened before upcasting. How a codec is declared, the upcasters and the
 * decoding policies: {@link codec}.
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import * as Stream from "effect/Stream"
import type * as Event from "./Event.js"
import * as EventStore from "./EventStore.js"
import type * as KeyStore from "./KeyStore.js"
import * as Metrics from "./Metrics.js"
import * as Personal from "./Personal.js"
import * as Fields from "./upcaster/fields.js"

// ---------------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------------

/** A stored event that could not be turned into a domain event; `reason` says at which step. */
export class EventDecodeError extends Schema.TaggedError<EventDecodeError>()("EventDecodeError", {
  streamId: Schema.String,
  version: Schema.Int,
  type: Schema.String,
  schemaVersion: Schema.Int,
  reason: Schema.Literal("UnknownType", "UnknownVersion", "UpcasterFailed", "InvalidData"),
  cause: Schema.Defect
}) {
  override get message() {
    const cause = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `Cannot decode ${this.type} v${this.schemaVersion} at ${this.streamId}@${this.version} (${this.reason}): ${cause}`
  }
}

/** A domain event that its own Schema refuses to encode. */
export class EventEncodeError extends Schema.TaggedError<EventEncodeError>()("EventEncodeError", {
  type: Schema.String,
  cause: Schema.Defect
}) {
  override get message() {
    return `Cannot encode ${this.type}: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/** The codec's declaration is inconsistent (found when it is made, not when an old event shows up). */
export class UpcasterConfigError extends Schema.TaggedError<UpcasterConfigError>()("UpcasterConfigError", {
  problems: Schema.Array(Schema.String)
}) {
  override get message() {
    return `Invalid event codec: ${this.problems.join("; ")}`
  }
}

// ---------------------------------------------------------------------------------------------------
// upcasters
// ---------------------------------------------------------------------------------------------------

/** An event type at a schema version. */
export interface TypeVersion {
  readonly type: string
  readonly version: number
}

/** One encoded event an upcaster produces. */
export interface Upcasted {
  readonly type: string
  readonly version: number
  readonly data: unknown
}

/**
 * Turns encoded data of (`from.type`, `from.version`) into encoded events of the declared `to` pairs.
 * `upcast` is pure; it may throw (or return a `ParseError`-failing result via the Schema form) on data it
 * cannot handle, which becomes an {@link EventDecodeError}.
 */
export interface Upcaster {
  readonly from: TypeVersion
  readonly to: ReadonlyArray<TypeVersion>
  readonly upcast: (data: unknown) => ReadonlyArray<Upcasted>
  /** The Schema of the data it reads, when declared ({@link schema} does): the schema lock records it. */
  readonly fromSchema?: Schema.Schema<any, any> | undefined
}

/** The general form: any number of output events (a split), of any declared types. */
export const make = (upcaster: Upcaster): Upcaster => upcaster

/** The same type, one version up: `upcast` maps the old data to the new data. */
export const step = (options: {
  readonly type: string
  readonly from: number
  readonly upcast: (data: any) => unknown
}): Upcaster => ({
  from: { type: options.type, version: options.from },
  to: [{ type: options.type, version: options.from + 1 }],
  upcast: (data) => [{ type: options.type, version: options.from + 1, data: options.upcast(data) }]
})

/**
 * The Schema form of {@link step}: the old data is decoded with `from`, transformed, and encoded with
 * `to` (both schemas describe the fields, without `_tag`).
 */
export const schema = <OldA, OldI, NewA, NewI>(options: {
  readonly type: string
  readonly fromVersion: number
  readonly from: Schema.Schema<OldA, OldI>
  readonly to: Schema.Schema<NewA, NewI>
  readonly transform: (old: OldA) => NewA
}): Upcaster => {
  const decode = Schema.decodeUnknownSync(options.from)
  const encode = Schema.encodeSync(options.to)
  const upcaster = step({
    type: options.type,
    from: options.fromVersion,
    upcast: (data) => encode(options.transform(decode(data)))
  })
  return { ...upcaster, fromSchema: options.from }
}

/** A type renamed: data unchanged, new name, at `toVersion` (default: the same version). */
export const rename = (options: {
  readonly from: string
  readonly to: string
  readonly version: number
  readonly toVersion?: number
}): Upcaster => {
  const target = { type: options.to, version: options.toVersion ?? options.version }
  return {
    from: { type: options.from, version: options.version },
    to: [target],
    upcast: (data) => [{ ...target, data }]
  }
}

/** An obsolete event: read as nothing. */
export const drop = (options: TypeVersion): Upcaster => ({ from: options, to: [], upcast: () => [] })

// ---------------------------------------------------------------------------------------------------
// codec
// ---------------------------------------------------------------------------------------------------

/** What the store keeps of a domain event. */
export interface Encoded {
  readonly type: string
  readonly schemaVersion: number
  readonly data: unknown
}

/** What to do with a stored event that cannot be decoded: fail the read (default) or skip the event. */
export type Policy = "fail" | "skip"

/** A domain event with the recorded envelope it came from. */
export interface Decoded<A> {
  readonly event: A
  readonly envelope: Event.RecordedEvent
}

/** Encodes domain events for the store and decodes (upcasting first) recorded events. */
export interface EventCodec<A> {
  /** The current event types (the schema's tags). */
  readonly types: ReadonlySet<string>
  /** Every stored type it reads: the current ones and those its upcasters step from (renamed types). */
  readonly storedTypes: ReadonlySet<string>
  /** The current schema version of each type. */
  readonly currentVersion: (type: string) => number
  /** The Schema of each current type (the member of the events' union with that `_tag`), by type. */
  readonly schemas: ReadonlyMap<string, Schema.Schema<A, any>>
  /** The upcasters it was declared with: which stored (type, version) pairs it reads through them. */
  readonly upcasters: ReadonlyArray<Upcaster>
  /**
   * The stored form of a domain event. JSON has no `undefined`: object properties holding `undefined`
   * (optional fields) are left out, and read back as absent.
   */
  readonly encode: (event: A) => Effect.Effect<Encoded, EventEncodeError | EventStore.EventStoreError>
  /**
   * The domain events a recorded event stands for: usually one, none if an upcaster dropped it (or it
   * was skipped under the `skip` policy), several if one split it. Opens its personal fields first.
   */
  readonly decode: (
    recorded: Event.RecordedEvent,
    policy?: Policy
  ) => Effect.Effect<ReadonlyArray<A>, EventDecodeError | EventStore.EventStoreError>
  /**
   * {@link decode} without a policy, as a plain value: for hot loops over many events. It does not open
   * personal fields (they decode as erased): pass the events through {@link open} first.
   */
  readonly decodeEither: (recorded: Event.RecordedEvent) => Either.Either<ReadonlyArray<A>, EventDecodeError>
  /**
   * {@link encode} leaving personal fields in clear: to compare events (the test kits do), never to store.
   * Needs no `KeyStore`.
   */
  readonly encodeUnsealed: (event: A) => Effect.Effect<Encoded, EventEncodeError>
  /** Whether the events declare personal fields (`Personal.field`): then reads go through {@link open}. */
  readonly personal: boolean
  /**
   * The recorded events with their personal fields opened (see `Personal.open`), for {@link decodeEither}:
   * one key lookup for the batch; the same array when the codec has no personal fields or nothing is sealed.
   * A key store failure is an `EventStoreError` (operation `"open"`, transient as the key store said).
   */
  readonly open: (
    events: ReadonlyArray<Event.RecordedEvent>
  ) => Effect.Effect<ReadonlyArray<Event.RecordedEvent>, EventStore.EventStoreError>
}

/** Whether `value` is an {@link EventCodec} (rather than the Schema of its events). */
export const isCodec = <A>(value: Schema.Schema<A, any> | EventCodec<A>): value is EventCodec<A> =>
  !Schema.isSchema(value) && typeof (value as EventCodec<A>).decodeEither === "function"

/** Options of {@link codec}. */
export interface CodecOptions<A, I> {
  /** The domain events: a tagged struct or class, or a union of them. */
  readonly events: Schema.Schema<A, I>
  /** Current schema version per type; types not listed are at version 1. */
  readonly versions?: { readonly [type: string]: number }
  readonly upcasters?: ReadonlyArray<Upcaster>
}

/** Stored events skipped under the `skip` policy. */
export const skippedEvents = Metrics.eventsSkippedTotal

/**
 * Makes a codec, checking the declaration: every type known, every older version upcastable to the
 * current one, no duplicates, no cycles, no target leading nowhere.
 *
 * The user declares the domain events as a Schema (a tagged struct or class, or a union of them; the
 * `_tag` is the stored event type) and the current `schemaVersion` of each type (default 1). The codec
 * encodes a domain event into what the store keeps (`type`, `schemaVersion`, JSON `data` without the
 * `_tag`) and decodes a recorded event back, first running it through the upcasters from whatever
 * version was stored up to the current one.
 *
 * An upcaster is a pure value keyed by (type, version) that turns encoded data of that version into zero
 * or more events of other (type, version) pairs: the next version of the same type (`step`, or `schema`
 * from an old Schema to a new one), another name (`rename`), several events (`make`) or none (`drop`).
 * The set is checked when the codec is made (at Layer build): duplicate registrations, versions without
 * a path to the current one, cycles and targets that lead nowhere are configuration errors.
 *
 * Decoding failures (undecodable data, a failing upcaster, an unknown type or version) follow the
 * consumer's tolerant-reader policy: `fail` (default) with {@link EventDecodeError}, or `skip` (logged
 * and counted in `eventsourcing_events_skipped_total`). Upcast results are never written back.
 */
export const codec = <A extends { readonly _tag: string }, I>(
  options: CodecOptions<A, I>
): Effect.Effect<EventCodec<A>, UpcasterConfigError> =>
  Effect.suspend(() => {
    const tags = tagsOf(options.events.ast)
    const personal = Personal.fieldsOf(options.events)
    const types = new Set(tags.filter((t) => t !== undefined))
    const versions = new Map<string, number>([...types].map((t) => [t, options.versions?.[t] ?? 1]))
    const upcasters = new Map<string, Upcaster>()
    const problems = [
      ...(tags.includes(undefined)
        ? ["every event schema must be a tagged struct or class (with a literal _tag)"]
        : []),
      ...(new Set(tags).size < tags.length ? ["two event schemas share a _tag"] : []),
      ...checkDeclaration(types, options.versions ?? {}, options.upcasters ?? [], upcasters),
      ...personal.problems
    ]
    if (problems.length > 0) return Effect.fail(new UpcasterConfigError({ problems }))

    const decodeEvent = Schema.decodeUnknownEither(options.events)
    const encodeEvent = Schema.encodeEither(options.events)

    const encodeUnsealed = (event: A): Effect.Effect<Encoded, EventEncodeError> =>
      Either.match(encodeEvent(event), {
        onLeft: (error) => Effect.fail(new EventEncodeError({ type: event._tag, cause: error })),
        onRight: (encoded) => {
          const { _tag, ...data } = encoded as unknown as { readonly _tag: string }
          return Effect.succeed({ type: _tag, schemaVersion: versions.get(_tag)!, data: withoutUndefined(data) })
        }
      })
    // a codec without personal fields encodes as it always did: no key store, no extra step
    const encode: EventCodec<A>["encode"] =
      personal.byTag.size === 0
        ? encodeUnsealed
        : (event) =>
            Effect.flatMap(encodeUnsealed(event), (encoded) => {
              const fields = personal.byTag.get(encoded.type)
              return fields === undefined
                ? Effect.succeed(encoded)
                : Personal.seal(encoded.data as Readonly<Record<string, unknown>>, fields).pipe(
                    Effect.mapError((error) =>
                      error.reason === "SubjectErased" || error.reason === "InvalidSubject"
                        ? new EventEncodeError({ type: encoded.type, cause: error })
                        : keyStoreFailure("seal", error)
                    ),
                    Effect.map((data) => ({ ...encoded, data }))
                  )
            })
    const open: EventCodec<A>["open"] =
      personal.byTag.size === 0
        ? Effect.succeed
        : (events) => Effect.mapError(Personal.openEvents(events), (error) => keyStoreFailure("open", error))

    const failure = (recorded: Event.RecordedEvent, reason: EventDecodeError["reason"], cause: unknown) =>
      Either.left(
        new EventDecodeError({
          streamId: recorded.streamId,
          version: recorded.version,
          type: recorded.type,
          schemaVersion: recorded.schemaVersion,
          reason,
          cause
        })
      )
    const decodeFields = Fields.decoders(membersOf(options.events.ast))
    /**
     * The domain event of current-version data, or why not (the cause). A tagged struct's data is decoded
     * by its fields (see `upcaster/fields`). Anything else (a class, a refined struct, data holding a
     * `_tag`), and any failure, goes through the whole schema, so results and errors are the schema's own.
     */
    const decodeData = (type: string, data: unknown): Either.Either<A, unknown> => {
      if (typeof data !== "object" || data === null || Array.isArray(data)) {
        return Either.left(new Error(`${type} data is not an object`))
      }
      const fields = decodeFields.get(type)
      if (fields !== undefined && !Object.hasOwn(data, "_tag")) {
        const decoded = fields(data)
        if (decoded !== undefined) return Either.right(decoded as A)
      }
      return decodeEvent({ ...data, _tag: type })
    }

    const decodeOne = (recorded: Event.RecordedEvent): Either.Either<ReadonlyArray<A>, EventDecodeError> => {
      // the common case, an event stored at its current version, skips the upcasting machinery
      if (versions.get(recorded.type) === recorded.schemaVersion) {
        const decoded = decodeData(recorded.type, recorded.data)
        return Either.isLeft(decoded) ? failure(recorded, "InvalidData", decoded.left) : Either.right([decoded.right])
      }
      const current = upcastToCurrent(versions, upcasters, {
        type: recorded.type,
        version: recorded.schemaVersion,
        data: recorded.data
      })
      if (Either.isLeft(current)) return failure(recorded, current.left.reason, current.left.cause)
      const events: Array<A> = []
      for (const { data, type } of current.right) {
        const decoded = decodeData(type, data)
        if (Either.isLeft(decoded)) return failure(recorded, "InvalidData", decoded.left)
        events.push(decoded.right)
      }
      return Either.right(events)
    }

    const decode: EventCodec<A>["decode"] = (recorded, policy = "fail") =>
      Effect.flatMap(open([recorded]), ([opened]) =>
        Either.match(decodeOne(opened!), {
          onRight: Effect.succeed,
          onLeft: (error) => (policy === "fail" ? Effect.fail(error) : Effect.as(skip(error), []))
        })
      )

    return Effect.succeed({
      types,
      storedTypes: new Set([...types, ...(options.upcasters ?? []).map((u) => u.from.type)]),
      currentVersion: (type: string) => versions.get(type) ?? 0,
      schemas: new Map(
        membersOf(options.events.ast).map(([tag, ast]) => [tag!, Schema.make<A, any, never>(ast)] as const)
      ),
      upcasters: options.upcasters ?? [],
      encode,
      decode,
      decodeEither: decodeOne,
      encodeUnsealed,
      personal: personal.byTag.size > 0,
      open
    })
  })

// ---------------------------------------------------------------------------------------------------
// typed reads
// ---------------------------------------------------------------------------------------------------

/** Options of the typed reads: the store's options plus the tolerant-reader policy. */
export interface ReadOptions {
  readonly policy?: Policy
}

/** A stream's domain events, with their envelopes, through the codec. */
export const readStream = <A>(
  eventCodec: EventCodec<A>,
  streamId: string,
  options?: EventStore.ReadStreamOptions & ReadOptions
): Stream.Stream<
  Decoded<A>,
  | EventDecodeError
  | EventStore.StreamNotFound
  | EventStore.StreamDeleted
  | Event.InvalidStreamId
  | EventStore.EventStoreError,
  EventStore.EventStore
> =>
  Stream.unwrap(
    Effect.map(EventStore.EventStore, (store) =>
      decodeAll(eventCodec, store.readStream(streamId, options), options?.policy)
    )
  )

/** All domain events in global order after a checkpoint, with their envelopes, through the codec. */
export const readAll = <A>(
  eventCodec: EventCodec<A>,
  options?: EventStore.ReadAllOptions & ReadOptions
): Stream.Stream<Decoded<A>, EventDecodeError | EventStore.EventStoreError, EventStore.EventStore> =>
  Stream.unwrap(
    Effect.map(EventStore.EventStore, (store) => decodeAll(eventCodec, store.readAll(options), options?.policy))
  )

/** The `skip` policy: log and count. */
const skip = (error: EventDecodeError) =>
  Effect.logWarning(`skipping an undecodable event: ${error.message}`).pipe(
    Effect.zipRight(Metric.increment(skippedEvents))
  )

/**
 * Decodes chunk by chunk (one step per page, not per event). Under `fail`, the events before the
 * undecodable one are still emitted, then the stream fails.
 */
const decodeAll = <A, E, R>(
  eventCodec: EventCodec<A>,
  recorded: Stream.Stream<Event.RecordedEvent, E, R>,
  policy: Policy | undefined
): Stream.Stream<Decoded<A>, E | EventDecodeError | EventStore.EventStoreError, R> =>
  eventCodec.personal
    ? Stream.flatten(
        Stream.mapEffect(Stream.chunks(recorded), (chunk) => {
          const envelopes = Chunk.toReadonlyArray(chunk)
          return Effect.map(eventCodec.open(envelopes), (opened) => decodeChunk(eventCodec, envelopes, opened, policy))
        })
      )
    : Stream.flatMap(Stream.chunks(recorded), (chunk) => {
        const envelopes = Chunk.toReadonlyArray(chunk)
        return decodeChunk(eventCodec, envelopes, envelopes, policy)
      })

/**
 * Decodes a page of a stream's events (see `EventStore` `readStreamPage`), opening personal fields first,
 * under the policy: `skip` logs and counts the undecodable ones, `fail` (default) fails with the first. For
 * loads that fold what they read: one step for the page, no `Stream`.
 */
export const decodePage = <A>(
  eventCodec: EventCodec<A>,
  events: ReadonlyArray<Event.RecordedEvent>,
  policy?: Policy
): Effect.Effect<ReadonlyArray<Decoded<A>>, EventDecodeError | EventStore.EventStoreError> =>
  Effect.flatMap(eventCodec.personal ? eventCodec.open(events) : Effect.succeed(events), (opened) => {
    const { decoded, failure, skipped } = decodeEach(eventCodec, events, opened, policy)
    const done = failure === undefined ? Effect.succeed(decoded) : Effect.fail(failure)
    return skipped.length === 0 ? done : Effect.zipRight(Effect.forEach(skipped, skip, { discard: true }), done)
  })

/** {@link decodeEach} as a stream: the events before a failure are emitted, then the stream fails. */
const decodeChunk = <A>(
  eventCodec: EventCodec<A>,
  envelopes: ReadonlyArray<Event.RecordedEvent>,
  opened: ReadonlyArray<Event.RecordedEvent>,
  policy: Policy | undefined
): Stream.Stream<Decoded<A>, EventDecodeError> => {
  const { decoded, failure, skipped } = decodeEach(eventCodec, envelopes, opened, policy)
  const events = Stream.fromChunk(Chunk.unsafeFromArray(decoded))
  const ended = failure === undefined ? events : Stream.concat(events, Stream.fail(failure))
  return skipped.length === 0 ? ended : Stream.concat(Stream.execute(Effect.forEach(skipped, skip)), ended)
}

/**
 * Decodes the `opened` form of each envelope (see {@link EventCodec.open}), keeping the envelope as recorded,
 * up to the first undecodable one under `fail` (its error is the `failure`); under `skip` the undecodable
 * ones are left out, their errors `skipped`.
 */
const decodeEach = <A>(
  eventCodec: EventCodec<A>,
  envelopes: ReadonlyArray<Event.RecordedEvent>,
  opened: ReadonlyArray<Event.RecordedEvent>,
  policy: Policy | undefined
) => {
  const decoded: Array<Decoded<A>> = []
  const skipped: Array<EventDecodeError> = []
  for (let i = 0; i < envelopes.length; i++) {
    const envelope = envelopes[i]!
    const result = eventCodec.decodeEither(opened[i]!)
    if (Either.isRight(result)) {
      for (const event of result.right) decoded.push({ event, envelope })
    } else if (policy === "skip") {
      skipped.push(result.left)
    } else {
      return { decoded, skipped, failure: result.left }
    }
  }
  return { decoded, skipped, failure: undefined }
}

/** A key store failure met while sealing or opening personal fields, as the store error readers handle. */
const keyStoreFailure = (operation: string, error: KeyStore.KeyStoreError) =>
  new EventStore.EventStoreError({ operation, cause: error, transient: error.transient })

// ---------------------------------------------------------------------------------------------------
// internals
// ---------------------------------------------------------------------------------------------------

/** Drops object properties whose value is `undefined`, at any depth (plain objects and arrays only). */
const withoutUndefined = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(withoutUndefined)
  if (typeof value !== "object" || value === null || Object.getPrototypeOf(value) !== Object.prototype) return value
  const result: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) if (v !== undefined) result[k] = withoutUndefined(v)
  return result
}

const key = (type: string, version: number) => `${type}\u0000${version}`

const describe = (tv: TypeVersion) => `${tv.type} v${tv.version}`

/** The `_tag` literals of a tagged struct/class or a union of them; `undefined` marks a member without one. */
const tagsOf = (ast: SchemaAST.AST): ReadonlyArray<string | undefined> => membersOf(ast).map(([tag]) => tag)

/** The members of a tagged struct/class or a union of them, with their `_tag` literal (`undefined`: none). */
const membersOf = (ast: SchemaAST.AST): ReadonlyArray<readonly [string | undefined, SchemaAST.AST]> => {
  if (SchemaAST.isUnion(ast)) return ast.types.flatMap(membersOf)
  const tag = SchemaAST.getPropertySignatures(SchemaAST.encodedAST(ast)).find((p) => p.name === "_tag")
  return [
    [
      tag !== undefined && SchemaAST.isLiteral(tag.type) && typeof tag.type.literal === "string"
        ? tag.type.literal
        : undefined,
      ast
    ]
  ]
}

/** Validates the declaration; fills `registry` with the upcasters by source. Returns the problems found. */
const checkDeclaration = (
  types: ReadonlySet<string>,
  versions: { readonly [type: string]: number },
  upcasters: ReadonlyArray<Upcaster>,
  registry: Map<string, Upcaster>
): ReadonlyArray<string> => {
  const problems: Array<string> = []
  const current = (type: string) => (types.has(type) ? (versions[type] ?? 1) : undefined)
  for (const [type, version] of Object.entries(versions)) {
    if (!types.has(type)) problems.push(`a version is declared for ${type}, which is not an event type of the schema`)
    if (!Number.isInteger(version) || version < 1) problems.push(`the version of ${type} must be an integer >= 1`)
  }
  for (const upcaster of upcasters) {
    const source = key(upcaster.from.type, upcaster.from.version)
    if (registry.has(source)) problems.push(`two upcasters from ${describe(upcaster.from)}`)
    registry.set(source, upcaster)
    const now = current(upcaster.from.type)
    if (now !== undefined && upcaster.from.version >= now) {
      problems.push(`an upcaster from ${describe(upcaster.from)}, which is not older than the current v${now}`)
    }
  }
  for (const upcaster of upcasters) {
    for (const target of upcaster.to) {
      const now = current(target.type)
      const continues = registry.has(key(target.type, target.version))
      if (now === undefined && !continues) {
        problems.push(`the upcaster from ${describe(upcaster.from)} targets ${target.type}, an unknown event type`)
      } else if (now !== undefined && target.version !== now && !continues) {
        problems.push(
          `the upcaster from ${describe(upcaster.from)} targets ${describe(target)}, which has no path to v${now}`
        )
      }
    }
  }
  for (const type of types) {
    for (let version = 1; version < current(type)!; version++) {
      if (!registry.has(key(type, version)))
        problems.push(`no upcaster from ${type} v${version} (current is v${current(type)})`)
    }
  }
  const cycle = findCycle(registry)
  if (cycle !== undefined) problems.push(`upcasters form a cycle: ${cycle.join(" -> ")}`)
  return problems
}

const findCycle = (registry: ReadonlyMap<string, Upcaster>): ReadonlyArray<string> | undefined => {
  const state = new Map<string, "visiting" | "done">()
  const visit = (node: string, path: Array<string>): ReadonlyArray<string> | undefined => {
    if (state.get(node) === "done") return undefined
    if (state.get(node) === "visiting") return [...path, node].map((k) => k.replace("\u0000", " v"))
    const upcaster = registry.get(node)
    if (upcaster === undefined) return undefined
    state.set(node, "visiting")
    for (const target of upcaster.to) {
      const found = visit(key(target.type, target.version), [...path, node])
      if (found !== undefined) return found
    }
    state.set(node, "done")
    return undefined
  }
  for (const node of registry.keys()) {
    const found = visit(node, [])
    if (found !== undefined) return found
  }
  return undefined
}

interface UpcastFailure {
  readonly reason: "UnknownType" | "UnknownVersion" | "UpcasterFailed"
  readonly cause: unknown
}

/** Runs the upcasters until every event is at its type's current version. */
const upcastToCurrent = (
  versions: ReadonlyMap<string, number>,
  registry: ReadonlyMap<string, Upcaster>,
  start: Upcasted
): Either.Either<ReadonlyArray<Upcasted>, UpcastFailure> => {
  const done: Array<Upcasted> = []
  const pending: Array<Upcasted> = [start]
  while (pending.length > 0) {
    const next = pending.shift()!
    if (versions.get(next.type) === next.version) {
      done.push(next)
      continue
    }
    const upcaster = registry.get(key(next.type, next.version))
    if (upcaster === undefined) {
      const known = versions.has(next.type)
      return Either.left({
        reason: known ? "UnknownVersion" : "UnknownType",
        cause: new Error(
          known
            ? `no upcaster from ${describe(next)} to the current v${versions.get(next.type)}`
            : `${next.type} is not an event type of this codec`
        )
      })
    }
    const outputs = Either.try(() => upcaster.upcast(next.data))
    if (Either.isLeft(outputs)) return Either.left({ reason: "UpcasterFailed", cause: outputs.left })
    for (const output of outputs.right) {
      if (!upcaster.to.some((t) => t.type === output.type && t.version === output.version)) {
        return Either.left({
          reason: "UpcasterFailed",
          cause: new Error(
            `the upcaster from ${describe(next)} produced ${describe(output)}, which it does not declare`
          )
        })
      }
      pending.push(output)
    }
  }
  return Either.right(done)
}
