import * as Effect from "effect/Effect"
import { Aggregate, MemoryEventStore } from "effect-eventsourcing"
import { Account } from "./bank/Account.js"

// load (snapshot + events, upcast) -> decide -> append at the loaded version, retried on conflict
const handle = Aggregate.handler(Account)

export const program = Effect.gen(function* () {
  yield* handle("42", { _tag: "OpenAccount", owner: "Ada" })

  // a command id makes a command idempotent: a retry returns the first result and appends nothing
  const deposit = { _tag: "Deposit", amount: 100 } as const
  const first = yield* handle("42", deposit, { metadata: { commandId: "deposit-1" } })
  const retry = yield* handle("42", deposit, { metadata: { commandId: "deposit-1" } })

  // domain errors are typed values, and nothing is written
  const refused = yield* Effect.flip(handle("42", { _tag: "Withdraw", amount: 500 }))

  return { version: retry.version, sameResult: retry.positions[0] === first.positions[0], refused: refused._tag }
})

export const main = program.pipe(Effect.provide(MemoryEventStore.layer()))
