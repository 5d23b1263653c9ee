// Snapshots: the bank's account decider with a snapshot every 5 events, on the SQL event and snapshot
// stores (SQLite). Loading starts from the latest snapshot and reads only the events after it (the
// `eventsourcing_events_read_total` metric shows how many), and decides on the same state.
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import { Aggregate, Metrics, Snapshot } from "effect-eventsourcing"
import { SqlEventStore, SqlSnapshotStore } from "effect-eventsourcing/sql"
import { Sqlite } from "effect-eventsourcing/sqlite"
import { Account, AccountEvent, AccountState } from "../bank/Account.js"

// the same decider, with a snapshot of its state (encoded by its Schema) every 5 events
export const SnapshottedAccount = Aggregate.make({
  category: Account.category,
  events: AccountEvent,
  initialState: Account.initialState,
  evolve: Account.evolve,
  decide: Account.decide,
  snapshot: { state: AccountState, strategy: Snapshot.everyNEvents(5) }
})

/** Events read by stream reads (loading aggregates) so far, in this process. */
const eventsRead = Effect.map(Metric.value(Metric.tagged(Metrics.eventsReadTotal, "read", "stream")), (s) => s.count)

export const program = Effect.gen(function* () {
  const handle = Aggregate.handler(SnapshottedAccount)
  yield* handle("1", { _tag: "OpenAccount", owner: "Ada" })
  for (let i = 0; i < 11; i++) yield* handle("1", { _tag: "Deposit", amount: 10 })
  // 12 events: snapshots were taken at versions 5 and 10
  const stats = yield* Effect.flatMap(Snapshot.SnapshotStore, (store) => store.stats)

  // a withdrawal too large is refused by `decide`, with the balance it decided on (nothing is written)
  const tryOverdraw = (handler: typeof handle) =>
    Effect.gen(function* () {
      const before = yield* eventsRead
      const refusal = yield* Effect.flip(handler("1", { _tag: "Withdraw", amount: 1000 }))
      return {
        eventsRead: (yield* eventsRead) - before,
        balance: refusal._tag === "InsufficientFunds" ? refusal.balance : undefined
      }
    })
  // a new handler (a restarted process) loads from the snapshot at version 10: reads events 11 and 12 only
  const fromSnapshot = yield* tryOverdraw(Aggregate.handler(SnapshottedAccount))
  // the bank's decider has no snapshot options: it reads all 12 events, and finds the same balance
  const fromEvents = yield* tryOverdraw(Aggregate.handler(Account))
  // the first handler kept the state it folded: it reads event 12 only, to check it is still there
  const fromCache = yield* tryOverdraw(handle)
  return { snapshots: stats.count, fromSnapshot, fromEvents, fromCache }
})

// the snapshot store lives beside the event store, in the same database
export const AppLive = Layer.mergeAll(SqlEventStore.layer(), SqlSnapshotStore.layer()).pipe(
  Layer.provide(Sqlite.layer({ filename: ":memory:" }))
)

export const main = program.pipe(Effect.provide(AppLive))

if (import.meta.url === `file://${process.argv[1]}`) Effect.runPromise(main).then(console.log)
