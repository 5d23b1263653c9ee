import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Aggregate } from "effect-eventsourcing"

// events are Schemas; the decider is two pure functions over them
const Opened = Schema.TaggedStruct("Opened", { owner: Schema.String })
const Deposited = Schema.TaggedStruct("Deposited", { amount: Schema.Number })
const AccountEvent = Schema.Union(Opened, Deposited)
type Command = { readonly _tag: "Open"; readonly owner: string } | { readonly _tag: "Deposit"; readonly amount: number }

class NotOpen extends Schema.TaggedError<NotOpen>()("NotOpen", {}) {}

export const Account = Aggregate.make({
  category: "Account",
  events: AccountEvent,
  initialState: { open: false, balance: 0 },
  evolve: (state, event) =>
    event._tag === "Opened" ? { open: true, balance: 0 } : { ...state, balance: state.balance + event.amount },
  decide: (command: Command, state) =>
    command._tag === "Open"
      ? Effect.succeed([Opened.make({ owner: command.owner })])
      : state.open
        ? Effect.succeed([Deposited.make({ amount: command.amount })])
        : Effect.fail(new NotOpen())
})

// load -> decide -> append, on whichever store the program is given
const handle = Aggregate.handler(Account)

export const openAndDeposit = (id: string) =>
  Effect.gen(function* () {
    yield* handle(id, { _tag: "Open", owner: "Ada" })
    return yield* handle(id, { _tag: "Deposit", amount: 100 })
  })
