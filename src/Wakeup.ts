/**
 * Wake-up hints for readers that tail the global log (projection runners, the outbox relay, sagas).
 *
 * A hint means "events were committed, read again". It carries nothing and may be coalesced, spurious
 * or lost, so readers also poll: hints only cut the latency of a live tail. Event stores send one after
 * each append they commit when a `Wakeup` is in their context; readers in the same context receive it.
 * `layer` works within one process; `Postgres.layerWakeup` also crosses processes with LISTEN/NOTIFY.
 *
 * **Gotchas**: an append that joins a caller's transaction hints before that transaction commits; a
 * reader woken then finds nothing new and waits for the next hint or its poll interval.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"

/** The wake-up hint service. */
export class Wakeup extends Context.Tag("effect-eventsourcing/Wakeup")<
  Wakeup,
  {
    /** Signals that events were committed. Never blocks, never fails. */
    readonly notify: Effect.Effect<void>
    /** Subscribes for the scope's lifetime; the queue receives the hints sent after subscribing, coalesced. */
    readonly subscribe: Effect.Effect<Queue.Dequeue<void>, never, Scope.Scope>
  }
>() {}

/** In-process hints: a sliding hub, so a burst of appends leaves one pending hint per subscriber. */
export const make: Effect.Effect<Wakeup["Type"]> = Effect.map(PubSub.sliding<void>(1), (hub) =>
  Wakeup.of({ notify: Effect.asVoid(PubSub.publish(hub, undefined)), subscribe: PubSub.subscribe(hub) })
)

/** In-process hints, shared by every store and reader built with this Layer. */
export const layer: Layer.Layer<Wakeup> = Layer.effect(Wakeup, make)

/**
 * Waits for the next hint or `pollInterval`, whichever comes first, then drops the hints that piled up
 * meanwhile (one read covers them all). Without a subscription it just sleeps. Returns whether a hint
 * came.
 */
export const awaitHint = (
  subscription: Queue.Dequeue<void> | undefined,
  pollInterval: Duration.DurationInput
): Effect.Effect<boolean> =>
  subscription === undefined
    ? Effect.as(Effect.sleep(pollInterval), false)
    : Queue.take(subscription).pipe(
        Effect.timeoutOption(pollInterval),
        Effect.tap(() => Queue.takeAll(subscription)),
        Effect.map(Option.isSome)
      )
