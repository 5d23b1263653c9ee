import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { Event, EventStore, MemoryEventStore, Upcaster } from "effect-eventsourcing"

// today's events; MoneyDeposited is at schema version 2 (version 1 stored the amount as a string)
const AccountOpened = Schema.TaggedStruct("AccountOpened", { owner: Schema.String })
const MoneyDeposited = Schema.TaggedStruct("MoneyDeposited", { amount: Schema.Finite })
const AccountEvent = Schema.Union(AccountOpened, MoneyDeposited)

export const program = Effect.gen(function* () {
  // checked when made: a missing step, a duplicate or a cycle is an UpcasterConfigError here
  const codec = yield* Upcaster.codec({
    events: AccountEvent,
    versions: { MoneyDeposited: 2 },
    upcasters: [
      Upcaster.step({ type: "MoneyDeposited", from: 1, upcast: (old) => ({ amount: Number(old.amount) }) }),
      Upcaster.rename({ from: "FundsAdded", to: "MoneyDeposited", version: 1 })
    ]
  })
  const store = yield* EventStore.EventStore

  // what an older release stored, and what this one writes
  const old = yield* Event.make({ type: "FundsAdded", schemaVersion: 1, data: { amount: "12.50" } })
  const now = yield* Event.make(yield* codec.encode(MoneyDeposited.make({ amount: 5 })))
  yield* store.append("Account-1", [old, now])

  // typed reads go through the codec: both come back as MoneyDeposited v2
  return yield* Upcaster.readStream(codec, "Account-1").pipe(
    Stream.map(({ event }) => event),
    Stream.runCollect
  )
})

export const main = program.pipe(Effect.provide(MemoryEventStore.layer()))
