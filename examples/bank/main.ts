/**
 * The bank example application, on the embedded default: an SQLite file (`.data/bank.db`, or
 * `BANK_DB`).
 *
 * It opens three accounts (once: later runs find them open), then handles a burst of concurrent
 * deposits and withdrawals through the `Account` decider: load, decide, append at the loaded version,
 * retry on conflict. Finally it rebuilds the balances from the global log and checks them against each
 * account's own history. Run it twice: the second run continues from the stored events.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as Stream from "effect/Stream"
import { Aggregate, Upcaster } from "effect-eventsourcing"
import { SqlEventStore, Sqlite } from "effect-eventsourcing/sql"
import { Account, type AccountCommand } from "./Account.js"

const handle = Aggregate.handler(Account)
const accounts = ["alice", "bob", "carol"]

const program = Effect.gen(function* () {
  yield* Effect.forEach(accounts, (id) =>
    handle(id, { _tag: "OpenAccount", owner: id }).pipe(Effect.catchTag("AccountAlreadyOpen", () => Effect.void))
  )

  let rejected = 0
  yield* Effect.forEach(
    Array.from({ length: 300 }, (_, i) => i),
    () =>
      Effect.gen(function* () {
        const account = accounts[yield* Random.nextIntBetween(0, accounts.length)]!
        const amount = yield* Random.nextIntBetween(1, 100)
        const command: AccountCommand = (yield* Random.nextBoolean)
          ? { _tag: "Deposit", amount }
          : { _tag: "Withdraw", amount }
        yield* handle(account, command).pipe(Effect.catchTag("InsufficientFunds", () => Effect.sync(() => rejected++)))
      }),
    { concurrency: 16 }
  )

  // rebuild the balances from the global log, the way a projection would, and check every event's
  // recorded balance against the replay: a decision taken on stale state would show here
  let lostUpdates = 0
  const balances = yield* Upcaster.readAll(Account.codec, { categories: [Account.category] }).pipe(
    Stream.runFold(new Map<string, { balance: number; events: number }>(), (map, { envelope, event }) => {
      const before = map.get(envelope.streamId) ?? { balance: 0, events: 0 }
      const amount =
        event._tag === "MoneyDeposited" ? event.amount : event._tag === "MoneyWithdrawn" ? -event.amount : 0
      const balance = before.balance + amount
      if ("balance" in event && event.balance !== balance) lostUpdates++
      return map.set(envelope.streamId, { balance, events: before.events + 1 })
    })
  )
  for (const [streamId, { balance, events }] of balances) {
    yield* Effect.log(`${streamId}: balance ${balance} after ${events} events`)
  }
  if (lostUpdates > 0) return yield* Effect.die(`${lostUpdates} events were decided on stale state`)
  yield* Effect.log(`300 commands handled, ${rejected} rejected by the domain (insufficient funds)`)
  return balances
})

const database = process.env.BANK_DB ?? path.join(".data", "bank.db")
fs.mkdirSync(path.dirname(database), { recursive: true })

const BankStore = SqlEventStore.layer().pipe(Layer.provide(Sqlite.layer({ filename: database })))

Effect.runPromise(
  program.pipe(
    Effect.tap(() => Effect.log(`events stored in ${database}`)),
    Effect.provide(BankStore)
  )
)
