/**
 * History verification: "will this release read my history?" answered before the deploy. {@link verify}
 * reads the stored log in global order and decodes every event (or a sample per type and schema version)
 * with the application's codecs, reporting each (type, version) that fails with example stream ids and
 * versions.
 *
 * It reads as a projection does (in pages, to the head seen when it began), keeps counters and a few
 * examples per (type, version) only, so its memory does not grow with the log; a time limit bounds how
 * long it reads. It changes nothing. Events no codec reads (another service's, or a type dropped without
 * an upcaster) are reported as unknown, not as failures: the schema lock (`SchemaLock`) is what catches a
 * type that disappeared. Personal fields (`Personal`) are not opened (no key store is needed): they decode
 * as their erased value, so their inner values are not checked.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Event from "./Event.js"
import * as EventStore from "./EventStore.js"
import * as ProgressTracker from "./projection/progress.js"
import type * as SchemaLock from "./SchemaLock.js"

/** Options of {@link verify}. */
export interface Options {
  /** Decode at most this many events of each (type, version); default all. The log is still read to its head. */
  readonly sample?: number
  /** Stop reading after this long; the report then says `complete: false` and where it stopped. Default none. */
  readonly timeLimit?: Duration.DurationInput
  /** Called with the progress at most once per `progressInterval`, and once at the end. */
  readonly onProgress?: (progress: Progress) => Effect.Effect<void>
  /** Default 1 second. */
  readonly progressInterval?: Duration.DurationInput
  /** Failing events kept as examples per (type, version); default 3. */
  readonly examples?: number
  /** Events read per round trip; default 1000. */
  readonly batchSize?: number
}

/** How far a verification got: log positions (see `Projection.Progress`), with the events read and failed so far. */
export interface Progress extends ProgressTracker.Progress {
  readonly read: number
  readonly failed: number
}

/** A stored event a codec could not decode. */
export interface Failure {
  readonly streamId: string
  readonly version: number
  readonly position: bigint
  /** The codec that failed (as `SchemaLock.sources` names it: `aggregate Account`, `projection balances`). */
  readonly codec: string
  readonly reason: string
  readonly message: string
}

/** What was found for one stored (type, schema version). */
export interface TypeVersionReport {
  readonly type: string
  readonly version: number
  /** Events of this (type, version) read. */
  readonly read: number
  /** Of those, decoded with every codec that reads them (fewer than `read` when sampling). */
  readonly decoded: number
  /** Of those, the ones some codec failed on. */
  readonly failed: number
  /** Whether any codec reads this type (in the events' categories); unknown events are counted, not decoded. */
  readonly known: boolean
  /** The first failing events (see `examples` in {@link Options}). */
  readonly examples: ReadonlyArray<Failure>
}

/** The outcome of {@link verify}. */
export interface Report {
  /** Whether it read to the head seen when it began (false: it hit the time limit). */
  readonly complete: boolean
  readonly read: number
  readonly decoded: number
  readonly failed: number
  /** The checkpoint of the last event read, if any. */
  readonly last: Option.Option<Event.Checkpoint>
  /** By type, then version. */
  readonly types: ReadonlyArray<TypeVersionReport>
  /**
   * Committed events the read could not reach yet (PostgreSQL: behind a transaction still open in the
   * cluster, see `EventStore.HeldBack`), as the store saw them at the end: verify again once they are readable.
   */
  readonly heldBack: Option.Option<EventStore.HeldBack>
}

/**
 * Reads the log and decodes every event (or a sample of each (type, version)) with each codec of `sources`
 * that reads its type and category. Fails only if the store does; undecodable events are in the report
 * (`failed`, and examples per (type, version)).
 *
 * **Gotchas**: sampling decodes fewer events but still reads the whole log (the store cannot skip to the
 * next version of a type); bound long runs with `timeLimit`. A sample takes the oldest events of each
 * (type, version): data damaged later in the log is found only by a full run. Events appended while it
 * runs, after the head it began with, are not read; on PostgreSQL neither are those held back by a
 * transaction open in the cluster when it began (the report's `heldBack` says how many).
 */
export const verify = Effect.fn("HistoryCheck.verify")(function* (sources: SchemaLock.Sources, options?: Options) {
  const store = yield* EventStore.EventStore
  const sample = options?.sample ?? Number.POSITIVE_INFINITY
  const keep = options?.examples ?? 3
  const interval = Duration.toMillis(options?.progressInterval ?? Duration.seconds(1))
  const head = yield* store.head
  const tracker = ProgressTracker.begin(head, Event.start, yield* Clock.currentTimeMillis, true)
  const stats = new Map<string, Mutable>()
  const readers = new Map<string, ReadonlyArray<SchemaLock.CodecSource>>()
  const totals = { read: 0, decoded: 0, failed: 0, last: Option.none<Event.Checkpoint>() }
  let reportedAt = yield* Clock.currentTimeMillis

  /** The codecs reading events of a type in a category; one codec shared by several readers decodes once. */
  const readersOf = (type: string, category: string) => {
    const key = `${type}\u0000${category}`
    let found = readers.get(key)
    if (found === undefined) {
      const reading = sources.codecs.filter(
        (c) => c.codec.storedTypes.has(type) && (c.categories === undefined || c.categories.includes(category))
      )
      found = reading.filter((c, i) => reading.findIndex((other) => other.codec === c.codec) === i)
      readers.set(key, found)
    }
    return found
  }

  const check = (event: Event.RecordedEvent) => {
    const key = `${event.type}\u0000${event.schemaVersion}`
    let entry = stats.get(key)
    if (entry === undefined) {
      entry = {
        type: event.type,
        version: event.schemaVersion,
        read: 0,
        decoded: 0,
        failed: 0,
        known: false,
        examples: []
      }
      stats.set(key, entry)
    }
    entry.read++
    totals.read++
    const codecs = readersOf(event.type, event.category)
    if (codecs.length === 0 || entry.decoded >= sample) return
    entry.known = true
    entry.decoded++
    totals.decoded++
    let failed = false
    for (const { codec, name } of codecs) {
      const result = codec.decodeEither(event)
      if (Either.isRight(result)) continue
      if (!failed) {
        failed = true
        entry.failed++
        totals.failed++
      }
      if (entry.examples.length < keep) {
        const cause = result.left.cause
        entry.examples.push({
          streamId: event.streamId,
          version: event.version,
          position: event.position,
          codec: name,
          reason: result.left.reason,
          message: cause instanceof Error ? cause.message : String(cause)
        })
      }
    }
  }

  const progress = (now: number): Progress => ({
    ...Option.match(tracker, {
      onNone: () => ({ done: 0, total: 0, rate: 0, etaSeconds: Option.none<number>() }),
      onSome: (t) => ProgressTracker.view(t, now)
    }),
    read: totals.read,
    failed: totals.failed
  })

  const afterChunk = (last: Event.Checkpoint) =>
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      totals.last = Option.some(last)
      if (Option.isSome(tracker)) ProgressTracker.advance(tracker.value, last, now)
      if (options?.onProgress !== undefined && now - reportedAt >= interval) {
        reportedAt = now
        yield* options.onProgress(progress(now))
      }
    })

  const run = store.readAll({ batchSize: options?.batchSize ?? 1000 }).pipe(
    // up to the head seen at the start: a busy log is not chased forever
    Stream.takeWhile((event) => Event.checkpointOrder(Event.checkpointOf(event), head) <= 0),
    Stream.runForEachChunk((chunk) =>
      Effect.suspend(() => {
        let last: Event.RecordedEvent | undefined
        for (const event of chunk) {
          check(event)
          last = event
        }
        return last === undefined ? Effect.void : afterChunk(Event.checkpointOf(last))
      })
    )
  )
  const finished =
    options?.timeLimit === undefined
      ? yield* Effect.as(run, true)
      : Option.isSome(yield* Effect.timeoutOption(run, options.timeLimit))
  if (options?.onProgress !== undefined) yield* options.onProgress(progress(yield* Clock.currentTimeMillis))
  const heldBack = yield* store.heldBack()
  const report: Report = {
    complete: finished,
    read: totals.read,
    decoded: totals.decoded,
    failed: totals.failed,
    last: totals.last,
    types: [...stats.values()].sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : a.version - b.version)),
    heldBack
  }
  return report
})

interface Mutable {
  readonly type: string
  readonly version: number
  read: number
  decoded: number
  failed: number
  known: boolean
  readonly examples: Array<Failure>
}
