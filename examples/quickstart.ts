import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { Event, EventStore, MemoryEventStore } from "effect-eventsourcing"

export const program = Effect.gen(function* () {
  const store = yield* EventStore.EventStore

  // events are JSON payloads with a type; ids are generated UUIDv7s
  const opened = yield* Event.make({ type: "AccountOpened", data: { owner: "Ada" } })
  const deposited = yield* Event.make({ type: "MoneyDeposited", data: { amount: 100 } })

  // NoStream: creating the stream fails with ConcurrencyConflict if it already exists
  const result = yield* store.append("Account-42", [opened, deposited], { expectedVersion: Event.NoStream })
  yield* Effect.log(`Account-42 is at version ${result.version}`)

  // a writer that decided on version 1 is too late: nothing is written, the conflict is a typed value
  const late = yield* Event.make({ type: "MoneyWithdrawn", data: { amount: 30 } })
  const conflict = yield* Effect.flip(store.append("Account-42", [late], { expectedVersion: Event.Exact(1) }))
  yield* Effect.log(conflict.message)

  // reads are Streams: one stream in version order, or everything in global order after a checkpoint
  yield* store
    .readStream("Account-42")
    .pipe(Stream.runForEach((event) => Effect.log(`v${event.version} ${event.type} ${JSON.stringify(event.data)}`)))
  return yield* Stream.runCount(store.readAll({ categories: ["Account"] }))
})

// the in-memory store; swap the Layer for a SQL store without touching the program
export const main = program.pipe(Effect.provide(MemoryEventStore.layer()))

if (import.meta.url === `file://${process.argv[1]}`) Effect.runPromise(main)
