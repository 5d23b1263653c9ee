// The command bus across processes, over NATS request-reply: the handler side serves its `CommandBus` on
// `<prefix>.<Tag>` subjects; the client side gets a `CommandBus` with the same typed `dispatch`, whose
// results and domain errors (a typed refusal) come back over the wire. Both sides run here, as two Layers.
import { randomUUID } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { CommandBus, MemoryEventStore } from "effect-eventsourcing"
import { Nats, NatsCommandTransport } from "effect-eventsourcing/nats"
import { InsufficientFunds } from "../bank/Account.js"
import { AccountCommands, accountHandlers, Deposit, OpenAccount, Withdraw } from "../bank/commands.js"

const natsUrl = process.env.NATS_URL ?? "nats://127.0.0.1:4222"
// subjects of this run only (several instances of one service share a prefix and a queue group)
const subjectPrefix = `bank_${randomUUID().slice(0, 8)}.commands`

// the handler side: the bank's account commands on a local bus, served over NATS
export const HandlerSide = NatsCommandTransport.serve({ subjectPrefix }).pipe(
  Layer.provide(CommandBus.layer({ groups: [AccountCommands] })),
  Layer.provide(accountHandlers()),
  Layer.provide(MemoryEventStore.layer()),
  Layer.provide(Nats.layer({ servers: natsUrl, name: "bank-handlers" }))
)

// the client side: a CommandBus that sends its commands to whichever instance serves them
export const ClientSide = NatsCommandTransport.layerClient({ groups: [AccountCommands], subjectPrefix }).pipe(
  Layer.provide(Nats.layer({ servers: natsUrl, name: "bank-client" }))
)

export const program = Effect.gen(function* () {
  const bus = yield* CommandBus.CommandBus
  const opened = yield* bus.dispatch(new OpenAccount({ accountId: "1", owner: "Ada" }))
  const deposited = yield* bus.dispatch(new Deposit({ accountId: "1", amount: 50 }))
  // the refusal is the decider's own error, decoded by the command's failure Schema: typed, with its fields
  const refusal = yield* Effect.flip(bus.dispatch(new Withdraw({ accountId: "1", amount: 80 })))
  return {
    versions: [opened.version, deposited.version],
    refusal: refusal._tag,
    // an instance of the error class again, with its fields
    refusedWith:
      refusal instanceof InsufficientFunds ? { balance: refusal.balance, requested: refusal.requested } : undefined
  }
})

export const main = program.pipe(Effect.provide(Layer.merge(ClientSide, HandlerSide)))

if (import.meta.url === `file://${process.argv[1]}`) Effect.runPromise(main).then(console.log)
