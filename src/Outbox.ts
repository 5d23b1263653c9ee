/**
 * The transactional outbox: committed events published to a broker (NATS JetStream, see
 * `nats/NatsPublisher`) by a relay running as a scoped fiber.
 *
 * The event log is the outbox: the relay is a checkpointed runner over the store's no-skip global
 * order, so it sees exactly the events whose transactions committed (a rolled-back append is never
 * published), and it moves its checkpoint only after the broker acknowledged a batch (never before).
 * Publishing is at-least-once, under the event ids as message ids. Ordering, integration messages
 * ({@link enqueue}) and the Gotchas: {@link relay}.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as CheckpointStore from "./CheckpointStore.js"
import * as Event from "./Event.js"
import * as EventStore from "./EventStore.js"
import * as Metrics from "./Metrics.js"
import * as Projection from "./Projection.js"
import type * as Upcaster from "./Upcaster.js"

/**
 * Publishing failed (or the broker is configured otherwise); the events may be published again. A
 * `transient` error (the default: the broker is unreachable, a timeout) is retried for as long as it
 * lasts; one that is not (the broker refuses this message: too large, a bad subject) makes the relay
 * park the event as a dead letter.
 */
export class PublishError extends Schema.TaggedError<PublishError>()("PublishError", {
  operation: Schema.String,
  detail: Schema.String,
  transient: Schema.optionalWith(Schema.Boolean, { default: () => true })
}) {
  override get message() {
    return `Publishing (${this.operation}) failed: ${this.detail}`
  }
}

/** What the broker said of one published event. */
export interface Ack {
  readonly eventId: string
  readonly sequence: number
  /** The event was already there (published before, within the broker's duplicate window). */
  readonly duplicate: boolean
}

/** Where the relay publishes. */
export class Publisher extends Context.Tag("effect-eventsourcing/Publisher")<
  Publisher,
  {
    /** Publishes the events in order and returns their acks, in the same order. */
    readonly publish: (events: ReadonlyArray<Event.RecordedEvent>) => Effect.Effect<ReadonlyArray<Ack>, PublishError>
    /** Where an event goes (a subject, a topic). */
    readonly subjectOf: (event: Event.RecordedEvent) => string
  }
>() {}

/** Options of {@link relayLayer}. */
export interface RelayOptions extends Projection.RunOptions {
  /** The relay's name (its checkpoints); default `"outbox"`. */
  readonly name?: string
  /** Only events of these categories; default all. */
  readonly categories?: ReadonlyArray<string>
  /** Default 1. */
  readonly partitions?: number
  /** Events per publish and checkpoint; default 500. */
  readonly batchSize?: number
}

/** Every recorded event, as it is: the relay publishes without decoding. */
const asIs: Upcaster.EventCodec<Event.RecordedEvent> = {
  types: new Set(),
  storedTypes: new Set(),
  currentVersion: () => 0,
  schemas: new Map(),
  upcasters: [],
  encode: () => Effect.die("the outbox relay does not encode events"),
  decode: (recorded) => Effect.succeed([recorded]),
  decodeEither: (recorded) => Either.right([recorded]),
  encodeUnsealed: () => Effect.die("the outbox relay does not encode events"),
  // personal fields are published sealed, as stored
  personal: false,
  open: Effect.succeed
}

/**
 * The relay as a projection: its handler publishes the batch and waits for every ack. Each publish is
 * timed in `eventsourcing_outbox_publish_duration_seconds{relay}`; the backlog and the age of the oldest
 * unpublished event are the runner's lag gauges (`eventsourcing_projection_lag_events` and
 * `eventsourcing_projection_lag_seconds` with `projection` = the relay's name), see `Metrics`.
 *
 * A relay stopped between the ack and its checkpoint publishes the batch again, under the same message
 * ids (the event ids), which JetStream drops as duplicates within its duplicate window.
 *
 * Ordering: one relay per partition at a time (partition leases, as for projections), publishing each
 * batch in order; several processes can run the relay, and share its partitions.
 *
 * **Gotchas**: a broker outage stalls the relay (retried with capped backoff, state `stalled`) and the
 * status's lag in seconds is the age of the oldest unpublished event: keep it well inside JetStream's
 * duplicate window, or a republished event may be stored twice. The relay holds no transaction open while
 * it publishes (the checkpoint commits after the acks).
 *
 * Integration messages other than domain events are enqueued with {@link enqueue}: stored as events of
 * their topic's streams, in the caller's transaction, and relayed like any event (so the same guarantees
 * hold for them, and projections can read them too).
 */
export const relay = (
  options: RelayOptions = {}
): Projection.Projection<Event.RecordedEvent, PublishError, Publisher> => {
  const name = options.name ?? "outbox"
  const publishDuration = Metric.tagged(Metrics.outboxPublishDurationSeconds, "relay", name)
  return {
    name,
    version: 1,
    codec: asIs,
    types: undefined,
    categories: options.categories,
    handleBatch: (events) =>
      Effect.flatMap(Publisher, (publisher) =>
        Effect.asVoid(publisher.publish(events.map((e) => e.event))).pipe(
          Metric.trackDurationWith(publishDuration, Duration.toSeconds)
        )
      ),
    truncate: Effect.void,
    partitions: options.partitions ?? 1,
    batchSize: options.batchSize ?? 500,
    // a broker outage is retried for as long as it lasts; an event the broker refuses is parked
    onPoison: "skip",
    // publishing holds no transaction open; the checkpoint commits once the broker acked
    transactional: false,
    // outages are retried apart (until they pass); any other failure is the broker refusing the event
    retry: Schedule.stop
  }
}

/** The relay as a scoped fiber (see {@link relay}); its status goes to the projection `Registry`. */
export const relayLayer = (
  options: RelayOptions = {}
): Layer.Layer<
  never,
  CheckpointStore.PartitionCountMismatch | CheckpointStore.CheckpointStoreError,
  EventStore.EventStore | CheckpointStore.CheckpointStore | Publisher
> => Projection.layer(relay(options), options)

/** An integration message for {@link enqueue}. */
export interface Message {
  /** The topic: the category of the stream the message is stored in, so the subject's second token. */
  readonly topic: string
  /** What the message is about, within the topic: messages with the same key keep their order. */
  readonly key: string
  readonly type: string
  /** Plain JSON. */
  readonly data: unknown
  readonly metadata?: Event.Metadata
  /** The message id (the broker's dedupe key); default a fresh UUIDv7. Retries with the same id store it once. */
  readonly id?: string
}

/**
 * Enqueues an integration message: appends it as an event of stream `<topic>-<key>`. Inside a
 * `sql.withTransaction` (SQL stores) it commits or rolls back with the caller's writes, and the relay
 * publishes it only once committed (the transactional outbox).
 */
export const enqueue = (
  message: Message
): Effect.Effect<
  EventStore.AppendResult,
  | EventStore.InvalidAppend
  | EventStore.ConcurrencyConflict
  | EventStore.UniqueConstraintViolation
  | EventStore.DuplicateCommand
  | EventStore.StreamDeleted
  | Event.InvalidStreamId
  | EventStore.EventStoreError,
  EventStore.EventStore
> =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const streamId = yield* Event.makeStreamId(message.topic, message.key)
    const event = yield* Event.make({
      type: message.type,
      data: message.data,
      ...(message.metadata === undefined ? {} : { metadata: message.metadata }),
      ...(message.id === undefined ? {} : { eventId: message.id })
    })
    return yield* store.append(streamId, [event])
  })
