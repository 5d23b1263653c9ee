import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import { Aggregate, CheckpointStore, CommandBus, Event, EventStore, MemoryEventStore } from "effect-eventsourcing"
import { Projection, Saga, SagaStore, Wakeup } from "effect-eventsourcing"
import { Account } from "./bank/Account.js"
import { AccountCommands, accountHandlers } from "./bank/commands.js"
import { Transfer } from "./bank/Transfer.js"

// 1. the decider (examples/bank/Account.ts): Schema events, pure evolve(state, event) and decide(command, state)
// 2. its handler: load the stream, decide, append at the loaded version (a conflict loads and decides again)
const handle = Aggregate.handler(Account)

// 3. a projection: a read model kept from the log by a runner; here balances by stream, in a Ref
class Balances extends Context.Tag("Balances")<Balances, Ref.Ref<Record<string, number>>>() {}
const BalancesProjection = Projection.make({
  name: "balances",
  events: Account.codec,
  // money events carry the balance after them: setting it twice changes nothing (at-least-once is fine)
  handle: (event, { streamId }) =>
    Effect.flatMap(Balances, (balances) =>
      "balance" in event ? Ref.update(balances, (all) => ({ ...all, [streamId]: event.balance })) : Effect.void
    )
})

export const program = Effect.gen(function* () {
  yield* handle("A", { _tag: "OpenAccount", owner: "Ada" })
  yield* handle("A", { _tag: "Deposit", amount: 100 })
  yield* handle("B", { _tag: "OpenAccount", owner: "Grace" })
  // 4. a saga (examples/bank/Transfer.ts) reacts to this event: it withdraws from A, then deposits to B
  const data = { transferId: "t1", from: "A", to: "B", amount: 30 }
  const requested = yield* Event.make({ type: "TransferRequested", data })
  yield* Effect.flatMap(EventStore.EventStore, (store) => store.append("Transfer-t1", [requested]))
  // the runners work in the background: wait for the read model to show the transfer
  return yield* Effect.flatMap(Balances, Ref.get).pipe(
    Effect.filterOrFail((balances) => balances["Account-B"] === 30),
    Effect.retry(Schedule.spaced("10 millis"))
  )
})

// everything is a Layer: in-memory stores here; the runners are fibers in the Layer's scope
const Stores = Layer.mergeAll(MemoryEventStore.layer(), CheckpointStore.layerMemory, SagaStore.layerMemory).pipe(
  Layer.provideMerge(Wakeup.layer)
)
const Bus = CommandBus.layer({ groups: [AccountCommands] }).pipe(Layer.provide(accountHandlers()))
const Runners = Layer.mergeAll(Projection.layer(BalancesProjection), Saga.layer(Transfer))
const ReadModel = Layer.effect(Balances, Ref.make({}))

export const main = program.pipe(
  Effect.provide(Runners.pipe(Layer.provideMerge(ReadModel), Layer.provideMerge(Bus), Layer.provideMerge(Stores)))
)
