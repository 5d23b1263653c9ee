/**
 * Integration events for other services and bounded contexts: the outbox relay publishes committed
 * events (see `Outbox`), subscribers receive them as {@link Message}s in consumer groups, at least once,
 * with retries and dead letters per group. Two implementations: {@link layerMemory} (in-process, the
 * embedded default) and `nats/NatsEventBus` (JetStream durable pull consumers). Groups, delivery and
 * the Gotchas: {@link EventBus}.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Event from "./Event.js"
import { type Ack, Publisher, PublishError } from "./Outbox.js"

/** An integration event as a subscriber receives it. */
export interface Message {
  /** The event id: the same on every delivery, the key for idempotent handling. */
  readonly id: string
  readonly streamId: string
  readonly category: string
  readonly type: string
  readonly schemaVersion: number
  /** The event's version in its stream. */
  readonly version: number
  readonly data: unknown
  readonly metadata: Event.Metadata
  /** 1 on the first delivery, 2 on the first redelivery... */
  readonly deliveries: number
}

/** A message a group gave up on. */
export interface DeadLetter {
  readonly group: string
  readonly message: Message
  /** The last failure (or why no handler result came). */
  readonly reason: string
  readonly at: DateTime.Utc
}

/** A subscription: a member of a consumer group. */
export interface SubscribeOptions<E, R> {
  /** The consumer group (a durable consumer on JetStream): letters, digits, `_`, `-`. */
  readonly group: string
  /** Only events of these categories; default all. */
  readonly categories?: ReadonlyArray<string>
  readonly handle: (message: Message) => Effect.Effect<void, E, R>
  /** Deliveries before the message is dead-lettered; default 5. */
  readonly maxDeliveries?: number
  /** Delay before the first redelivery, doubling after each; default 1 second. */
  readonly retryDelay?: Duration.DurationInput
  /** Largest delay between deliveries; default 1 minute. */
  readonly maxRetryDelay?: Duration.DurationInput
}

/** The bus failed (cannot subscribe, cannot read dead letters). */
export class EventBusError extends Schema.TaggedError<EventBusError>()("EventBusError", {
  operation: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `Event bus ${this.operation} failed: ${this.detail}`
  }
}

/**
 * The event bus service.
 *
 * - A **group** receives every message once; the group's members (subscriptions with the same group
 *   name, in one process or several) share its messages. Each group has its own retries and dead letters.
 * - A failing handler gets the message again after a capped exponential delay, at most `maxDeliveries`
 *   times; then the message is dead-lettered with the last failure as the reason, and the group moves on.
 * - Delivery is at-least-once: make handlers idempotent, e.g. with `Inbox.idempotent`, which records the
 *   message id in the same transaction as the handler's writes.
 *
 * **Gotchas**: per-stream order holds for a group with one member and no redelivery; the in-process bus
 * retries a message before taking the next one (order kept until a dead letter), JetStream redelivers a
 * failed message after later ones. Several members of one group process messages concurrently.
 */
export class EventBus extends Context.Tag("effect-eventsourcing/EventBus")<
  EventBus,
  {
    /** Joins a group until the scope closes; the handler runs in a fiber of that scope. */
    readonly subscribe: <E, R>(options: SubscribeOptions<E, R>) => Effect.Effect<void, EventBusError, Scope.Scope | R>
    /** The group's dead letters, oldest first. */
    readonly deadLetters: (group: string) => Effect.Effect<ReadonlyArray<DeadLetter>, EventBusError>
  }
>() {}

const groupName = /^[A-Za-z0-9_-]{1,64}$/

/** Why the options cannot make a subscription, or `undefined`. */
export const optionsProblem = (options: SubscribeOptions<unknown, unknown>): string | undefined => {
  if (!groupName.test(options.group)) return `group ${JSON.stringify(options.group)} must match ${groupName.source}`
  const max = options.maxDeliveries ?? defaultMaxDeliveries
  if (!Number.isInteger(max) || max < 1) return "maxDeliveries must be a positive integer"
  // no category would take nothing, and ack (skip) every message unhandled
  if (options.categories?.length === 0) return "categories must not be empty (leave them out for all)"
  return undefined
}

/** The categories a group takes, as one text: the same for the same set, whatever the order. */
export const categoriesKey = (categories: ReadonlyArray<string> | undefined): string =>
  categories === undefined ? "all" : JSON.stringify([...new Set(categories)].sort())

/** Deliveries before a dead letter unless configured. */
export const defaultMaxDeliveries = 5

/** How long to wait before delivery `deliveries + 1`, after `deliveries` failed ones. */
export const retryDelay = (options: SubscribeOptions<unknown, unknown>, deliveries: number): Duration.Duration => {
  const initial = Duration.toMillis(options.retryDelay ?? "1 second")
  const max = Duration.toMillis(options.maxRetryDelay ?? "1 minute")
  return Duration.millis(Math.min(max, initial * 2 ** Math.min(30, Math.max(0, deliveries - 1))))
}

/** The message of a recorded event, as first delivered. */
export const messageOf = (event: Event.RecordedEvent): Message => ({
  id: event.eventId,
  streamId: event.streamId,
  category: event.category,
  type: event.type,
  schemaVersion: event.schemaVersion,
  version: event.version,
  data: event.data,
  metadata: event.metadata,
  deliveries: 1
})

/** Whether a group filtering on `categories` takes messages of `category`. */
export const accepts = (categories: ReadonlyArray<string> | undefined, category: string): boolean =>
  categories === undefined || categories.includes(category)

/**
 * Runs the handler on one delivery and reports what became of the message: `handled`, `retry` (after
 * the returned delay) or `dead` (with the reason). An interruption of the subscription's fiber is passed on
 * (no verdict); a handler that interrupts itself has failed like any other.
 */
export const attempt = <E, R>(options: SubscribeOptions<E, R>, message: Message): Effect.Effect<Verdict, never, R> =>
  options.handle(message).pipe(
    Effect.as<Verdict>({ _tag: "handled" }),
    Effect.catchAllCause((cause): Effect.Effect<Verdict> => {
      const reason = Cause.pretty(cause)
      return message.deliveries >= (options.maxDeliveries ?? defaultMaxDeliveries)
        ? Effect.succeed({ _tag: "dead", reason })
        : Effect.as(
            Effect.logWarning(`${options.group}: message ${message.id} failed (delivery ${message.deliveries})`, cause),
            { _tag: "retry", delay: retryDelay(options, message.deliveries) }
          )
    })
  )

/** What became of one delivery. */
export type Verdict =
  | { readonly _tag: "handled" }
  | { readonly _tag: "retry"; readonly delay: Duration.Duration }
  | { readonly _tag: "dead"; readonly reason: string }

// ---------------------------------------------------------------------------------------------------
// in-process implementation
// ---------------------------------------------------------------------------------------------------

interface Delivery {
  readonly message: Message
  readonly done: Deferred.Deferred<void, PublishError>
}

interface Group {
  readonly categories: ReadonlyArray<string> | undefined
  /** Deliveries not yet taken by a member, oldest first. */
  readonly pending: Array<Delivery>
  /** Wakes a waiting member (one signal at a time is enough: a member takes until `pending` is empty). */
  readonly signal: Queue.Queue<void>
  members: number
}

/** Options of {@link makeMemory}. */
export interface MemoryOptions {
  /**
   * Groups a publish must reach: while one of them has no member (the application is starting, or its
   * subscription stopped), publishing fails with a transient `PublishError`, so the relay keeps the
   * messages until it does. A group becomes one of them once joined, for the life of the bus.
   */
  readonly groups?: ReadonlyArray<string>
}

const stopped = (group: string) =>
  new PublishError({ operation: "deliver", detail: `group ${group} has no member running` })

/**
 * The in-process bus, which is also the outbox relay's `Publisher`: a publish returns once every group has
 * handled or dead-lettered each message, so the relay's checkpoint moves only past messages the groups
 * are done with: with the relay, delivery is at-least-once across restarts for the groups declared in the
 * options (and those joined since the bus started).
 *
 * **Gotchas**: a message is retried in place (its group waits), so a slow or failing group holds the
 * relay back. A group's members share its messages: with several, each stream's order is not kept.
 */
export const makeMemory = (
  options: MemoryOptions = {}
): Effect.Effect<{ readonly bus: EventBus["Type"]; readonly publisher: Publisher["Type"] }> =>
  Effect.gen(function* () {
    const groups = new Map<string, Group>()
    const deadLetters: Array<DeadLetter> = []
    let sequence = 0
    const newGroup = (categories: ReadonlyArray<string> | undefined): Effect.Effect<Group> =>
      Effect.map(Queue.sliding<void>(1), (signal) => ({ categories, pending: [], signal, members: 0 }))
    for (const name of options.groups ?? []) groups.set(name, yield* newGroup(undefined))

    const subscribe = <E, R>(
      subscription: SubscribeOptions<E, R>
    ): Effect.Effect<void, EventBusError, Scope.Scope | R> =>
      Effect.gen(function* () {
        const problem = optionsProblem(subscription as SubscribeOptions<unknown, unknown>)
        if (problem !== undefined) return yield* new EventBusError({ operation: "subscribe", detail: problem })
        const fresh = yield* newGroup(subscription.categories)
        const group = yield* Effect.acquireRelease(
          Effect.suspend(() => {
            const known = groups.get(subscription.group)
            // declared groups take their filter from their first member
            const group = known === undefined || (known.members === 0 && known.pending.length === 0) ? fresh : known
            if (group !== fresh && categoriesKey(group.categories) !== categoriesKey(subscription.categories)) {
              return Effect.fail(
                new EventBusError({ operation: "subscribe", detail: `${subscription.group} has other categories` })
              )
            }
            groups.set(subscription.group, group)
            group.members++
            return Effect.succeed(group)
          }),
          (group) => leave(subscription.group, group)
        )
        yield* Effect.forkScoped(Effect.forever(Effect.flatMap(take(group), (d) => deliver(subscription, group, d))))
      })

    /** The next delivery, owned by the caller as soon as it is returned (nothing lost to an interruption). */
    const take = (group: Group): Effect.Effect<Delivery> =>
      Effect.suspend(() => {
        const next = group.pending.shift()
        if (next === undefined) return Effect.zipRight(Queue.take(group.signal), take(group))
        if (group.pending.length > 0) group.signal.unsafeOffer(undefined)
        return Effect.succeed(next)
      })

    // the last member out fails what is still waiting: the relay publishes it again later
    const leave = (name: string, group: Group) =>
      Effect.suspend(() => {
        if (--group.members > 0) return Effect.void
        const left = group.pending.splice(0)
        return Effect.forEach(left, (delivery) => Deferred.fail(delivery.done, stopped(name)), { discard: true })
      })

    // retried in place until handled or dead; a member stopped mid-message hands it back to its group
    const deliver = <E, R>(
      subscription: SubscribeOptions<E, R>,
      group: Group,
      delivery: Delivery
    ): Effect.Effect<void, never, R> =>
      Effect.gen(function* () {
        let message = delivery.message
        while (true) {
          const verdict = yield* attempt(subscription, message)
          if (verdict._tag === "handled") break
          if (verdict._tag === "dead") {
            deadLetters.push({ group: subscription.group, message, reason: verdict.reason, at: yield* DateTime.now })
            yield* Effect.logError(`${subscription.group}: message ${message.id} dead-lettered`)
            break
          }
          yield* Effect.sleep(verdict.delay)
          message = { ...message, deliveries: message.deliveries + 1 }
        }
        yield* Deferred.succeed(delivery.done, undefined)
      }).pipe(
        Effect.onInterrupt(() =>
          Effect.sync(() => {
            if (group.members > 1) {
              group.pending.unshift(delivery)
              group.signal.unsafeOffer(undefined)
            } else {
              Deferred.unsafeDone(delivery.done, Effect.fail(stopped(subscription.group)))
            }
          })
        )
      )

    const publish = (events: ReadonlyArray<Event.RecordedEvent>) =>
      Effect.flatMap(Effect.fiberId, (fiberId) =>
        Effect.suspend(() => {
          // all in one synchronous step: no group joins or leaves half-way
          const idle = [...groups].find(([, group]) => group.members === 0)
          if (idle !== undefined) return Effect.fail(stopped(idle[0]))
          const pending: Array<Deferred.Deferred<void, PublishError>> = []
          const acks: Array<Ack> = []
          for (const event of events) {
            const message = messageOf(event)
            for (const group of groups.values()) {
              if (!accepts(group.categories, event.category)) continue
              const done = Deferred.unsafeMake<void, PublishError>(fiberId)
              group.pending.push({ message, done })
              group.signal.unsafeOffer(undefined)
              pending.push(done)
            }
            acks.push({ eventId: event.eventId, sequence: ++sequence, duplicate: false })
          }
          return Effect.as(Effect.forEach(pending, Deferred.await, { discard: true }), acks)
        })
      )

    return {
      bus: EventBus.of({
        subscribe,
        deadLetters: (group) => Effect.sync(() => deadLetters.filter((letter) => letter.group === group))
      }),
      publisher: Publisher.of({ publish, subjectOf: (event) => `${event.category}.${event.streamId}.${event.type}` })
    }
  })

/** The in-process bus as `EventBus` and as the outbox relay's `Publisher` (see {@link makeMemory}). */
export const layerMemory = (options: MemoryOptions = {}): Layer.Layer<EventBus | Publisher> =>
  Layer.effectContext(
    Effect.map(makeMemory(options), ({ bus, publisher }) =>
      Context.make(EventBus, bus).pipe(Context.add(Publisher, publisher))
    )
  )
