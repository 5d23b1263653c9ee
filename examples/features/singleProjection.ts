// One projection, one worker: the bank's `balances` read model in SQLite, beside the events. The runner
// catches up on the history from its checkpoint, then tails the log live (woken by the appends' hints).
// Stopped and started again, it resumes from its checkpoint: no event is handled twice.
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { Aggregate, Projection, Wakeup } from "effect-eventsourcing"
import { SqlCheckpointStore, SqlEventStore } from "effect-eventsourcing/sql"
import { Sqlite } from "effect-eventsourcing/sqlite"
import { Account } from "../bank/Account.js"
import { account, Balances, createTables } from "../bank/readModels.js"
import { waitFor } from "./waitFor.js"

const handle = Aggregate.handler(Account)

/** The runner's status, as the registry reports it (what the HTTP API and health checks show). */
const status = Effect.flatMap(Projection.Registry, (registry) => registry.statuses).pipe(
  Effect.map((statuses) => statuses.find((s) => s.name === "balances"))
)

export const program = Effect.gen(function* () {
  yield* createTables
  // history written before the projection exists
  yield* handle("1", { _tag: "OpenAccount", owner: "Ada" })
  yield* handle("2", { _tag: "OpenAccount", owner: "Grace" })
  for (const amount of [10, 20, 30]) yield* handle("1", { _tag: "Deposit", amount })

  // 1. catching up: the runner reads the log from the start of its checkpoint, in batches
  const runner = yield* Effect.forkScoped(Projection.run(Balances))
  yield* waitFor("the runner caught up", status, (s) => s?.state === "live")
  const caughtUp = (yield* account("1"))!.balance

  // 2. live: new events reach the read model on their own (the status counts them once committed)
  yield* handle("2", { _tag: "Deposit", amount: 7 })
  const first = yield* waitFor("the live deposit is handled", status, (s) => s?.owned[0]?.processed === 6)
  const live = (yield* account("2"))!.balance

  // 3. checkpointed: a new runner starts where the first one committed
  yield* Fiber.interrupt(runner)
  yield* handle("1", { _tag: "Withdraw", amount: 60 })
  yield* Effect.forkScoped(Projection.run(Balances))
  const second = yield* waitFor("the restarted runner handled the withdrawal", status, (s) => s?.state === "live")
  return {
    caughtUp,
    live,
    afterRestart: (yield* account("1"))!.balance,
    handledByFirstRun: first!.owned[0]!.processed,
    handledBySecondRun: second!.owned[0]!.processed
  }
})

// events, checkpoints and the read model in one SQLite database: a batch commits with its checkpoint
export const AppLive = Layer.mergeAll(SqlEventStore.layer(), SqlCheckpointStore.layer(), Projection.layerRegistry).pipe(
  Layer.provideMerge(Wakeup.layer),
  Layer.provideMerge(Sqlite.layer({ filename: ":memory:" }))
)

export const main = program.pipe(Effect.scoped, Effect.provide(AppLive))

if (import.meta.url === `file://${process.argv[1]}`) Effect.runPromise(main).then(console.log)
