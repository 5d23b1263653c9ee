/**
 * The event bus on NATS JetStream: each group is a durable pull consumer on the stream the outbox relay
 * publishes to (`NatsPublisher`), with explicit acks; the members of a group (in any process) pull from
 * the same consumer and so share its messages. Failed messages are retried with backoff, then
 * dead-lettered; acks, dead letters, ack deadlines and the Gotchas: {@link make}.
 */
import { headers as natsHeaders, type MsgHdrs, nanos, type Subscription } from "@nats-io/transport-node"
import { AckPolicy, type JsMsg, jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream"
import * as DateTime from "effect/DateTime"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Event from "../Event.js"
import * as EventBus from "../EventBus.js"
import { consumerInfoOrUndefined, streamInfoOrUndefined } from "./internal.js"
import { Nats } from "./Nats.js"
import { token } from "./NatsPublisher.js"

/** Options of {@link layer}. */
export interface Options {
  /** The JetStream stream the relay publishes to (see `NatsPublisher`). */
  readonly stream: string
  /** Its first subject token; default `"events"`. */
  readonly subjectPrefix?: string
  /** Where dead letters go; default `<stream>_DEAD` (created if missing, subjects `<name>.>`). */
  readonly deadLetterStream?: string
  /** How long a delivery may go unacknowledged before JetStream redelivers it; default 30 seconds. */
  readonly ackWait?: Duration.DurationInput
  /** Messages pulled per request; default 16 (see the module doc). */
  readonly fetchSize?: number
  /**
   * Copies of the dead-letter stream it creates, on as many servers of a cluster; default 1 (use the
   * event stream's, see `NatsPublisher`). The groups' consumers take the event stream's replicas.
   */
  readonly replicas?: number
}

/**
 * Builds the bus on the `Nats` connection; the event stream must exist (the publisher creates it).
 *
 * - A handled message is acked; a failed one is nak'ed with the subscription's backoff delay; the last
 *   allowed delivery that fails is published to the dead-letter stream with the failure, then terminated.
 * - A message whose deliveries ran out without any verdict (a member crashed, or its handler outlived the
 *   ack wait every time) is reported by JetStream's `MAX_DELIVERIES` advisory only: one member of the
 *   group (a queue subscription) reads the message back from the stream and dead-letters it.
 * - Dead letters are messages on `<deadLetterStream>.<group>` (body: group, reason, time and the message),
 *   with the message id `<group>:<event id>`, so a dead letter reported twice is stored once.
 * - When its handler starts, and every third of the ack wait while it runs, a message's ack deadline is
 *   extended (`working`). The others of a fetched batch wait meanwhile: keep `fetchSize` times the
 *   handler's time well under the ack wait, or they are redelivered (to another member) while they wait.
 *
 * **Gotchas**: a nak'ed message is redelivered after later messages (JetStream), so per-stream order holds
 * only while nothing is redelivered. Advisories are not durable: a group with no member running when its
 * deliveries run out leaves the message unacknowledged, not dead-lettered. With several `categories` the
 * consumer takes every subject and skips (acks) the others in the client (one filter subject per consumer
 * before NATS 2.10); the consumer records the group's categories, and a member with other ones is refused
 * (it would ack unhandled what it skips): a group's categories do not change, a new set is a new group.
 * A consumer deleted under a running group is made again, from the start of the stream (at-least-once:
 * the group sees its messages again). A member refused the advisories subscription (permissions) fails to
 * subscribe; one whose subscription fails later logs it and subscribes again (permissions taken away by a
 * configuration reload end a queue subscription without the client being told, on NATS 2.9).
 */
export const make = (options: Options): Effect.Effect<EventBus.EventBus["Type"], EventBus.EventBusError, Nats> =>
  Effect.gen(function* () {
    const { connection } = yield* Nats
    const failed = (operation: string) => (cause: unknown) =>
      new EventBus.EventBusError({ operation, detail: cause instanceof Error ? cause.message : String(cause) })
    const prefix = options.subjectPrefix ?? "events"
    const deadStream = options.deadLetterStream ?? `${options.stream}_DEAD`
    const ackWait = Duration.toMillis(options.ackWait ?? "30 seconds")
    const fetchSize = Math.max(1, options.fetchSize ?? 16)
    const jsm = yield* Effect.tryPromise({ try: () => jetstreamManager(connection), catch: failed("connect") })
    const js = jetstream(connection)
    const deadStreamInfo = yield* streamInfoOrUndefined(jsm, deadStream).pipe(
      Effect.mapError(failed("dead-letter stream info"))
    )
    if (deadStreamInfo === undefined) {
      yield* Effect.tryPromise({
        try: () =>
          jsm.streams.add({
            name: deadStream,
            subjects: [`${deadStream}.>`],
            storage: StorageType.File,
            num_replicas: options.replicas ?? 1
          }),
        catch: failed("create dead-letter stream")
      })
    }

    /**
     * Publishes a dead letter. It fits in a NATS message whatever the failure: a long reason is cut, and
     * data that would not fit is left out (the event is in the store, under its id). Its message id is the
     * group and the message's id, percent-encoded (a foreign message's id may hold what a header cannot).
     */
    const deadLetter = (group: string, message: EventBus.Message, reason: string) =>
      Effect.gen(function* () {
        const at = DateTime.formatIso(yield* DateTime.now)
        const shortReason = reason.length > maxReasonLength ? `${reason.slice(0, maxReasonLength)}… (cut)` : reason
        const letter = (data: unknown) =>
          JSON.stringify({ group, reason: shortReason, at, message: { ...message, data } })
        const full = letter(message.data)
        const maxPayload = connection.info?.max_payload ?? 1024 * 1024
        // headers and the subject take the rest of a message
        const body =
          Buffer.byteLength(full) <= maxPayload - 1024
            ? full
            : letter({ omitted: `the data does not fit in a dead letter; it is event ${message.id} in the store` })
        // the message is terminated only after this; retried a while, since advisories are not redelivered
        yield* Effect.tryPromise({
          try: () =>
            js.publish(`${deadStream}.${group}`, body, { msgID: `${group}:${encodeURIComponent(message.id)}` }),
          catch: failed("dead-letter")
        }).pipe(Effect.retry(retryDeadLetter))
        yield* Effect.logError(`${group}: message ${message.id} dead-lettered`)
      })

    /**
     * Makes the group's durable consumer, or updates the settings a running group may change. Its
     * description records the group's categories: several categories share one filter subject (every
     * subject), so only the description tells a member with other categories, which would ack unhandled
     * the messages it skips, from one of the group.
     */
    const ensureConsumer = (subscription: EventBus.SubscribeOptions<unknown, unknown>) =>
      Effect.gen(function* () {
        const categories = subscription.categories
        const filter =
          categories !== undefined && categories.length === 1 ? `${prefix}.${token(categories[0]!)}.>` : `${prefix}.>`
        const description = groupDescription(categories)
        const settings = {
          max_deliver: subscription.maxDeliveries ?? EventBus.defaultMaxDeliveries,
          ack_wait: nanos(ackWait),
          description
        }
        // only a definite "not found" makes it (a leader election in a cluster times requests out)
        const existing = yield* consumerInfoOrUndefined(jsm, options.stream, subscription.group).pipe(
          Effect.mapError(failed("subscribe"))
        )
        if (existing !== undefined && existing.config.filter_subject !== filter) {
          return yield* failed("subscribe")(
            `group ${subscription.group} exists with filter ${existing.config.filter_subject}`
          )
        }
        const recorded = existing?.config.description
        // a consumer made before descriptions were recorded gets one now
        if (recorded !== undefined && recorded.startsWith(descriptionPrefix) && recorded !== description) {
          return yield* failed("subscribe")(
            `group ${subscription.group} exists with other categories (${recorded.slice(descriptionPrefix.length)})`
          )
        }
        yield* Effect.tryPromise({
          try: () =>
            existing === undefined
              ? jsm.consumers.add(options.stream, {
                  durable_name: subscription.group,
                  ack_policy: AckPolicy.Explicit,
                  filter_subject: filter,
                  ...settings
                })
              : jsm.consumers.update(options.stream, subscription.group, settings),
          catch: failed("subscribe")
        })
      })

    /** One delivery: handled -> ack, failed -> nak with delay, out of deliveries -> dead letter + term. */
    const handle = <E, R>(subscription: EventBus.SubscribeOptions<E, R>, msg: JsMsg) =>
      Effect.gen(function* () {
        const message = messageOf(msg)
        if (message === undefined) {
          yield* deadLetter(subscription.group, unreadable(msg), `not an event message (subject ${msg.subject})`)
          return msg.term()
        }
        if (!EventBus.accepts(subscription.categories, message.category)) return msg.ack()
        // the ack deadline ran since the fetch: extend it now, and while the handler runs
        const extend = Effect.sync(() => msg.working())
        const verdict = yield* EventBus.attempt(subscription, message).pipe(
          Effect.raceFirst(
            Effect.forever(Effect.zipRight(extend, Effect.sleep(Duration.millis(Math.max(1, ackWait / 3)))))
          )
        )
        if (verdict._tag === "handled") return msg.ack()
        if (verdict._tag === "retry") return msg.nak(Duration.toMillis(verdict.delay))
        yield* deadLetter(subscription.group, message, verdict.reason)
        msg.term()
      })

    /**
     * Pulls batches for as long as the scope lasts; any failure (a broken connection...) is logged and
     * pulling starts again. A message whose handling failed in an unexpected way, or was interrupted by
     * the scope closing, is nak'ed for a prompt redelivery.
     */
    const pull = <E, R>(subscription: EventBus.SubscribeOptions<E, R>): Effect.Effect<never, never, R> =>
      Effect.gen(function* () {
        // made again if it is gone (deleted, or lost with a memory-storage server): redelivers from the start
        yield* ensureConsumer(subscription as EventBus.SubscribeOptions<unknown, unknown>)
        const consumer = yield* Effect.tryPromise(() => js.consumers.get(options.stream, subscription.group))
        while (true) {
          yield* Effect.scoped(
            Effect.gen(function* () {
              const batch = yield* Effect.acquireRelease(
                Effect.tryPromise(() => consumer.fetch({ max_messages: fetchSize, expires: 2_000 })),
                (batch) => Effect.sync(() => batch.stop())
              )
              const messages = batch[Symbol.asyncIterator]()
              while (true) {
                const next = yield* Effect.tryPromise(() => messages.next())
                if (next.done === true) return
                const msg = next.value
                yield* handle(subscription, msg).pipe(
                  Effect.onInterrupt(() => Effect.sync(() => msg.nak())),
                  Effect.catchAllCause((cause) =>
                    Effect.zipRight(
                      Effect.sync(() => msg.nak()),
                      Effect.logWarning(`${subscription.group}: message ${msg.seq} not handled`, cause)
                    )
                  )
                )
              }
            })
          )
        }
      }).pipe(
        Effect.catchAllCause((cause) =>
          Effect.zipRight(
            Effect.logWarning(`${subscription.group}: pulling failed; retrying`, cause),
            Effect.sleep("1 second")
          )
        ),
        Effect.forever
      )

    /** Subscribes to the group's advisories; a subscription the server refuses (permissions) is an error. */
    const subscribeAdvisories = (group: string) =>
      Effect.acquireRelease(
        Effect.try({
          try: () =>
            connection.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${options.stream}.${group}`, {
              queue: `${group}-advisories`
            }),
          catch: failed("subscribe to advisories")
        }),
        (subscription) =>
          Effect.sync(() => {
            if (!subscription.isClosed()) subscription.unsubscribe()
          })
      ).pipe(
        // the server answers a subscription it refuses before the flush
        Effect.tap((subscription) =>
          Effect.gen(function* () {
            yield* Effect.tryPromise({ try: () => connection.flush(), catch: failed("subscribe to advisories") })
            if (!subscription.isClosed()) return
            const reason = yield* Effect.promise(() => subscription.closed)
            return yield* failed("subscribe to advisories")(reason ?? "refused")
          })
        )
      )

    /**
     * Dead-letters what ran out of deliveries without a verdict (see the module doc). The first subscription
     * is made before this returns (a refusal fails the subscribe); one that fails later (as far as the
     * client is told, see the module doc) is logged and made again, with a capped backoff.
     */
    const watchAdvisories = (group: string) =>
      Effect.gen(function* () {
        const subscribed = yield* Deferred.make<void, EventBus.EventBusError>()
        const session = Effect.scoped(
          Effect.flatMap(subscribeAdvisories(group), (subscription) =>
            Effect.zipRight(Deferred.succeed(subscribed, undefined), readAdvisories(group, subscription))
          )
        ).pipe(
          Effect.tapError((error) => Deferred.fail(subscribed, error)),
          Effect.catchAllCause((cause) => Effect.logError(`${group}: advisories subscription ended; renewing`, cause))
        )
        const watching = yield* Effect.forkScoped(Effect.repeat(session, retryAdvisories))
        yield* Deferred.await(subscribed).pipe(Effect.onError(() => Fiber.interrupt(watching)))
      })

    /** Reads advisories until the subscription ends (an error if the server ended it). */
    const readAdvisories = (group: string, subscription: Subscription) => {
      const advisories = subscription[Symbol.asyncIterator]()
      return Effect.gen(function* () {
        while (true) {
          const next = yield* Effect.tryPromise({
            try: () => advisories.next(),
            catch: failed("read advisories")
          })
          if (next.done === true) {
            const reason = yield* Effect.promise(() => subscription.closed)
            if (reason instanceof Error) return yield* failed("read advisories")(reason)
            return
          }
          yield* Effect.gen(function* () {
            const advisory = next.value.json<{ stream_seq: number; deliveries: number }>()
            const stored = yield* Effect.tryPromise(() =>
              jsm.streams.getMessage(options.stream, { seq: advisory.stream_seq })
            )
            const message = stored === null ? undefined : messageOf(stored)
            if (message === undefined) return
            yield* deadLetter(
              group,
              { ...message, deliveries: advisory.deliveries },
              `delivered ${advisory.deliveries} times without an acknowledgement within the ack wait`
            )
          }).pipe(Effect.catchAllCause((cause) => Effect.logError(`${group}: advisory not handled`, cause)))
        }
      })
    }

    const subscribe = <E, R>(
      subscription: EventBus.SubscribeOptions<E, R>
    ): Effect.Effect<void, EventBus.EventBusError, Scope.Scope | R> =>
      Effect.gen(function* () {
        const problem = EventBus.optionsProblem(subscription as EventBus.SubscribeOptions<unknown, unknown>)
        if (problem !== undefined) return yield* new EventBus.EventBusError({ operation: "subscribe", detail: problem })
        yield* ensureConsumer(subscription as EventBus.SubscribeOptions<unknown, unknown>)
        yield* watchAdvisories(subscription.group)
        yield* Effect.forkScoped(pull(subscription))
      })

    /** Reads the group's dead letters with a throwaway ordered consumer. */
    const deadLetters = (group: string) =>
      Effect.gen(function* () {
        const consumer = yield* Effect.tryPromise(() =>
          js.consumers.get(deadStream, { filter_subjects: `${deadStream}.${group}` })
        )
        const pending = (yield* Effect.tryPromise(() => consumer.info())).num_pending
        const letters: Array<EventBus.DeadLetter> = []
        while (letters.length < pending) {
          const msg = yield* Effect.tryPromise(() => consumer.next({ expires: 2_000 }))
          if (msg === null) break
          const letter = decodeDeadLetter(new TextDecoder().decode(msg.data))
          if (Either.isRight(letter)) letters.push(letter.right)
        }
        yield* Effect.promise(() => consumer.delete().catch(() => false))
        return letters
      }).pipe(Effect.mapError((error) => failed("read dead letters")(error.error)))

    return EventBus.EventBus.of({ subscribe, deadLetters })
  })

/** The bus as a Layer (see {@link make}). */
export const layer = (options: Options): Layer.Layer<EventBus.EventBus, EventBus.EventBusError, Nats> =>
  Layer.effect(EventBus.EventBus, make(options))

/** Longest failure reason a dead letter carries, in characters. */
const maxReasonLength = 8192

const retryDeadLetter = Schedule.exponential("200 millis").pipe(Schedule.intersect(Schedule.recurs(8)))

const retryAdvisories = Schedule.exponential("1 second").pipe(
  Schedule.either(Schedule.spaced("1 minute")),
  Schedule.jittered
)

/** Marks a consumer description written by this bus. */
const descriptionPrefix = "effect-eventsourcing group; categories: "

/** What a group's consumer records of its members' settings (see `ensureConsumer`). */
const groupDescription = (categories: ReadonlyArray<string> | undefined) =>
  descriptionPrefix + EventBus.categoriesKey(categories)

const Body = Schema.parseJson(Schema.Struct({ data: Schema.Unknown, metadata: Event.Metadata }))
const decodeBody = Schema.decodeUnknownEither(Body)

const decodeDeadLetter = Schema.decodeUnknownEither(
  Schema.parseJson(
    Schema.Struct({
      group: Schema.String,
      reason: Schema.String,
      at: Schema.DateTimeUtc,
      message: Schema.Struct({
        id: Schema.String,
        streamId: Schema.String,
        category: Schema.String,
        type: Schema.String,
        schemaVersion: Schema.Number,
        version: Schema.Number,
        data: Schema.Unknown,
        metadata: Event.Metadata,
        deliveries: Schema.Number
      })
    })
  )
)

/** A message published by `NatsPublisher`, or `undefined` if it is not one. */
const messageOf = (msg: {
  readonly headers?: MsgHdrs | undefined
  readonly header?: MsgHdrs
  readonly data: Uint8Array
  readonly info?: { readonly deliveryCount: number }
}): EventBus.Message | undefined => {
  const h = msg.headers ?? msg.header ?? natsHeaders()
  const id = h.get("Nats-Msg-Id")
  const streamId = h.get("Ees-Stream-Id")
  const type = h.get("Ees-Type")
  const version = Number.parseInt(h.get("Ees-Version"), 10)
  const schemaVersion = Number.parseInt(h.get("Ees-Schema-Version"), 10)
  if (id === "" || streamId === "" || type === "" || !(version >= 1) || !(schemaVersion >= 1)) return undefined
  const body = decodeBody(new TextDecoder().decode(msg.data))
  if (Either.isLeft(body)) return undefined
  return {
    id,
    streamId,
    category: Event.categoryOf(streamId),
    type,
    schemaVersion,
    version,
    data: body.right.data,
    metadata: body.right.metadata,
    deliveries: msg.info?.deliveryCount ?? 1
  }
}

/** What a dead letter can say of a message that is not an event. */
const unreadable = (msg: JsMsg): EventBus.Message => ({
  id: msg.headers?.get("Nats-Msg-Id") || `${msg.info.stream}-${msg.seq}`,
  streamId: msg.headers?.get("Ees-Stream-Id") ?? "",
  category: "",
  type: msg.headers?.get("Ees-Type") ?? "",
  schemaVersion: 0,
  version: 0,
  data: new TextDecoder().decode(msg.data),
  metadata: {},
  deliveries: msg.info.deliveryCount
})
