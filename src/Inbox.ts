/**
 * Idempotent consumers: the inbox records which messages a consumer has handled, in the same transaction
 * as the handler's writes, so a redelivered message (at-least-once buses) changes nothing the second time.
 *
 * `once(consumer, id, effect)` claims the message id first and runs `effect` only if the claim is new;
 * both commit together or not at all. On PostgreSQL a second delivery racing the first waits on the
 * first's claim and, once that commits, skips; if the first rolls back, the second runs.
 *
 * **Gotchas**: exactly-once effects need the handler's writes in the inbox's database (the SQL inbox joins
 * the `SqlClient` transaction). Effects elsewhere (an email, another service) stay at-least-once. The
 * memory inbox undoes its own claims on failure, nothing else. On PostgreSQL the claim gives the handler's
 * transaction an id at once: keep handlers short, as a long open transaction holds back the store's
 * global readers (see `SqlEventStore`). Claims are kept until `prune`d: prune
 * only past the longest time a message can be redelivered.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as EventBus from "./EventBus.js"
import * as MemoryTransaction from "./internal/memoryTransaction.js"

/** The inbox failed (database unreachable...); the message was not recorded and may be delivered again. */
export class InboxError extends Schema.TaggedError<InboxError>()("InboxError", {
  operation: Schema.String,
  cause: Schema.Defect,
  /** Whether the operation may pass if retried as is (a lost connection, a timeout); decided where the failure entered. */
  transient: Schema.optionalWith(Schema.Boolean, { default: () => true })
}) {
  override get message() {
    return `Inbox ${this.operation} failed: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/** The inbox service. */
export class Inbox extends Context.Tag("effect-eventsourcing/Inbox")<
  Inbox,
  {
    /**
     * Runs `effect` and records `messageId` as handled by `consumer`, in one transaction, unless it was
     * recorded before: then nothing runs and the result is `None`.
     */
    readonly once: <A, E, R>(
      consumer: string,
      messageId: string,
      effect: Effect.Effect<A, E, R>
    ) => Effect.Effect<Option.Option<A>, E | InboxError, R>
    /** Forgets the messages handled before `olderThan` ago; returns how many. */
    readonly prune: (olderThan: Duration.DurationInput) => Effect.Effect<number, InboxError>
  }
>() {}

/** A subscription whose handler runs at most once per message id (the group is the inbox's consumer). */
export const idempotent = <E, R>(
  subscription: EventBus.SubscribeOptions<E, R>
): EventBus.SubscribeOptions<E | InboxError, R | Inbox> => ({
  ...subscription,
  handle: (message) =>
    Effect.flatMap(Inbox, (inbox) =>
      Effect.asVoid(inbox.once(subscription.group, message.id, subscription.handle(message)))
    )
})

/**
 * An inbox in memory (tests, the embedded default with an in-memory read model). A delivery that finds
 * its message being handled by another waits for that one's outcome, as on PostgreSQL: skipped if it
 * committed, run if it rolled back.
 */
export const makeMemory: Effect.Effect<Inbox["Type"]> = Effect.sync(() => {
  const handled = new Map<string, number>()
  const running = new Map<string, Deferred.Deferred<void>>()
  const keyOf = (consumer: string, messageId: string) => JSON.stringify([consumer, messageId])

  const once = <A, E, R>(
    consumer: string,
    messageId: string,
    effect: Effect.Effect<A, E, R>
  ): Effect.Effect<Option.Option<A>, E, R> =>
    Effect.flatMap(Deferred.make<void>(), (mine) =>
      Effect.suspend(() => {
        const key = keyOf(consumer, messageId)
        if (handled.has(key)) return Effect.succeed(Option.none())
        const other = running.get(key)
        if (other !== undefined) return Effect.zipRight(Deferred.await(other), once(consumer, messageId, effect))
        running.set(key, mine)
        return MemoryTransaction.transactional(
          Effect.gen(function* () {
            handled.set(key, yield* Clock.currentTimeMillis)
            yield* MemoryTransaction.onRollback(() => handled.delete(key))
            return Option.some(yield* effect)
          })
        ).pipe(
          Effect.ensuring(
            Effect.suspend(() => {
              running.delete(key)
              return Deferred.succeed(mine, undefined)
            })
          )
        )
      })
    )

  return Inbox.of({
    once,
    prune: (olderThan) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const before = now - Duration.toMillis(olderThan)
        let pruned = 0
        for (const [key, at] of handled) {
          if (at < before && handled.delete(key)) pruned++
        }
        return pruned
      })
  })
})

/** The memory inbox as a Layer. */
export const layerMemory: Layer.Layer<Inbox> = Layer.effect(Inbox, makeMemory)
