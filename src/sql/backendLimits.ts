/**
 * What each backend can take of an append, as the statements the SQL event store sends use it, read by
 * the backend's dialect record when the store is built; the configured `EventStore.Limits` are clamped to
 * it (with a logged warning), and an append beyond the backend's bounds is refused with `InvalidAppend`
 * before anything reaches the server.
 *
 * - **SQLite**: one INSERT of all the append's rows, 10 bound variables per event, at most
 *   `SQLITE_MAX_VARIABLE_NUMBER` per statement (32,766 since SQLite 3.32, read from `pragma
 *   compile_options`): 3,276 events per append. A text value holds at most `SQLITE_MAX_LENGTH` bytes (1e9
 *   by default): data and metadata are each one.
 * - **MySQL/MariaDB**: prepared statements take at most 65,535 placeholders; the INSERT has 11 per event:
 *   5,957 events per append. One statement travels in one packet of at most `max_allowed_packet` bytes
 *   (read from the server; 16 MiB by default on MariaDB 10.2+, 64 MiB on MySQL 8): an event's row must fit
 *   one (its JSON plus {@link mysqlRowOverhead} and {@link mysqlStatementOverhead}); the rows of a larger
 *   append are inserted by several statements (see {@link mysqlChunks}).
 * - **PostgreSQL**: the append function takes 10 bind parameters (of the protocol's 65,535), whatever the
 *   event count; its events travel as one `jsonb` argument, each event's data and metadata a JSON text (a
 *   string) in it, and a `jsonb` value holds at most 268,435,455 bytes: an append's JSON, with about
 *   1 KiB per event, must stay within it (a `json` column holds up to 1 GB).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { InvalidAppend, type Limits } from "../EventStore.js"
import { type PreparedAppend, type PreparedEvent } from "../internal/appendPreparation.js"
import * as Json from "../internal/json.js"

/** A backend's bounds on an append, and the words that name them in refusals and warnings. */
export interface BackendLimits {
  /** The backend, as named in messages. */
  readonly backend: string
  readonly maxEventsPerAppend: number
  /** Most UTF-8 bytes of one event's data + metadata JSON. */
  readonly maxEventBytes: number
  /** Most UTF-8 bytes of an append's JSON in all (each event with its overhead), if bounded. */
  readonly maxAppendBytes: number | undefined
  /** Per-event bytes counted toward `maxAppendBytes` beside the event's data and metadata. */
  readonly eventOverhead: number
  /** MySQL: the server's `max_allowed_packet`, which each INSERT must fit (see {@link mysqlChunks}). */
  readonly packet: number | undefined
  /** What bounds the event count, the event size and the append size. */
  readonly why: { readonly events: string; readonly eventBytes: string; readonly appendBytes: string }
}

/** Bytes of a MySQL event row beside its data and metadata: ids, names (at most 255 characters, 3 bytes each), numbers, per-parameter framing. */
export const mysqlRowOverhead = 4096

/** Bytes of a MySQL INSERT's packet beside its rows. */
export const mysqlStatementOverhead = 1024

/**
 * The configured limits within the backend's: each one above it is lowered to it, with a warning. Returns
 * the limits in effect and which of them the backend set.
 */
export const clamp = (
  configured: Limits,
  backend: BackendLimits
): Effect.Effect<{ readonly limits: Limits; readonly events: boolean; readonly bytes: boolean }> =>
  Effect.gen(function* () {
    const events = configured.maxEventsPerAppend > backend.maxEventsPerAppend
    const bytes = configured.maxEventBytes > backend.maxEventBytes
    if (events) {
      yield* Effect.logWarning(
        `SqlEventStore: limits.maxEventsPerAppend ${configured.maxEventsPerAppend} is more than ${backend.backend} ` +
          `takes (${backend.why.events}): using ${backend.maxEventsPerAppend}`
      )
    }
    if (bytes) {
      yield* Effect.logWarning(
        `SqlEventStore: limits.maxEventBytes ${configured.maxEventBytes} is more than ${backend.backend} ` +
          `takes (${backend.why.eventBytes}): using ${backend.maxEventBytes}`
      )
    }
    return {
      limits: {
        maxEventsPerAppend: Math.min(configured.maxEventsPerAppend, backend.maxEventsPerAppend),
        maxEventBytes: Math.min(configured.maxEventBytes, backend.maxEventBytes)
      },
      events,
      bytes
    }
  })

/**
 * A refusal of `prepareAppend` for a limit the backend set (see {@link clamp}), with the backend's bound
 * named in its detail.
 */
export const explain = (
  error: InvalidAppend,
  backend: BackendLimits,
  clamped: { readonly events: boolean; readonly bytes: boolean }
): InvalidAppend => {
  const why =
    error.reason === "TooManyEvents" && clamped.events
      ? backend.why.events
      : error.reason === "EventTooLarge" && clamped.bytes
        ? backend.why.eventBytes
        : undefined
  return why === undefined
    ? error
    : new InvalidAppend({
        streamId: error.streamId,
        reason: error.reason,
        detail: `${error.detail} (${why})`,
        ...(error.index === undefined ? {} : { index: error.index })
      })
}

/**
 * Refuses an append whose events together exceed what the backend takes in one append (PostgreSQL's
 * events argument), with `TooManyEvents`: split it. Counts bytes only when a cheap bound says it might.
 */
export const checkAppend = (append: PreparedAppend, backend: BackendLimits): InvalidAppend | undefined => {
  const max = backend.maxAppendBytes
  if (max === undefined) return undefined
  // a UTF-16 code unit takes at most 3 bytes in UTF-8
  let bound = 2
  for (const e of append.events) bound += (e.dataJson.length + e.metadataJson.length) * 3 + backend.eventOverhead
  if (bound <= max) return undefined
  const bytes = appendBytes(append.events, backend.eventOverhead)
  return bytes <= max
    ? undefined
    : new InvalidAppend({
        streamId: append.streamId,
        reason: "TooManyEvents",
        detail: `the append's ${append.events.length} events take ${bytes} bytes of JSON together, more than ${backend.backend} takes in one append (${backend.why.appendBytes}): split it`
      })
}

const appendBytes = (events: ReadonlyArray<PreparedEvent>, overhead: number) => {
  let bytes = 2
  for (const e of events) bytes += eventBytes(e) + overhead
  return bytes
}

const eventBytes = (e: PreparedEvent) => Json.byteLength(e.dataJson) + Json.byteLength(e.metadataJson)

/**
 * MySQL: the append's events in runs whose INSERT fits one packet of `packet` bytes (most appends: one
 * run, found without counting bytes), each run at most `maxEvents` long.
 */
export const mysqlChunks = <A>(
  events: ReadonlyArray<PreparedEvent>,
  rows: ReadonlyArray<A>,
  packet: number
): ReadonlyArray<ReadonlyArray<A>> => {
  const budget = packet - mysqlStatementOverhead
  let bound = 0
  for (const e of events) bound += (e.dataJson.length + e.metadataJson.length) * 3 + mysqlRowOverhead
  if (bound <= budget) return [rows]
  const chunks: Array<Array<A>> = []
  let current: Array<A> = []
  let used = 0
  events.forEach((e, i) => {
    const size = eventBytes(e) + mysqlRowOverhead
    if (current.length > 0 && used + size > budget) {
      chunks.push(current)
      current = []
      used = 0
    }
    current.push(rows[i]!)
    used += size
  })
  if (current.length > 0) chunks.push(current)
  return chunks
}
