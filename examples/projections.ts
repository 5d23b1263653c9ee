import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { Aggregate, Projection, Wakeup } from "effect-eventsourcing"
import { Sqlite } from "effect-eventsourcing/sqlite"
import { SqlCheckpointStore, SqlEventStore } from "effect-eventsourcing/sql"
import { Account, AccountEvent } from "./bank/Account.js"

// a read model in the store's database: each batch's writes commit with its checkpoint (exactly once)
export const Balances = Projection.make({
  name: "balances",
  events: AccountEvent,
  categories: ["Account"],
  handle: (event, envelope) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      switch (event._tag) {
        case "AccountOpened":
          return yield* sql`insert into balances ${sql.insert({ account: envelope.streamId, owner: event.owner, balance: 0 })}`
        case "MoneyDeposited":
        case "MoneyWithdrawn":
          return yield* sql`update balances set balance = ${event.balance} where account = ${envelope.streamId}`
        case "AccountClosed":
          return yield* sql`delete from balances where account = ${envelope.streamId}`
      }
    }),
  truncate: Effect.flatMap(SqlClient.SqlClient, (sql) => sql`delete from balances`)
})

const handle = Aggregate.handler(Account)

export const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* handle("1", { _tag: "OpenAccount", owner: "Ada" })
  yield* handle("1", { _tag: "Deposit", amount: 100 })
  // the runner tails the log (woken by the appends' hints): the read model catches up on its own
  const balanceOf = sql<{ readonly balance: number }>`select balance from balances where account = 'Account-1'`
  const [row] = yield* balanceOf.pipe(
    Effect.filterOrFail(([row]) => row?.balance === 100),
    Effect.retry(Schedule.spaced("10 millis"))
  )
  const [status] = yield* Effect.flatMap(Projection.Registry, (registry) => registry.statuses)
  return { balance: row!.balance, state: status!.state }
})

const ReadModel = Layer.effectDiscard(
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql`create table if not exists balances (account text primary key, owner text, balance real not null)`
  )
)
const Stores = Layer.mergeAll(SqlEventStore.layer(), SqlCheckpointStore.layer(), Projection.layerRegistry).pipe(
  Layer.provideMerge(Wakeup.layer),
  Layer.provideMerge(Sqlite.layer({ filename: ":memory:" }))
)
// the projection runs as a fiber in the Layer's scope, stopped when the program ends
export const AppLive = Projection.layer(Balances).pipe(Layer.provide(ReadModel), Layer.provideMerge(Stores))

export const main = program.pipe(Effect.provide(AppLive))
