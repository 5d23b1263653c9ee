/**
 * Rollback for the memory stores: inside {@link transactional}, a memory store registers how to undo
 * each write ({@link onRollback}); if the transaction fails, the undos run newest first. This gives the
 * memory checkpoint and saga stores the all-or-nothing batches the SQL stores get from the database.
 * Effects outside the memory stores (a read model in a `Ref`, commands sent) are not undone.
 */
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"

const journal = FiberRef.unsafeMake<Option.Option<Array<() => void>>>(Option.none())

/** Runs `effect` as one transaction of the memory stores (nested ones join the outer one). */
export const transactional = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(FiberRef.get(journal), (outer) =>
    Option.isSome(outer)
      ? effect
      : Effect.suspend(() => {
          const undos: Array<() => void> = []
          return Effect.locally(effect, journal, Option.some(undos)).pipe(
            Effect.onError(() => Effect.sync(() => undos.reverse().forEach((undo) => undo())))
          )
        })
  )

/** Registers the undo of a write just made, if a transaction is running. */
export const onRollback = (undo: () => void): Effect.Effect<void> =>
  Effect.flatMap(FiberRef.get(journal), (undos) =>
    Option.isSome(undos) ? Effect.sync(() => void undos.value.push(undo)) : Effect.void
  )
