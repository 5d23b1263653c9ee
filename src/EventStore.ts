/**
 * The event store: the service contract every backend implements, and its typed errors. The stores are
 * `MemoryEventStore` and the SQL ones (`effect-eventsourcing/sql`).
 *
 * Guarantees of every implementation (each is checked by the conformance suite, `test/suites`):
 * 1. atomic append: all events of one append are stored together or none is;
 * 2. optimistic concurrency: an append whose {@link Event.ExpectedVersion} does not hold fails with
 *    {@link ConcurrencyConflict} and writes nothing;
 * 3. per-stream order: versions are 1, 2, 3... without gaps or duplicates;
 * 4. global order without skips: a reader resuming `readAll` after a {@link Event.Checkpoint} never
 *    later receives an event that sorts before it;
 * 5. idempotent append: re-appending events whose ids are already stored in the stream at the same
 *    versions returns the original result and writes nothing.
 *
 * Streams can be deleted softly (undo possible), deleted for good, truncated (by hand or by retention rules) or
 * archived (see {@link EventStore}).
 * Not provided here: live subscriptions (the projection runner tails `readAll`), typed domain events (see
 * `Upcaster`), and an implementation.
 */
import * as Context from "effect/Context"
import type * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Event from "./Event.js"

// ---------------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------------

/**
 * The stream was not at the expected version; nothing was written. Retryable: reload the stream,
 * decide again, append again. `actual` is the stream's version when the append was checked (0 = none).
 */
export class ConcurrencyConflict extends Schema.TaggedError<ConcurrencyConflict>()("ConcurrencyConflict", {
  streamId: Schema.String,
  expected: Event.ExpectedVersion,
  actual: Schema.Int
}) {
  override get message() {
    const expected = this.expected._tag === "Exact" ? `version ${this.expected.version}` : this.expected._tag
    return `Concurrency conflict on ${this.streamId}: expected ${expected}, stream is at version ${this.actual}`
  }
}

/** A read of a stream that has no events. */
export class StreamNotFound extends Schema.TaggedError<StreamNotFound>()("StreamNotFound", {
  streamId: Schema.String
}) {
  override get message() {
    return `Stream not found: ${this.streamId}`
  }
}

/**
 * The stream is deleted: an append to it, a read of it or a truncation fails with this. A soft deletion
 * (`deleteStream`) can be undone (`undeleteStream`); a hard one (`hard`: `hardDeleteStream`) cannot, and
 * the stream id can never be written again. Not retryable.
 */
export class StreamDeleted extends Schema.TaggedError<StreamDeleted>()("StreamDeleted", {
  streamId: Schema.String,
  /** Deleted for good (`hardDeleteStream`): its events are gone and the id cannot be reused. */
  hard: Schema.Boolean
}) {
  override get message() {
    return `Stream ${this.hard ? "deleted for good" : "deleted"}: ${this.streamId}`
  }
}

/** Why an append was refused as bad input. */
export const InvalidAppendReason = Schema.Literal(
  /** more events than `Limits.maxEventsPerAppend` */
  "TooManyEvents",
  /** an event's data + metadata JSON exceeds `Limits.maxEventBytes` */
  "EventTooLarge",
  /** an event does not match {@link Event.EventData} (id, type, schema version) */
  "InvalidEvent",
  /** the expected version is not an {@link Event.ExpectedVersion} */
  "InvalidExpectedVersion",
  /** a unique value to claim or release is not a pair of short printable strings */
  "InvalidUniqueValue",
  /** the command id is not a short printable string */
  "InvalidCommandId",
  /** data or metadata is not storable JSON (bigint, undefined, cycle, NUL, class instance...) */
  "InvalidJson",
  /** the same event id twice in one append */
  "DuplicateEventId",
  /** some event ids are already in the stream, but not as this same append at the same versions */
  "EventIdConflict"
)
export type InvalidAppendReason = typeof InvalidAppendReason.Type

/** An append refused as bad input; nothing was written. Not retryable. */
export class InvalidAppend extends Schema.TaggedError<InvalidAppend>()("InvalidAppend", {
  streamId: Schema.String,
  reason: InvalidAppendReason,
  /** index of the offending event in the append, when one event is at fault */
  index: Schema.optional(Schema.Int),
  detail: Schema.String
}) {
  override get message() {
    const at = this.index === undefined ? "" : ` (event #${this.index})`
    return `Invalid append to ${this.streamId}${at}: ${this.reason}: ${this.detail}`
  }
}

/** Another stream holds a unique value the append claims; nothing was written. */
export class UniqueConstraintViolation extends Schema.TaggedError<UniqueConstraintViolation>()(
  "UniqueConstraintViolation",
  {
    streamId: Schema.String,
    constraint: Schema.String,
    value: Schema.String,
    /** The stream holding the value. */
    owner: Schema.String
  }
) {
  override get message() {
    return `${this.constraint} ${JSON.stringify(this.value)} is already taken (by ${this.owner}); ${this.streamId} cannot claim it`
  }
}

/** The command was already handled by an earlier append (within the command TTL); nothing was written. */
export class DuplicateCommand extends Schema.TaggedError<DuplicateCommand>()("DuplicateCommand", {
  commandId: Schema.String,
  /** Where the command was handled, and what it wrote. */
  streamId: Schema.String,
  version: Schema.Int,
  positions: Schema.Array(Schema.BigInt)
}) {
  override get message() {
    return `Command ${this.commandId} was already handled (${this.streamId}@${this.version})`
  }
}

/**
 * An infrastructure failure (database unreachable, driver error...). When `transient` (the default: a lost
 * connection, a timeout, a deadlock), the operation may be retried as is; otherwise (the backend refused the
 * statement, a backend limit) it can never succeed unchanged.
 */
export class EventStoreError extends Schema.TaggedError<EventStoreError>()("EventStoreError", {
  operation: Schema.String,
  cause: Schema.Defect,
  transient: Schema.optionalWith(Schema.Boolean, { default: () => true })
}) {
  override get message() {
    return `Event store ${this.operation} failed: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

// ---------------------------------------------------------------------------------------------------
// contract
// ---------------------------------------------------------------------------------------------------

/**
 * Size limits enforced on every append, identically by every implementation. A store whose backend takes
 * less lowers them to what it takes, and names the backend's limit when it refuses (see `SqlEventStore`).
 */
export interface Limits {
  /** Most events one append may carry. */
  readonly maxEventsPerAppend: number
  /** Most UTF-8 bytes of one event's data JSON plus metadata JSON. */
  readonly maxEventBytes: number
}

/** 1,000 events per append, 1 MiB per event. */
export const defaultLimits: Limits = { maxEventsPerAppend: 1000, maxEventBytes: 1024 * 1024 }

/**
 * A unique value (an e-mail, a username...) under a named constraint. A stream claims it atomically with
 * an append; while claimed, no other stream can claim it. Claims live in the store, beside the events,
 * so rebuilding read models never loses them.
 */
export interface UniqueValue {
  readonly constraint: string
  readonly value: string
}

/** Options of {@link EventStore} `append`. */
export interface AppendOptions {
  /** Concurrency condition; default {@link Event.Any}. */
  readonly expectedVersion?: Event.ExpectedVersion
  /** Values to claim for this stream, only if the events are appended (claiming one it holds is a no-op). */
  readonly claims?: ReadonlyArray<UniqueValue>
  /** Values this stream gives up, only if the events are appended (releasing one it does not hold is a no-op). */
  readonly releases?: ReadonlyArray<UniqueValue>
  /**
   * The command this append handles. The store records it with the append's result; another append for
   * the same command within the store's command TTL fails with {@link DuplicateCommand} and writes nothing,
   * whatever its events and expected version: a replay of the very same append too (so exactly one of
   * several concurrent appends of a command succeeds, and the others learn it was a duplicate).
   *
   * **Gotchas**: after the TTL the record is forgotten (and pruned: stores delete expired records in the
   * background), and an append with that command id is handled as a new one. Choose a TTL longer than
   * any client retries.
   */
  readonly commandId?: string
}

/** A command recorded by an append (see {@link AppendOptions} `commandId`). */
export interface CommandRecord {
  readonly commandId: string
  readonly streamId: Event.StreamId
  /** The stream's version after the append. */
  readonly version: number
  /** The global positions of the append's events. */
  readonly positions: ReadonlyArray<bigint>
}

/** How long a command is remembered by default: 7 days. */
export const defaultCommandTtl: Duration.Duration = Duration.days(7)

/**
 * What an append wrote: the stream's version after its last event, and the global position of each
 * event (event `i` has version `version - positions.length + 1 + i`). An empty append checks the
 * expected version and returns the current version with no positions.
 */
export interface AppendResult {
  readonly streamId: Event.StreamId
  readonly version: number
  readonly positions: ReadonlyArray<bigint>
}

/** Options of {@link EventStore} `deleteStream` and `hardDeleteStream`. */
export interface DeleteStreamOptions {
  /** Delete only if the stream is at this version (else {@link ConcurrencyConflict}); default {@link Event.Any}. */
  readonly expectedVersion?: Event.ExpectedVersion
}

/** Options of {@link EventStore} `readStream`. */
export interface ReadStreamOptions {
  /** Default `"forward"`. */
  readonly direction?: "forward" | "backward"
  /** First version returned (inclusive). Default: 1 forward, the last version backward. */
  readonly fromVersion?: number
  /** Stop after this many events. */
  readonly maxCount?: number
  /** Also return the stream's archived events (see `archiveStream`), before its live ones; default false. */
  readonly includeArchived?: boolean
}

/** A page of a stream's events (see {@link EventStore} `readStreamPage`). */
export interface StreamPage {
  readonly events: ReadonlyArray<Event.RecordedEvent>
  /** The version the next page starts at (forward or backward), if the read has more events. */
  readonly next: number | undefined
}

/** A page of the global log (see {@link EventStore} `readAllPage`). */
export interface AllPage {
  readonly events: ReadonlyArray<Event.RecordedEvent>
  /**
   * Where the next page starts (pass it as `after`) when this one is full, so the read may have more
   * events; undefined when the read reached the end of what it can return now.
   */
  readonly next: Event.Checkpoint | undefined
}

/** Options of {@link EventStore} `archiveStream`. */
export interface ArchiveStreamOptions {
  /** Archive the events below this version; default: every event the stream has. */
  readonly before?: number
}

/**
 * Which events {@link EventStore} `applyRetention` removes from each live stream of a category: those beyond
 * its last `maxCount`, and those recorded before `recordedBefore` (with every event before them, so that what
 * is kept is the end of the stream). At least one of the two applies; `Retention` builds it from a policy.
 */
export interface RetentionCut {
  readonly category: string
  /** Keep at most this many of each stream's last events (KurrentDB's `$maxCount`); at least 1. */
  readonly maxCount?: number
  /** Remove the events recorded before this instant (KurrentDB's `$maxAge`, as an instant). */
  readonly recordedBefore?: DateTime.Utc
}

/** What {@link EventStore} `applyRetention` removed. */
export interface RetentionResult {
  /** Streams it truncated. */
  readonly streams: number
  /** Events it removed. */
  readonly events: number
}

/** Options of {@link EventStore} `readAll`. */
export interface ReadAllOptions {
  /** Return only events after this checkpoint; default {@link Event.start}. */
  readonly after?: Event.Checkpoint
  /** Only events of these stream categories. */
  readonly categories?: ReadonlyArray<string>
  /** Only events of these types. */
  readonly types?: ReadonlyArray<string>
  /** Only events of the streams in this partition (see {@link Event.partitionOf}). */
  readonly partition?: Event.Partition
  /** Only events of the streams scoped to this tenant (`<tenant>~<streamId>`, see `Tenancy`). */
  readonly tenant?: string
  /** Events fetched per round trip; default 500, at least 1. */
  readonly batchSize?: number
  /** Stop after this many events. */
  readonly maxCount?: number
}

/** Which events {@link EventStore} `heldBack` looks at: the same filters as `readAll`. */
export type HeldBackOptions = Pick<ReadAllOptions, "categories" | "types" | "partition" | "tenant">

/** The most held-back events a store counts (see {@link HeldBack}): beyond it, the count says "at least". */
export const maxHeldBackCount = 10_000

/**
 * Committed events that `readAll` cannot return yet. On PostgreSQL readers stop at the read horizon, the
 * oldest transaction still running in the cluster (see `SqlEventStore`): events committed after it began
 * wait until it ends. Usually for milliseconds; a transaction left open holds them back until it ends
 * (or the server ends it), which is what runners report as a stall.
 */
export interface HeldBack {
  /** How many events wait, counted up to {@link maxHeldBackCount}. */
  readonly events: number
  /** When the oldest of them was appended. */
  readonly since: DateTime.Utc
  /** What holds them back, if the store can tell (PostgreSQL: the oldest running transaction's backend). */
  readonly blocker: Option.Option<string>
}

/**
 * How far behind its primary the PostgreSQL hot standby a store reads from is (see
 * `SqlEventStore.layerStandby`), as the standby sees it.
 */
export interface ReplicationLag {
  /**
   * Seconds since the last transaction the standby replayed committed on the primary, while WAL it received
   * waits to be replayed; 0 when it replayed all it received (so 0 too when nothing reaches it: see
   * `receiving`).
   */
  readonly seconds: number
  /** Bytes of WAL the standby received and has not replayed yet. */
  readonly bytes: number
  /** Whether the standby's WAL receiver runs (false: the primary is unreachable, or replication stopped). */
  readonly receiving: boolean
}

/**
 * The event store service.
 *
 * **Gotchas**: `readAll` reads up to the end of the log as it is while reading, then completes; it is
 * not a subscription (projections poll or are woken, and resume from their checkpoint). Resume from
 * {@link Event.checkpointOf} the last event handled, never from its bare `position`. An append whose
 * caller is interrupted, or that fails with `EventStoreError` (the connection broke, a timeout), may
 * still have been written: retry it with the same event ids, which the store then answers with the
 * original result (idempotent append).
 *
 * **Stream lifecycle** (every store, the same way):
 * - `deleteStream` (soft delete) puts a tombstone on the stream: appends to it and `readStream` fail with
 *   {@link StreamDeleted}; its events stay in place, and **`readAll` still returns them** (as EventStoreDB
 *   keeps them in `$all`), so a projection misses nothing and a rebuild sees the same log.
 *   `undeleteStream` lifts the tombstone: reads and appends work again, versions continuing.
 * - `hardDeleteStream` removes the stream's events, its unique values and its command records, and keeps a
 *   tombstone: the id can never be written again (appends fail with {@link StreamDeleted} `hard`, as in
 *   EventStoreDB by default), so no retried append resurrects the deleted events. Snapshots live in their
 *   own store: delete them there (`SnapshotStore` `deleteStream`). `readAll` no longer returns the events; every other event keeps its
 *   position, so a checkpointed reader misses nothing, and a rebuild sees the log without them.
 * - `truncateStream(id, before)` removes the stream's events below version `before` (from `readStream` and
 *   `readAll` alike: they are gone), keeping the version numbering: reads start at `before`, appends
 *   continue at the next version. An aggregate whose snapshot covers the removed part loads as before;
 *   without one, its state is folded from the first event kept, **which changes the state**. A retried
 *   append whose events were truncated is no longer recognized as a retry (their ids are gone): with an
 *   `Exact` expected version it conflicts, with `Any` it writes them again.
 * - `applyRetention(cut)` truncates every live stream of a category by a retention rule (see {@link RetentionCut}
 *   and `Retention`, which runs it on a schedule): the same removal as `truncateStream`, stream by stream.
 * - `archiveStream(id, { before })` moves the stream's events below `before` (all of them by default) to the
 *   archive (a table of its own on SQL stores). `readStream` no longer returns them, unless asked with
 *   `includeArchived` (archived then live, in version order); **`readAll` no longer returns them** (as after a
 *   truncation, and a rebuild does not see them). The stream stays live: appends continue its numbering.
 *   Truncating or hard-deleting a stream removes its archived events below the cut too.
 * - `streamVersion` reports the last version a stream reached, deleted, truncated or archived alike.
 *
 * **Gotchas**: deleting a stream does not undo what its events caused. Outbox messages published stay
 * published; read models keep the rows projections made from the events until rebuilt (after a hard
 * delete or a truncation, a rebuild no longer sees them; after a soft delete it still does); sagas keep
 * their state and pending timeouts. See `docs/stores.md`.
 */
export class EventStore extends Context.Tag("effect-eventsourcing/EventStore")<
  EventStore,
  {
    /** Appends events to one stream atomically, if the expected version holds. */
    readonly append: (
      streamId: string,
      events: ReadonlyArray<Event.EventData>,
      options?: AppendOptions
    ) => Effect.Effect<
      AppendResult,
      | ConcurrencyConflict
      | InvalidAppend
      | UniqueConstraintViolation
      | DuplicateCommand
      | StreamDeleted
      | Event.InvalidStreamId
      | EventStoreError
    >
    /**
     * Reads one stream's events in version order; fails with `StreamNotFound` if it never had any, with
     * `StreamDeleted` if it is deleted. A truncated stream's read starts at its first event kept; an archived
     * one's at its first live event, unless `includeArchived`.
     */
    readonly readStream: (
      streamId: string,
      options?: ReadStreamOptions
    ) => Stream.Stream<Event.RecordedEvent, StreamNotFound | StreamDeleted | Event.InvalidStreamId | EventStoreError>
    /**
     * One page of what `readStream` returns, as an array: its first events from the options' start,
     * at most `maxCount` and at most the store's page size (1,000 by default), with the version the next
     * page starts at when the stream has more (pass it as `fromVersion`). The same events and failures as
     * `readStream`, without the cost of running a `Stream` (on Effect 3 some 100 µs, where reading a few
     * events takes a few): for loads that fold what they read, as a command handler's.
     */
    readonly readStreamPage: (
      streamId: string,
      options?: ReadStreamOptions
    ) => Effect.Effect<StreamPage, StreamNotFound | StreamDeleted | Event.InvalidStreamId | EventStoreError>
    /** Reads all events in global order after a checkpoint, up to the current end. */
    readonly readAll: (options?: ReadAllOptions) => Stream.Stream<Event.RecordedEvent, EventStoreError>
    /**
     * One page of what `readAll` returns, as an array: its first events after `after`, at most `batchSize`
     * (default 500) and at most `maxCount`, with where the next page starts when this one is full. The same
     * events, order and failures as `readAll`, without the cost of running a `Stream` (on Effect 3 some
     * 200 µs a page): for readers that handle a batch at a time, as projection runners do.
     */
    readonly readAllPage: (options?: ReadAllOptions) => Effect.Effect<AllPage, EventStoreError>
    /**
     * The checkpoint of the last event `readAll` would return now ({@link Event.start} when none): how far
     * readers can get, for lag reports.
     */
    readonly head: Effect.Effect<Event.Checkpoint, EventStoreError>
    /**
     * The committed events (of those the options select) that `readAll` cannot return yet, if any: none on
     * stores whose readers are never held back (memory, SQLite, MySQL). See {@link HeldBack}.
     */
    readonly heldBack: (options?: HeldBackOptions) => Effect.Effect<Option.Option<HeldBack>, EventStoreError>
    /**
     * Only on a store reading a hot standby (`SqlEventStore.layerStandby`): how far behind its primary the
     * standby is; none once it is promoted.
     */
    readonly replication?: Effect.Effect<Option.Option<ReplicationLag>, EventStoreError>
    /** The stream's current version; 0 when it has no events. */
    readonly streamVersion: (streamId: string) => Effect.Effect<number, Event.InvalidStreamId | EventStoreError>
    /** The record of a command handled within the command TTL, if any. */
    readonly findCommand: (commandId: string) => Effect.Effect<Option.Option<CommandRecord>, EventStoreError>
    /**
     * Soft-deletes a stream (a tombstone, see above); deleting a soft-deleted stream again does nothing.
     * Fails with `StreamNotFound` when it never had events, `StreamDeleted` when it was deleted for good.
     */
    readonly deleteStream: (
      streamId: string,
      options?: DeleteStreamOptions
    ) => Effect.Effect<
      void,
      StreamNotFound | StreamDeleted | ConcurrencyConflict | Event.InvalidStreamId | EventStoreError
    >
    /** Undoes a soft delete (nothing on a live stream); fails with `StreamDeleted` on a hard-deleted stream. */
    readonly undeleteStream: (
      streamId: string
    ) => Effect.Effect<void, StreamNotFound | StreamDeleted | Event.InvalidStreamId | EventStoreError>
    /**
     * Deletes a stream for good (see above): its events, unique values and command records; a soft-deleted
     * stream too. Deleting it again does nothing. Fails with `StreamNotFound` when it never had events.
     */
    readonly hardDeleteStream: (
      streamId: string,
      options?: DeleteStreamOptions
    ) => Effect.Effect<void, StreamNotFound | ConcurrencyConflict | Event.InvalidStreamId | EventStoreError>
    /**
     * Removes the stream's events below version `before` (see above), all of them when `before` is past
     * its last version; returns how many it removed. Fails with `StreamDeleted` on a deleted stream.
     */
    readonly truncateStream: (
      streamId: string,
      before: number
    ) => Effect.Effect<number, StreamNotFound | StreamDeleted | Event.InvalidStreamId | EventStoreError>
    /**
     * Moves the stream's events below `before` (all of them by default) to the archive (see above); returns
     * how many it moved. Fails with `StreamDeleted` on a deleted stream.
     */
    readonly archiveStream: (
      streamId: string,
      options?: ArchiveStreamOptions
    ) => Effect.Effect<number, StreamNotFound | StreamDeleted | Event.InvalidStreamId | EventStoreError>
    /**
     * Truncates every live stream of the cut's category by its rule (see {@link RetentionCut}): what
     * `truncateStream` does, stream by stream; deleted streams are left alone. Returns what it removed.
     */
    readonly applyRetention: (cut: RetentionCut) => Effect.Effect<RetentionResult, EventStoreError>
  }
>() {}
