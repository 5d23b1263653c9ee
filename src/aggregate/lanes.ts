/**
 * Per-aggregate lanes: commands to one aggregate in one process run one at a time, first come first
 * served, instead of racing each other into conflicts (a hot aggregate with 16 concurrent commands spent
 * most of its time retrying). A lane exists only while commands use it, so memory follows concurrency.
 *
 * A lane saves work, it guarantees nothing: other processes still race, and the store's expected-version
 * check stays what keeps a stale decision from committing.
 *
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FairLock from "../internal/fairLock.js"

/** Runs an effect in the lane of `key`. */
export type Lanes = <A, E, R>(key: string, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/**
 * Lanes whose wait is bounded by `patience`: past it the command runs outside its lane. Two of the
 * caller's own transactions could otherwise wait on each other forever (one holding the lane and waiting
 * for a row the other locked, the other waiting for the lane).
 */
export const make = (patience: Duration.DurationInput): Lanes => {
  const lanes = new Map<string, FairLock.FairLock>()
  return (key, effect) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        let lane = lanes.get(key)
        if (lane === undefined) {
          lane = FairLock.unsafeMake()
          lanes.set(key, lane)
        }
        const used = lane
        return Effect.ensuring(
          restore(used.withLockWithin(patience)(effect)),
          Effect.sync(() => {
            if (used.isIdle() && lanes.get(key) === used) lanes.delete(key)
          })
        )
      })
    )
}
