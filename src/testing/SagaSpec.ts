/**
 * Given/then specifications of sagas, run without stores or a bus: `given` the inputs one instance
 * receives (its events, and `Saga.Timeout`s), `react` is folded over them and `then` checks what the
 * instance would do: the commands it sends, its final state, its status and its pending timeouts.
 *
 * Every command is assumed to succeed, except those `failing` names (by index in the order sent): a
 * failing command stops its reaction and compensates, as the runner does.
 *
 * ```ts
 * it.effect("a transfer withdraws, then deposits", () =>
 *   SagaSpec.make(Transfer).given([requested]).then({ commands: [withdrawA, depositB], timeouts: ["deadline"] }))
 * ```
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Saga from "../Saga.js"
import type * as SagaStore from "../SagaStore.js"

/** The saga did not behave as specified. */
export class SagaSpecFailure extends Schema.TaggedError<SagaSpecFailure>()("SagaSpecFailure", {
  description: Schema.String,
  expected: Schema.Unknown,
  actual: Schema.Unknown
}) {
  override get message() {
    return `${this.description}\n  expected: ${show(this.expected)}\n  actual:   ${show(this.actual)}`
  }
}

/** What the instance did, as {@link Spec} `then` checks it. */
export interface Outcome<S, C> {
  /** Every command sent, compensations included, in order. */
  readonly commands: ReadonlyArray<C>
  readonly state: S
  readonly status: SagaStore.Status
  /** Names of the timeouts still pending. */
  readonly timeouts: ReadonlyArray<string>
}

/** Expectations; those left out are not checked. */
export interface Expected<S, C> {
  readonly commands?: ReadonlyArray<C>
  readonly state?: S
  readonly status?: SagaStore.Status
  readonly timeouts?: ReadonlyArray<string>
}

export interface Spec<A, S, C> {
  readonly given: (
    inputs: ReadonlyArray<A | Saga.Timeout>,
    options?: { readonly failing?: ReadonlyArray<number> }
  ) => {
    readonly then: (expected: Expected<S, C>) => Effect.Effect<void, SagaSpecFailure>
    /** The outcome itself, for assertions of your own. */
    readonly outcome: Outcome<S, C>
  }
}

/** Starts a specification of `saga`. */
export const make = <A, S, C>(saga: Saga.Saga<A, S, C>): Spec<A, S, C> => ({
  given: (inputs, options) => {
    const failing = new Set(options?.failing ?? [])
    const sent: Array<C> = []
    const timeouts = new Set<string>()
    let state = saga.initialState
    let status: SagaStore.Status = "running"
    let compensations: Array<C> = []
    for (const input of inputs) {
      if (status !== "running") break
      const reaction = saga.react(state, input)
      let failed = reaction.fail !== undefined
      for (const item of reaction.commands ?? []) {
        if (failed) break
        const step = isStep<C>(item) ? item : { command: item as C }
        sent.push(step.command)
        if (failing.has(sent.length - 1)) failed = true
        else if (step.compensation !== undefined) compensations.push(step.compensation)
      }
      state = reaction.state
      if (input instanceof Saga.Timeout) timeouts.delete(input.name)
      for (const name of reaction.cancel ?? []) timeouts.delete(name)
      for (const { name } of reaction.schedule ?? []) timeouts.add(name)
      if (failed) {
        status = "compensated"
        for (const compensation of [...compensations].reverse()) {
          sent.push(compensation)
          if (failing.has(sent.length - 1)) {
            status = "failed"
            break
          }
        }
        compensations = []
      } else if (reaction.complete === true) {
        status = "completed"
      }
      if (status !== "running") timeouts.clear()
    }
    const outcome: Outcome<S, C> = { commands: sent, state, status, timeouts: [...timeouts].sort() }
    return {
      outcome,
      then: (expected) => {
        const mismatch = (description: string, want: unknown, got: unknown) =>
          Effect.fail(new SagaSpecFailure({ description, expected: want, actual: got }))
        if (expected.status !== undefined && expected.status !== outcome.status) {
          return mismatch("status", expected.status, outcome.status)
        }
        if (expected.commands !== undefined && !sameCommands(expected.commands, outcome.commands)) {
          return mismatch("commands sent", expected.commands, outcome.commands)
        }
        if (expected.state !== undefined && show(expected.state) !== show(outcome.state)) {
          return mismatch("state", expected.state, outcome.state)
        }
        if (expected.timeouts !== undefined && show([...expected.timeouts].sort()) !== show(outcome.timeouts)) {
          return mismatch("pending timeouts", expected.timeouts, outcome.timeouts)
        }
        return Effect.void
      }
    }
  }
})

const isStep = <C>(item: unknown): item is Saga.Step<C> =>
  typeof item === "object" && item !== null && "command" in item && !("_tag" in item)

/** Commands compare by content: their tag and fields (they are class instances). */
const sameCommands = (a: ReadonlyArray<unknown>, b: ReadonlyArray<unknown>) =>
  a.length === b.length && a.every((c, i) => show(c) === show(b[i]))

const show = (value: unknown): string =>
  JSON.stringify(value, (_key, v) => (typeof v === "bigint" ? `${v}n` : v)) ?? String(value)
