/**
 * The in-memory event store: the whole `EventStore` contract (every guarantee, unique values, command
 * dedup) in process memory, for tests, examples and prototypes. Appends are serialized (each is one
 * synchronous step), so the log is in commit order and a checkpoint's `transaction` is the append's
 * sequence number. State lives as long as the service.
 * Expired command records are forgotten as new ones are recorded (up to 100 per append).
 * Appends are `EventStore.append` spans, and appends, conflicts and reads are counted (see `Metrics`).
 */
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Event from "./Event.js"
import { instrument } from "./internal/instrumentedStore.js"
import * as Wakeup from "./Wakeup.js"
import {
  type AllPage,
  type AppendResult,
  type CommandRecord,
  ConcurrencyConflict,
  type DeleteStreamOptions,
  defaultCommandTtl,
  defaultLimits,
  DuplicateCommand,
  EventStore,
  type InvalidAppend,
  type Limits,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RetentionCut,
  StreamDeleted,
  StreamNotFound,
  type UniqueValue,
  UniqueConstraintViolation
} from "./EventStore.js"
import {
  checkPartition,
  type PreparedAppend,
  prepareAppend,
  readAllSizes,
  resolveDuplicates
} from "./internal/appendPreparation.js"

/** Options of {@link make}. */
export interface MemoryOptions {
  readonly limits?: Partial<Limits>
  /** How long handled commands are remembered; default {@link defaultCommandTtl}. */
  readonly commandTtl?: Duration.DurationInput
}

interface MemoryStream {
  /** The events kept: versions `version - events.length + 1` to `version` (a truncation drops the first). */
  events: Array<Event.RecordedEvent>
  version: number
  deleted: "soft" | "hard" | undefined
  readonly versionOfEventId: Map<string, number>
}

/**
 * An in-memory event store honouring the whole contract; for tests, examples and prototypes. Appends
 * are serialized (each is one synchronous step), so the log is in commit order and the checkpoint's
 * `transaction` is the append's sequence number. State lives as long as the service.
 */
export const make = (options?: MemoryOptions): Effect.Effect<EventStore["Type"]> =>
  Effect.flatMap(Effect.serviceOption(Wakeup.Wakeup), (wakeup) =>
    Effect.sync(() => {
      const hint = Option.match(wakeup, { onNone: () => Effect.void, onSome: (w) => w.notify })
      const limits: Limits = { ...defaultLimits, ...options?.limits }
      const streams = new Map<string, MemoryStream>()
      /** Each stream's archived events, in version order (see `archiveStream`). */
      const archived = new Map<string, Array<Event.RecordedEvent>>()
      let log: Array<Event.RecordedEvent> = []
      const uniqueOwners = new Map<string, string>()
      const commands = new Map<string, CommandRecord & { readonly recordedAt: number }>()
      const commandTtl = Duration.toMillis(options?.commandTtl ?? defaultCommandTtl)
      const liveCommand = (commandId: string, now: number) => {
        const record = commands.get(commandId)
        return record !== undefined && now - record.recordedAt < commandTtl ? record : undefined
      }
      /** Forgets up to 100 expired records, oldest first: bounded work per append, ahead of the growth. */
      const pruneCommands = (now: number) => {
        let budget = 100
        for (const [commandId, record] of commands) {
          if (budget-- === 0 || now - record.recordedAt < commandTtl) return
          commands.delete(commandId)
        }
      }
      let lastTransaction = 0n

      const commit = (
        append: PreparedAppend,
        recordedAt: DateTime.Utc
      ): Effect.Effect<
        AppendResult,
        ConcurrencyConflict | InvalidAppend | UniqueConstraintViolation | DuplicateCommand | StreamDeleted
      > => {
        const stream = streams.get(append.streamId)
        const actual = stream?.version ?? 0
        if (stream?.deleted !== undefined) {
          return Effect.fail(new StreamDeleted({ streamId: append.streamId, hard: stream.deleted === "hard" }))
        }
        // a handled command first: a replay of its append is a duplicate command, not a success
        const handled =
          append.commandId === undefined ? undefined : liveCommand(append.commandId, recordedAt.epochMillis)
        if (handled !== undefined) {
          return Effect.fail(
            new DuplicateCommand({
              commandId: handled.commandId,
              streamId: handled.streamId,
              version: handled.version,
              positions: handled.positions
            })
          )
        }
        const duplicate = stream && resolveDuplicates(append, (id) => stream.versionOfEventId.get(id), actual)
        if (duplicate !== undefined) {
          return Either.match(duplicate, {
            onLeft: Effect.fail,
            onRight: ({ firstVersion }) => {
              const first = stream!.version - stream!.events.length + 1
              const original = stream!.events.slice(firstVersion - first, firstVersion - first + append.events.length)
              return Effect.succeed(appendResult(append.streamId, original))
            }
          })
        }
        if (!Event.satisfies(append.expectedVersion, actual)) {
          return Effect.fail(
            new ConcurrencyConflict({ streamId: append.streamId, expected: append.expectedVersion, actual })
          )
        }
        const taken = append.claims.find((u) => {
          const owner = uniqueOwners.get(uniqueKey(u))
          return owner !== undefined && owner !== append.streamId
        })
        if (taken !== undefined) {
          return Effect.fail(
            new UniqueConstraintViolation({
              streamId: append.streamId,
              ...taken,
              owner: uniqueOwners.get(uniqueKey(taken))!
            })
          )
        }
        for (const u of append.releases) {
          if (uniqueOwners.get(uniqueKey(u)) === append.streamId) uniqueOwners.delete(uniqueKey(u))
        }
        for (const u of append.claims) uniqueOwners.set(uniqueKey(u), append.streamId)
        const result =
          append.events.length === 0
            ? { streamId: append.streamId, version: actual, positions: [] }
            : write(append, stream, actual, recordedAt)
        if (append.commandId !== undefined) {
          pruneCommands(recordedAt.epochMillis)
          // deleted first, so that the map's order stays the order of recording (oldest first)
          commands.delete(append.commandId)
          commands.set(append.commandId, { commandId: append.commandId, ...result, recordedAt: recordedAt.epochMillis })
        }
        return Effect.succeed(result)
      }

      const write = (
        append: PreparedAppend,
        stream: MemoryStream | undefined,
        actual: number,
        recordedAt: DateTime.Utc
      ): AppendResult => {
        const target: MemoryStream = stream ?? {
          events: [],
          version: 0,
          deleted: undefined,
          versionOfEventId: new Map()
        }
        streams.set(append.streamId, target)
        const transaction = ++lastTransaction
        const recorded = append.events.map((e, i): Event.RecordedEvent => ({
          eventId: e.eventId,
          type: e.type,
          schemaVersion: e.schemaVersion,
          // stored as JSON text and parsed back, so no caller-held reference is shared with the store
          data: JSON.parse(e.dataJson),
          metadata: JSON.parse(e.metadataJson),
          streamId: append.streamId,
          category: append.category,
          version: actual + i + 1,
          position: BigInt(log.length + i + 1),
          transaction,
          recordedAt
        }))
        for (const event of recorded) {
          target.events.push(event)
          target.versionOfEventId.set(event.eventId, event.version)
          log.push(event)
        }
        target.version = actual + recorded.length
        return appendResult(append.streamId, recorded)
      }

      const append: EventStore["Type"]["append"] = (streamId, events, options) =>
        Effect.gen(function* () {
          const prepared = yield* prepareAppend(streamId, events, options, limits)
          const now = yield* DateTime.now
          const result = yield* commit(prepared, now)
          if (result.positions.length > 0) yield* hint
          return result
        })

      /** The events a stream read returns, in its order (all of them: `maxCount` is the caller's). */
      const selected = (streamId: string, options: ReadStreamOptions | undefined) =>
        Effect.gen(function* () {
          const id = yield* Event.streamId(streamId)
          const stream = streams.get(id)
          if (stream === undefined || stream.version === 0) return yield* new StreamNotFound({ streamId: id })
          if (stream.deleted !== undefined) {
            return yield* new StreamDeleted({ streamId: id, hard: stream.deleted === "hard" })
          }
          const kept = archived.get(id)
          const events =
            options?.includeArchived === true && kept !== undefined ? [...kept, ...stream.events] : stream.events
          // index of version v: v - first (archived events come right before the live ones)
          const first = stream.version - events.length + 1
          const backward = options?.direction === "backward"
          const from = options?.fromVersion ?? (backward ? stream.version : 1)
          return backward
            ? events.slice(0, Math.max(0, Math.min(from - first + 1, events.length))).reverse()
            : events.slice(Math.max(0, from - first))
        })

      const readStream: EventStore["Type"]["readStream"] = (streamId, options) =>
        Stream.unwrap(
          Effect.map(selected(streamId, options), (events) =>
            Stream.fromIterable(options?.maxCount === undefined ? events : events.slice(0, options.maxCount))
          )
        )

      const readStreamPage: EventStore["Type"]["readStreamPage"] = (streamId, options) =>
        Effect.map(selected(streamId, options), (events) => {
          const size = Math.max(1, Math.min(pageSize, options?.maxCount ?? pageSize))
          return { events: events.slice(0, size), next: events[size]?.version }
        })

      /** The pages of a `readAll` with these options, or why it is refused. */
      const pagesOf = (options: ReadAllOptions | undefined) => {
        const { batchSize, pageLength } = readAllSizes(options)
        const categories = options?.categories && new Set(options.categories)
        const types = options?.types && new Set(options.types)
        const partition = options?.partition
        const tenant = options?.tenant
        const matches = (e: Event.RecordedEvent) =>
          (tenant === undefined || Event.tenantOf(e.streamId) === tenant) &&
          (categories === undefined || categories.has(e.category)) &&
          (types === undefined || types.has(e.type)) &&
          (partition === undefined || Event.partitionOf(e.streamId, partition.count) === partition.index)
        // resumes after the last event looked at, not at an index: a deletion between pages moves indexes
        const page = (after: Event.Checkpoint, size: number): AllPage => {
          const batch: Array<Event.RecordedEvent> = []
          let index = firstIndexAfter(log, after)
          for (; index < log.length && batch.length < size; index++) {
            if (matches(log[index]!)) batch.push(log[index]!)
          }
          return { events: batch, next: index < log.length ? Event.checkpointOf(log[index - 1]!) : undefined }
        }
        const invalid = checkPartition(partition)
        return invalid !== undefined ? Either.left(invalid) : Either.right({ batchSize, pageLength, page })
      }

      const readAll: EventStore["Type"]["readAll"] = (options) =>
        Either.match(pagesOf(options), {
          onLeft: (invalid) => Stream.fail(invalid),
          onRight: ({ batchSize, page }) => {
            const events = Stream.paginateChunkEffect(options?.after ?? Event.start, (after) =>
              Effect.sync(() => {
                const { events, next } = page(after, batchSize)
                return [Chunk.unsafeFromArray(events), Option.fromNullable(next)] as const
              })
            )
            return options?.maxCount === undefined ? events : Stream.take(events, options.maxCount)
          }
        })

      const readAllPage: EventStore["Type"]["readAllPage"] = (options) =>
        Either.match(pagesOf(options), {
          onLeft: (invalid) => Effect.fail(invalid),
          onRight: ({ page, pageLength }) =>
            Effect.sync(() =>
              pageLength === 0 ? { events: [], next: undefined } : page(options?.after ?? Event.start, pageLength)
            )
        })

      const head: EventStore["Type"]["head"] = Effect.sync(() =>
        log.length === 0 ? Event.start : Event.checkpointOf(log[log.length - 1]!)
      )

      const streamVersion: EventStore["Type"]["streamVersion"] = (streamId) =>
        Effect.map(Event.streamId(streamId), (id) => streams.get(id)?.version ?? 0)

      const findCommand: EventStore["Type"]["findCommand"] = (commandId) =>
        Effect.map(DateTime.now, (now) => {
          const record = liveCommand(commandId, now.epochMillis)
          return record === undefined
            ? Option.none()
            : Option.some({
                commandId,
                streamId: record.streamId,
                version: record.version,
                positions: record.positions
              })
        })

      // appends commit one at a time, in position order: readers are never held back
      const heldBack: EventStore["Type"]["heldBack"] = () => Effect.succeed(Option.none())

      /** The stream to delete or truncate: it exists, and (unless `allowHard`) is not hard-deleted. */
      const existing = (streamId: string, allowHard: boolean) =>
        Effect.flatMap(
          Event.streamId(streamId),
          (id): Effect.Effect<readonly [Event.StreamId, MemoryStream], StreamNotFound | StreamDeleted> => {
            const stream = streams.get(id)
            if (stream === undefined || stream.version === 0) return Effect.fail(new StreamNotFound({ streamId: id }))
            if (stream.deleted === "hard" && !allowHard) {
              return Effect.fail(new StreamDeleted({ streamId: id, hard: true }))
            }
            return Effect.succeed([id, stream] as const)
          }
        )

      /** The stream if it is at the expected version (a hard-deleted one is, whatever its version). */
      const expecting =
        (options: DeleteStreamOptions | undefined) =>
        ([id, stream]: readonly [Event.StreamId, MemoryStream]) => {
          const expected = options?.expectedVersion ?? Event.Any
          return stream.deleted === "hard" || Event.satisfies(expected, stream.version)
            ? Effect.succeed([id, stream] as const)
            : Effect.fail(new ConcurrencyConflict({ streamId: id, expected, actual: stream.version }))
        }

      /** Takes the stream's live events below `before` out of the stream and the log; they are returned. */
      const takeEvents = (stream: MemoryStream, before: number) => {
        const taken = stream.events.filter((e) => e.version < before)
        if (taken.length === 0) return taken
        const ids = new Set(taken.map((e) => e.eventId))
        stream.events = stream.events.slice(taken.length)
        for (const id of ids) stream.versionOfEventId.delete(id)
        log = log.filter((e) => !(e.streamId === taken[0]!.streamId && ids.has(e.eventId)))
        return taken
      }

      /** Removes the stream's events below `before`, live and archived; how many. */
      const dropEvents = (id: string, stream: MemoryStream, before: number) => {
        const kept = archived.get(id) ?? []
        const archivedDropped = kept.filter((e) => e.version < before).length
        if (archivedDropped === kept.length) archived.delete(id)
        else archived.set(id, kept.slice(archivedDropped))
        return archivedDropped + takeEvents(stream, before).length
      }

      const deleteStream: EventStore["Type"]["deleteStream"] = (streamId, options) =>
        Effect.map(Effect.flatMap(existing(streamId, false), expecting(options)), ([, stream]) => {
          stream.deleted = "soft"
        })

      const undeleteStream: EventStore["Type"]["undeleteStream"] = (streamId) =>
        Effect.map(existing(streamId, false), ([, stream]) => {
          stream.deleted = undefined
        })

      const hardDeleteStream: EventStore["Type"]["hardDeleteStream"] = (streamId, options) =>
        Effect.map(
          existing(streamId, true).pipe(
            // never: a hard-deleted stream is allowed here
            Effect.catchTag("StreamDeleted", Effect.die),
            Effect.flatMap(expecting(options))
          ),
          ([id, stream]) => {
            if (stream.deleted === "hard") return
            dropEvents(id, stream, stream.version + 1)
            stream.deleted = "hard"
            for (const [key, owner] of uniqueOwners) if (owner === id) uniqueOwners.delete(key)
            for (const [commandId, record] of commands) if (record.streamId === id) commands.delete(commandId)
          }
        )

      const truncateStream: EventStore["Type"]["truncateStream"] = (streamId, before) =>
        Effect.flatMap(existing(streamId, false), ([id, stream]) =>
          stream.deleted === undefined
            ? Effect.succeed(dropEvents(id, stream, before))
            : Effect.fail(new StreamDeleted({ streamId: id, hard: false }))
        )

      const archiveStream: EventStore["Type"]["archiveStream"] = (streamId, options) =>
        Effect.flatMap(existing(streamId, false), ([id, stream]) => {
          if (stream.deleted !== undefined) return Effect.fail(new StreamDeleted({ streamId: id, hard: false }))
          const taken = takeEvents(stream, options?.before ?? stream.version + 1)
          if (taken.length > 0) archived.set(id, [...(archived.get(id) ?? []), ...taken])
          return Effect.succeed(taken.length)
        })

      const applyRetention: EventStore["Type"]["applyRetention"] = (cut) =>
        Effect.sync(() => {
          let touched = 0
          let removed = 0
          for (const [id, stream] of streams) {
            if (stream.deleted !== undefined || Event.categoryOf(id) !== cut.category) continue
            const before = retentionBound(stream, cut)
            const count = before === undefined ? 0 : dropEvents(id, stream, before)
            if (count > 0) {
              touched++
              removed += count
            }
          }
          return { streams: touched, events: removed }
        })

      return EventStore.of(
        instrument({
          append,
          readStream,
          readStreamPage,
          readAll,
          readAllPage,
          head,
          heldBack,
          streamVersion,
          findCommand,
          deleteStream,
          undeleteStream,
          hardDeleteStream,
          truncateStream,
          archiveStream,
          applyRetention
        })
      )
    })
  )

/** A fresh in-memory store per Layer build. */
export const layer = (options?: MemoryOptions): Layer.Layer<EventStore> => Layer.effect(EventStore, make(options))

/** The first version a retention cut keeps of a stream's live events, if it removes any (see `RetentionCut`). */
/** Events per page of `readStreamPage`, as on the SQL stores by default. */
const pageSize = 1000

const retentionBound = (stream: MemoryStream, cut: RetentionCut): number | undefined => {
  let bound = cut.maxCount === undefined ? 1 : stream.version - cut.maxCount + 1
  if (cut.recordedBefore !== undefined) {
    const cutoff = cut.recordedBefore.epochMillis
    for (const e of stream.events) if (e.recordedAt.epochMillis < cutoff) bound = Math.max(bound, e.version + 1)
  }
  return stream.events.length > 0 && bound > stream.events[0]!.version ? bound : undefined
}

const uniqueKey = (u: UniqueValue) => `${u.constraint}\u0000${u.value}`

const appendResult = (streamId: Event.StreamId, events: ReadonlyArray<Event.RecordedEvent>): AppendResult => ({
  streamId,
  version: events[events.length - 1]!.version,
  positions: events.map((e) => e.position)
})

/** Index of the first event of a checkpoint-ordered log that sorts after `after` (binary search). */
const firstIndexAfter = (log: ReadonlyArray<Event.RecordedEvent>, after: Event.Checkpoint): number => {
  let low = 0
  let high = log.length
  while (low < high) {
    const mid = (low + high) >>> 1
    if (Event.checkpointOrder(Event.checkpointOf(log[mid]!), after) <= 0) low = mid + 1
    else high = mid
  }
  return low
}
