/**
 * A first-come, first-served lock. Effect's semaphore lets a fiber that releases and at once takes again
 * go ahead of the fibers already waiting, which on a synchronous driver (SQLite) starves them for as long
 * as other fibers keep writing; this lock hands itself to the longest waiter instead.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

export interface FairLock {
  /** Runs `effect` holding the lock. */
  readonly withLock: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Takes the lock until the scope closes. */
  readonly take: Effect.Effect<void, never, Scope.Scope>
}

export const make: Effect.Effect<FairLock> = Effect.sync(() => {
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
  const acquire = (restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (!held) {
        held = true
        return Effect.void
      }
      return Effect.flatMap(Deferred.make<void>(), (turn) => {
        waiters.push(turn)
        return Effect.onInterrupt(restore(Deferred.await(turn)), () =>
          Effect.suspend(() => {
            const index = waiters.indexOf(turn)
            if (index === -1) return release // handed to us as we were interrupted: pass it on
            waiters.splice(index, 1)
            return Effect.void
          })
        )
      })
    })

  return {
    withLock: (effect) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.zipRight(acquire(restore), Effect.ensuring(restore(effect), release))
      ),
    take: Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(
        acquire(restore),
        Effect.addFinalizer(() => release)
      )
    )
  }
})
