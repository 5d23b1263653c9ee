// Waiting for a read model or a runner to catch up, as the feature examples do: poll, bounded.
import * as Effect from "effect/Effect"

/** Polls `check` until `done`, and returns what it saw then (bounded: fails saying what it waited for). */
export const waitFor = <A, E, R>(what: string, check: Effect.Effect<A, E, R>, done: (a: A) => boolean) => {
  const poll: Effect.Effect<A, E, R> = Effect.flatMap(check, (a) =>
    done(a) ? Effect.succeed(a) : Effect.zipRight(Effect.sleep("20 millis"), poll)
  )
  return Effect.timeoutFail(poll, {
    duration: "60 seconds",
    onTimeout: () => new Error(`gave up waiting until ${what}`)
  })
}
