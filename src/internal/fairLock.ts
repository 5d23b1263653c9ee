/**
 * A first-come, first-served lock. Effect's semaphore lets a fiber that releases and at once takes again
 * go ahead of the fibers already waiting, which on a synchronous driver (SQLite) starves them for as long
 * as other fibers keep writing, and a hot aggregate's commands likewise; this lock hands itself to the
 * longest waiter instead.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"

export interface FairLock {
  /** Runs `effect` holding the lock. */
  readonly withLock: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * Runs `effect` holding the lock if it gets the lock within `patience`, and without it otherwise: for
   * callers whose lock only saves work, where waiting forever could deadlock with a lock held elsewhere.
   */
  readonly withLockWithin: (
    patience: Duration.DurationInput
  ) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Takes the lock until the scope closes. */
  readonly take: Effect.Effect<void, never, Scope.Scope>
  /** Neither held nor waited for. */
  readonly isIdle: () => boolean
}

export const make: Effect.Effect<FairLock> = Effect.sync(() => unsafeMake())

/** {@link make}, outside an effect. */
export const unsafeMake = (): FairLock => {
  let held = false
  const waiters: Array<Deferred.Deferred<void>> = []

  /** Passes the lock to the longest waiter (which then holds it), or frees it. */
  const release = Effect.sync(() => {
    const next = waiters.shift()
    if (next === undefined) held = false
    else Deferred.unsafeDone(next, Effect.void)
  })

  /**
   * Takes the lock, waiting in line if it is held. Runs uninterruptibly but for the wait (`restore`), so
   * a waiter is either still in line (and leaves it) or holds the lock (and passes it on) when interrupted.
   */
  const acquire = (
    restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>,
    patience?: Duration.DurationInput
  ): Effect.Effect<boolean> =>
    Effect.suspend(() => {
      if (!held) {
        held = true
        return Effect.succeed(true)
      }
      return Effect.flatMap(Deferred.make<void>(), (turn) => {
        waiters.push(turn)
        /** Leaves the line; false if the lock was handed to us meanwhile (we hold it then). */
        const leave = () => {
          const index = waiters.indexOf(turn)
          if (index === -1) return false
          waiters.splice(index, 1)
          return true
        }
        // out of patience: leave the line, unless the lock was handed to us meanwhile
        const waited: Effect.Effect<boolean> =
          patience === undefined
            ? Effect.as(Deferred.await(turn), true)
            : Effect.map(Effect.timeoutOption(Deferred.await(turn), patience), (turned) =>
                Option.isSome(turned) ? true : !leave()
              )
        // handed to us as we were interrupted: pass it on
        return Effect.onInterrupt(restore(waited), () => (leave() ? Effect.void : release))
      })
    })

  return {
    withLock: (effect) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.zipRight(acquire(restore), Effect.ensuring(restore(effect), release))
      ),
    withLockWithin: (patience) => (effect) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(acquire(restore, patience), (holds) =>
          holds ? Effect.ensuring(restore(effect), release) : restore(effect)
        )
      ),
    take: Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(
        acquire(restore),
        Effect.addFinalizer(() => release)
      )
    ),
    isIdle: () => !held && waiters.length === 0
  }
}
