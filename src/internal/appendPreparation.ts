/**
 * Append preparation shared by the stores: validating an append against the contract and the limits
 * before any I/O (so that bad input is refused identically everywhere), and telling a retried append
 * from an id conflict. For implementers of `EventStore`, not for users.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Event from "../Event.js"
import {
  type AppendOptions,
  ConcurrencyConflict,
  EventStoreError,
  InvalidAppend,
  type InvalidAppendReason,
  type Limits,
  type ReadAllOptions,
  type UniqueValue
} from "../EventStore.js"
import * as Json from "./json.js"

/** An event that passed validation, with its JSON already serialized for storage. */
export interface PreparedEvent {
  readonly eventId: string
  readonly type: string
  readonly schemaVersion: number
  readonly data: unknown
  readonly metadata: Event.Metadata
  readonly dataJson: string
  readonly metadataJson: string
}

/** A validated append: what every implementation stores. */
export interface PreparedAppend {
  readonly streamId: Event.StreamId
  readonly category: string
  /** {@link Event.streamHash} of the stream id, stored for partition filters. */
  readonly streamHash: number
  readonly expectedVersion: Event.ExpectedVersion
  readonly events: ReadonlyArray<PreparedEvent>
  readonly claims: ReadonlyArray<UniqueValue>
  readonly releases: ReadonlyArray<UniqueValue>
  readonly commandId: string | undefined
}

/**
 * Validates an append against the contract and the limits, before any I/O. For implementers of the
 * contract: every store calls this so that bad input is refused identically everywhere.
 */
export const prepareAppend = (
  streamId: string,
  events: ReadonlyArray<Event.EventData>,
  options: AppendOptions | undefined,
  limits: Limits
): Effect.Effect<PreparedAppend, InvalidAppend | Event.InvalidStreamId> =>
  Effect.flatMap(Event.streamId(streamId), (id) => {
    // a getter or a proxy among the events or options may throw while they are read: bad input too, named
    // by the JSON being read when it threw (one guard per append: one per value doubled a small event's cost)
    const reading: Reading = { field: undefined, index: 0 }
    return Either.flatMap(
      Either.try({
        try: () => prepareValid(id, events, options, limits, reading),
        catch: (cause) =>
          reading.field === undefined
            ? unreadableAppend(id, cause)
            : new InvalidAppend({
                streamId: id,
                reason: "InvalidJson",
                index: reading.index,
                detail: jsonDetail(reading.field, Json.unreadable(cause))
              })
      }),
      (prepared) => prepared
    )
  })

/** Which event's data or metadata is being serialized, if any: names a throw while it is read. */
interface Reading {
  field: "data" | "metadata" | undefined
  index: number
}

/**
 * The refusal of an append whose events or options threw while they were read (a getter, a proxy). For
 * wrappers of the contract that read them before the store does.
 */
export const unreadableAppend = (streamId: string, cause: unknown): InvalidAppend =>
  new InvalidAppend({
    streamId,
    reason: "InvalidEvent",
    detail: `the append could not be read (reading it threw ${Json.describeThrown(cause)})`
  })

/** {@link prepareAppend} once the stream id is valid: synchronous, so that one `Either.try` guards it. */
const prepareValid = (
  id: Event.StreamId,
  events: ReadonlyArray<Event.EventData>,
  options: AppendOptions | undefined,
  limits: Limits,
  reading: Reading
): Either.Either<PreparedAppend, InvalidAppend> => {
  const invalid = (reason: InvalidAppendReason, detail: string, index?: number) =>
    Either.left(new InvalidAppend({ streamId: id, reason, detail, ...(index === undefined ? {} : { index }) }))
  if (!Array.isArray(events)) return invalid("InvalidEvent", "events must be an array")
  const expectedVersion = options?.expectedVersion === undefined ? Event.Any : options.expectedVersion
  const expectedProblem = Event.expectedVersionProblem(expectedVersion)
  if (expectedProblem !== undefined) return invalid("InvalidExpectedVersion", expectedProblem)
  if (events.length > limits.maxEventsPerAppend) {
    return invalid("TooManyEvents", `${events.length} events, the limit is ${limits.maxEventsPerAppend}`)
  }
  const prepared: Array<PreparedEvent> = []
  const seen = new Set<string>()
  for (let index = 0; index < events.length; index++) {
    const event = events[index]!
    const problem = Event.eventDataProblem(event)
    if (problem !== undefined) return invalid("InvalidEvent", problem, index)
    if (seen.has(event.eventId)) return invalid("DuplicateEventId", `event id ${event.eventId} repeats`, index)
    seen.add(event.eventId)
    const metadata = event.metadata ?? {}
    reading.index = index
    reading.field = "data"
    const dataJson = Json.encode(event.data)
    if (Either.isLeft(dataJson)) return invalid("InvalidJson", jsonDetail("data", dataJson.left), index)
    reading.field = "metadata"
    const metadataJson = Json.encode(metadata)
    reading.field = undefined
    if (Either.isLeft(metadataJson)) return invalid("InvalidJson", jsonDetail("metadata", metadataJson.left), index)
    // a UTF-16 code unit takes at most 3 bytes in UTF-8: short texts need no counting
    if ((dataJson.right.length + metadataJson.right.length) * 3 > limits.maxEventBytes) {
      const bytes = Json.byteLength(dataJson.right) + Json.byteLength(metadataJson.right)
      if (bytes > limits.maxEventBytes) {
        return invalid("EventTooLarge", `${bytes} bytes of JSON, the limit is ${limits.maxEventBytes}`, index)
      }
    }
    prepared.push({
      eventId: event.eventId,
      type: event.type,
      schemaVersion: event.schemaVersion,
      data: event.data,
      metadata,
      dataJson: dataJson.right,
      metadataJson: metadataJson.right
    })
  }
  const uniqueness = uniquenessProblem(options)
  if (uniqueness !== undefined) return invalid(uniqueness.reason, uniqueness.detail)
  const claims = options?.claims ?? []
  const releases = options?.releases ?? []
  const commandId = options?.commandId
  return Either.right({
    streamId: id,
    category: Event.categoryOf(id),
    streamHash: Event.streamHash(id),
    expectedVersion,
    events: prepared,
    claims,
    releases,
    commandId
  })
}

/**
 * What is wrong with an append's unique values or command id, if anything: for wrappers that rewrite
 * them (`Tenancy` scopes them to a tenant) and must check them as the caller gave them.
 */
export const uniquenessProblem = (
  options: Pick<AppendOptions, "claims" | "releases" | "commandId"> | undefined
): { readonly reason: "InvalidUniqueValue" | "InvalidCommandId"; readonly detail: string } | undefined => {
  const values = [options?.claims ?? [], options?.releases ?? []]
  if (values.some((v) => !Array.isArray(v))) {
    return { reason: "InvalidUniqueValue", detail: "claims and releases must be arrays" }
  }
  const bad = values.flat().find((u) => uniqueValueProblem(u) !== undefined)
  if (bad !== undefined) return { reason: "InvalidUniqueValue", detail: uniqueValueProblem(bad)! }
  const commandId = options?.commandId
  if (commandId !== undefined && uniqueValueProblem({ constraint: "command", value: commandId }) !== undefined) {
    return {
      reason: "InvalidCommandId",
      detail: `a command id must be a string of 1 to ${maxUniqueValueLength} printable characters`
    }
  }
  return undefined
}

/**
 * Refuses a `readAll` partition that is not `0 <= index < count <= Event.maxPartitions` with integers (an `EventStoreError`:
 * the read's only error, and a wiring bug rather than data). For implementers of the contract.
 */
export const checkPartition = (partition: Event.Partition | undefined): EventStoreError | undefined => {
  if (partition === undefined) return undefined
  const { count, index } = partition
  return Number.isSafeInteger(count) &&
    Number.isSafeInteger(index) &&
    count >= 1 &&
    count <= Event.maxPartitions &&
    index >= 0 &&
    index < count
    ? undefined
    : new EventStoreError({
        operation: "readAll",
        cause: new Error(
          `invalid partition ${JSON.stringify({ count, index })}: need integers 0 <= index < count <= ${Event.maxPartitions}`
        )
      })
}

/**
 * The round-trip size of a `readAll` (`batchSize`: default 500, at least 1) and the length of one
 * `readAllPage` (the batch size, at most `maxCount`; 0 when that is 0 or less). For implementers of the contract.
 */
export const readAllSizes = (
  options: ReadAllOptions | undefined
): { readonly batchSize: number; readonly pageLength: number } => {
  const batchSize = Math.max(1, Math.floor(options?.batchSize ?? 500))
  return { batchSize, pageLength: Math.max(0, Math.min(batchSize, options?.maxCount ?? batchSize)) }
}

/** Longest constraint name or unique value, in characters. */
export const maxUniqueValueLength = 512

const uniqueValueProblem = (u: unknown): string | undefined => {
  const { constraint, value } = (u ?? {}) as Partial<UniqueValue>
  for (const [name, text] of [
    ["constraint", constraint],
    ["value", value]
  ] as const) {
    if (typeof text !== "string" || text.length === 0 || text.length > maxUniqueValueLength) {
      return `a unique ${name} must be a string of 1 to ${maxUniqueValueLength} characters`
    }
    if (Json.encode(text)._tag === "Left") return `a unique ${name} must not contain NUL or lone surrogates`
  }
  return undefined
}

const jsonDetail = (field: string, problem: Json.JsonProblem) =>
  `${field} is not storable JSON: ${problem.path.replace(/^\$/, field)} ${problem.problem}`

/**
 * Where a stream already holds some of an append's event ids, decides whether the append is a retry of
 * an earlier one (same ids, consecutive, and the expected version held back then: answer with the
 * original result) or a conflict of ids (refuse). `storedVersionOf` returns the version holding an id;
 * `currentVersion` is the stream's version now, which a conflict reports.
 * Returns `undefined` when none of the ids is stored: a normal append.
 */
export const resolveDuplicates = (
  append: PreparedAppend,
  storedVersionOf: (eventId: string) => number | undefined,
  currentVersion: number
): Either.Either<{ readonly firstVersion: number }, InvalidAppend | ConcurrencyConflict> | undefined => {
  const versions = append.events.map((e) => storedVersionOf(e.eventId))
  if (versions.every((v) => v === undefined)) return undefined
  const first = versions[0]
  const isSameAppend = first !== undefined && versions.every((v, i) => v === first + i)
  if (!isSameAppend) {
    const index = versions.findIndex((v) => v !== undefined)
    return Either.left(
      new InvalidAppend({
        streamId: append.streamId,
        reason: "EventIdConflict",
        index,
        detail: `event id ${append.events[index]!.eventId} is already stored at version ${versions[index]}`
      })
    )
  }
  return Event.satisfies(append.expectedVersion, first - 1)
    ? Either.right({ firstVersion: first })
    : Either.left(
        new ConcurrencyConflict({ streamId: append.streamId, expected: append.expectedVersion, actual: currentVersion })
      )
}
