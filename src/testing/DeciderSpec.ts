/**
 * Given/when/then specifications of deciders, run without a store: `given` past events, `when` a
 * command, `then` the expected events (or `thenFails` with the expected domain error).
 *
 * Events are compared by their encoded form (what the store would keep), so classes and plain structs
 * compare by content. A mismatch fails the Effect with {@link DeciderSpecFailure}, which test runners
 * report like any other failure.
 *
 * ```ts
 * it.effect("a withdrawal needs funds", () =>
 *   DeciderSpec.make(Account).given([opened, deposited(10)]).when(withdraw(20)).thenFails(new InsufficientFunds(...)))
 * ```
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Equal from "effect/Equal"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Aggregate from "../Aggregate.js"

/** The decider did not behave as specified. */
export class DeciderSpecFailure extends Schema.TaggedError<DeciderSpecFailure>()("DeciderSpecFailure", {
  expected: Schema.Unknown,
  actual: Schema.Unknown,
  description: Schema.String
}) {
  override get message() {
    return `${this.description}\n  expected: ${show(this.expected)}\n  actual:   ${show(this.actual)}`
  }
}

/** A specification in progress. */
export interface Spec<C, E extends { readonly _tag: string }, S, DE> {
  readonly given: (events: ReadonlyArray<E>) => Given<C, E, S, DE>
}

export interface Given<C, E extends { readonly _tag: string }, S, DE> {
  readonly when: (command: C) => When<E, S, DE>
}

export interface When<E, S, DE> {
  /** The command produces exactly these events, in order. */
  readonly then: (expected: ReadonlyArray<E>) => Effect.Effect<void, DeciderSpecFailure>
  /** The command fails with this domain error (compared with `Equal`) or one satisfying the predicate. */
  readonly thenFails: (expected: DE | ((error: DE) => boolean)) => Effect.Effect<void, DeciderSpecFailure>
  /** The state after the given events and the command's events satisfies the assertion. */
  readonly thenState: (check: (state: S) => boolean) => Effect.Effect<void, DeciderSpecFailure>
}

/** Starts a specification of `decider`. */
export const make = <C, E extends { readonly _tag: string }, S, DE>(
  decider: Aggregate.Decider<C, E, S, DE>
): Spec<C, E, S, DE> => ({
  given: (history) => ({
    when: (command) => {
      const before = history.reduce(decider.evolve, decider.initialState)
      const decided = Effect.exit(decider.decide(command, before))
      const encoded = (events: ReadonlyArray<E>) =>
        // compared in clear: sealed personal fields differ at each encoding (and need no key store here)
        Effect.forEach(events, (e) => decider.codec.encodeUnsealed(e)).pipe(
          Effect.mapError(
            (error) =>
              new DeciderSpecFailure({
                expected: "encodable events",
                actual: error,
                description: "an event does not encode"
              })
          )
        )
      const fail = (description: string, expected: unknown, actual: unknown) =>
        Effect.fail(new DeciderSpecFailure({ description, expected, actual }))
      const succeeded = Effect.flatMap(decided, (exit) =>
        Exit.isSuccess(exit) ? Effect.succeed(exit.value) : fail("the command failed", "events", exit.cause)
      )
      return {
        then: (expected) =>
          Effect.gen(function* () {
            const actual = yield* succeeded
            const [a, e] = [yield* encoded(actual), yield* encoded(expected)]
            if (!jsonEqual(a, e)) yield* fail("the command produced other events", e, a)
          }),
        thenFails: (expected) =>
          Effect.flatMap(decided, (exit) => {
            if (Exit.isSuccess(exit)) return fail("the command succeeded", expected, exit.value)
            const failure = Cause.failureOption(exit.cause)
            if (Option.isNone(failure)) return fail("the command died instead of failing", expected, exit.cause)
            const matches =
              typeof expected === "function"
                ? (expected as (e: DE) => boolean)(failure.value)
                : Equal.equals(failure.value, expected)
            return matches ? Effect.void : fail("the command failed with another error", expected, failure.value)
          }),
        thenState: (check) =>
          Effect.flatMap(succeeded, (events) => {
            const after = events.reduce(decider.evolve, before)
            return check(after)
              ? Effect.void
              : fail("the state after the command does not satisfy the check", "true", after)
          })
      }
    }
  })
})

const jsonEqual = (a: unknown, b: unknown): boolean => {
  if (a === b) return true
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const ra = a as Record<string, unknown>
  const rb = b as Record<string, unknown>
  const keys = Object.keys(ra)
  return (
    keys.length === Object.keys(rb).length &&
    keys.every((k) => Object.prototype.hasOwnProperty.call(rb, k) && jsonEqual(ra[k], rb[k]))
  )
}

const show = (value: unknown): string =>
  Either.getOrElse(
    Either.try(() => JSON.stringify(value, (_, v) => (typeof v === "bigint" ? `${v}n` : v))),
    () => String(value)
  )
