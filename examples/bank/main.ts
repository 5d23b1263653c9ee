/**
 * The bank example application, on the embedded default: an SQLite file (`.data/bank.db`, or
 * `BANK_DB`).
 *
 * It opens three accounts (once: later runs find them open), then handles a burst of concurrent
 * deposits and withdrawals through the `Account` decider: load, decide, append at the loaded version,
 * retry on conflict. Then it rebuilds the balances from the global log and checks them against each
 * account's own history. Finally it moves money with the `Transfer` saga (running as a scoped fiber,
 * sending its commands through the command bus): one transfer that is confirmed, one to an account that
 * does not exist, which is compensated. Run it twice: the second run continues from the stored events.
 */
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { Aggregate, CommandBus, Event, EventStore, Saga, Upcaster, Wakeup } from "effect-eventsourcing"
import { SqlCheckpointStore, SqlEventStore, SqlSagaStore, Sqlite } from "effect-eventsourcing/sql"
import { Account, type AccountCommand } from "./Account.js"
import { AccountCommands, accountHandlers } from "./commands.js"
import { Transfer } from "./Transfer.js"

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

/** Requests a transfer (an event in its own stream), confirms it if asked, and waits for the saga's verdict. */
const transfer = (from: string, to: string, amount: number, confirm: boolean) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const transferId = randomUUID()
    const append = (type: string, data: object) =>
      Effect.flatMap(Event.make({ type, data }), (event) => store.append(`Transfer-${transferId}`, [event]))
    const instance = Saga.instance(Transfer, transferId).pipe(
      Effect.flatten,
      Effect.retry(Schedule.spaced("50 millis"))
    )
    yield* append("TransferRequested", { transferId, from, to, amount })
    if (confirm) {
      yield* instance
      yield* append("TransferConfirmed", { transferId })
    }
    const done = yield* instance.pipe(
      Effect.filterOrFail((i) => i.status !== "running"),
      Effect.retry(Schedule.spaced("50 millis"))
    )
    const why = Option.match(done.error, { onNone: () => "", onSome: (error) => ` (${error})` })
    yield* Effect.log(`transfer of ${amount} from ${from} to ${to}: ${done.status}${why}`)
  })

const database = process.env.BANK_DB ?? path.join(".data", "bank.db")
fs.mkdirSync(path.dirname(database), { recursive: true })

const BankStore = Layer.mergeAll(SqlEventStore.layer(), SqlCheckpointStore.layer(), SqlSagaStore.layer()).pipe(
  Layer.provideMerge(Wakeup.layer),
  Layer.provideMerge(Sqlite.layer({ filename: database }))
)
const Bus = CommandBus.layer({ groups: [AccountCommands] }).pipe(Layer.provide(accountHandlers()))
// the saga runs as a fiber in the Layer's scope, for as long as the program does
const Bank = Saga.layer(Transfer, { pollInterval: "100 millis", timeoutPoll: "100 millis" }).pipe(
  Layer.provideMerge(Bus),
  Layer.provideMerge(BankStore)
)

Effect.runPromise(
  program.pipe(
    Effect.zipRight(transfer("alice", "bob", 5, true)),
    Effect.zipRight(transfer("alice", "nobody", 5, false)),
    Effect.tap(() => Effect.log(`events stored in ${database}`)),
    Effect.provide(Bank)
  )
)
