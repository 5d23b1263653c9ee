// Several projections in one process over the same log: the bank's `balances` and `history` read models,
// each a runner with its own checkpoint and its own status in the `Projection.Registry`. Rebuilding one
// (empty its table, move its checkpoint back to the start) replays it alone: the other does not move.
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Aggregate, CheckpointStore, EventStore, Projection, Wakeup } from "effect-eventsourcing"
import { SqlCheckpointStore, SqlEventStore } from "effect-eventsourcing/sql"
import { Sqlite } from "effect-eventsourcing/sqlite"
import { Account } from "../bank/Account.js"
import { accounts, Balances, createTables, History, history } from "../bank/readModels.js"
import { waitFor } from "./waitFor.js"

const handle = Aggregate.handler(Account)

const statuses = Effect.flatMap(Projection.Registry, (registry) => registry.statuses)

/** Where a projection's (single) partition stands, as stored. */
const checkpointOf = (name: string) =>
  Effect.flatMap(CheckpointStore.CheckpointStore, (store) => store.partitions({ name, version: 1 })).pipe(
    Effect.map(([partition]) => partition?.checkpoint.position ?? -1n)
  )

export const program = Effect.gen(function* () {
  yield* handle("1", { _tag: "OpenAccount", owner: "Ada" })
  yield* handle("1", { _tag: "Deposit", amount: 100 })
  yield* handle("1", { _tag: "Withdraw", amount: 40 })
  const head = (yield* Effect.flatMap(EventStore.EventStore, (store) => store.head)).position
  const progress = Effect.all([statuses, checkpointOf("balances"), checkpointOf("history")])
  const [runners] = yield* waitFor(
    "both projections are live at the head",
    progress,
    ([runners, ...checkpoints]) =>
      runners.length === 2 && runners.every((s) => s.state === "live") && checkpoints.every((c) => c === head)
  )

  // a rebuild of `history` alone: its table is emptied and it replays the log from the start
  yield* Projection.rebuild(History)
  yield* waitFor("history was replayed", history("1"), (rows) => rows.length === 2)
  return {
    runners: runners.map((s) => ({ name: s.name, state: s.state })).sort((a, b) => a.name.localeCompare(b.name)),
    balances: (yield* accounts).map((a) => a.balance),
    historyRows: (yield* history("1")).map((m) => `${m.kind} ${m.amount}`),
    checkpoints: { balances: yield* checkpointOf("balances"), history: yield* checkpointOf("history"), head }
  }
})

// each projection is a fiber in the Layer's scope; the registry collects their statuses
const Stores = Layer.mergeAll(SqlEventStore.layer(), SqlCheckpointStore.layer(), Projection.layerRegistry).pipe(
  Layer.provideMerge(Wakeup.layer),
  Layer.provideMerge(Sqlite.layer({ filename: ":memory:" }))
)
const ReadModels = Layer.effectDiscard(createTables)
// a short lease: a runner looks for a rebuild (a checkpoint moved back) at each renewal, every third of it
const options = { leaseTtl: "3 seconds" } as const
export const AppLive = Layer.mergeAll(Projection.layer(Balances, options), Projection.layer(History, options)).pipe(
  Layer.provide(ReadModels),
  Layer.provideMerge(Stores)
)

export const main = program.pipe(Effect.provide(AppLive))

if (import.meta.url === `file://${process.argv[1]}`) Effect.runPromise(main).then(console.log)
