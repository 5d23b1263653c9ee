import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { CommandBus, CommandMiddleware, MemoryEventStore } from "effect-eventsourcing"
import { Account, AccountAlreadyOpen, AccountNotOpen, InsufficientFunds } from "./bank/Account.js"

// commands are Schema.TaggedRequests: payload, success and domain errors, typed and serializable
const Handled = Schema.Struct({ version: Schema.Number })
export class OpenAccount extends Schema.TaggedRequest<OpenAccount>()("OpenAccount", {
  failure: AccountAlreadyOpen,
  success: Handled,
  payload: { accountId: Schema.String, owner: Schema.NonEmptyTrimmedString }
}) {}
export class Withdraw extends Schema.TaggedRequest<Withdraw>()("Withdraw", {
  failure: Schema.Union(AccountNotOpen, InsufficientFunds),
  success: Handled,
  payload: { accountId: Schema.String, amount: Schema.Positive }
}) {}

// one call hands a group of commands to the aggregate's decider, on the account each names (group.toLayer
// registers handlers of your own instead); a missing handler fails the Layer
const AccountCommands = CommandBus.group(OpenAccount, Withdraw)
const AccountHandlers = CommandBus.deciderLayer(AccountCommands, Account, {
  idField: "accountId",
  success: (result) => ({ version: result.version })
})

const Bus = CommandBus.layer({
  groups: [AccountCommands],
  middleware: [CommandMiddleware.tracing, CommandMiddleware.recoverDefects, CommandMiddleware.timeout("5 seconds")]
}).pipe(Layer.provide(AccountHandlers), Layer.provideMerge(MemoryEventStore.layer()))

export const program = Effect.gen(function* () {
  const bus = yield* CommandBus.CommandBus
  const opened = yield* bus.dispatch(new OpenAccount({ accountId: "7", owner: "Ada" }))
  // the domain errors are in the type: AccountNotOpen | InsufficientFunds | CommandBus.CommandBusError
  const refused = yield* Effect.flip(bus.dispatch(new Withdraw({ accountId: "7", amount: 50 })))
  // bad input is refused at the boundary and reaches no handler
  const invalid = yield* Effect.flip(bus.dispatch(new Withdraw({ accountId: "7", amount: -1 }, true)))
  return { version: opened.version, refused: refused._tag, invalid: invalid._tag }
})

export const main = program.pipe(Effect.provide(Bus))
