/**
 * The bank example application.
 *
 * It runs on the embedded default, an SQLite file (`.data/bank.db`, or `BANK_DB`): it opens accounts
 * (once: later runs find them open), handles a burst of concurrent deposits and withdrawals with
 * optimistic concurrency (load, decide, append at the loaded version, retry on conflict), then rebuilds
 * balances from the global log and checks them against each stream. Run it twice: the second run
 * continues from the stored events. Deciders, projections and the HTTP browser will replace the
 * hand-written parts here as they land.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { Event, EventStore } from "effect-eventsourcing"
import { SqlEventStore, Sqlite } from "effect-eventsourcing/sql"

type Command =
  | { readonly _tag: "Open"; readonly owner: string }
  | { readonly _tag: "Deposit"; readonly amount: number }
  | { readonly _tag: "Withdraw"; readonly amount: number }

interface Account {
  readonly open: boolean
  readonly balance: number
}

const evolve = (state: Account, event: Event.RecordedEvent): Account => {
  const amount = (event.data as { readonly amount?: number }).amount ?? 0
  switch (event.type) {
    case "AccountOpened":
      return { open: true, balance: 0 }
    case "MoneyDeposited":
      return { ...state, balance: state.balance + amount }
    case "MoneyWithdrawn":
      return { ...state, balance: state.balance - amount }
    default:
      return state
  }
}

const decide = (command: Command, state: Account): Effect.Effect<ReadonlyArray<Event.EventData>, string> => {
  switch (command._tag) {
    case "Open":
      return state.open
        ? Effect.fail("already open")
        : Effect.all([Event.make({ type: "AccountOpened", data: { owner: command.owner } })])
    case "Deposit":
      return state.open
        ? Effect.all([Event.make({ type: "MoneyDeposited", data: { amount: command.amount } })])
        : Effect.fail("not open")
    case "Withdraw":
      if (!state.open) return Effect.fail("not open")
      if (state.balance < command.amount) return Effect.fail("insufficient funds")
      return Effect.all([Event.make({ type: "MoneyWithdrawn", data: { amount: command.amount } })])
  }
}

const initial: Account = { open: false, balance: 0 }

/** Load the stream, decide on its state, append at the loaded version; a conflict means: do it again. */
const handle = (accountId: string, command: Command) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const streamId = `Account-${accountId}`
    const { state, version } = yield* store.readStream(streamId).pipe(
      Stream.catchTag("StreamNotFound", () => Stream.empty),
      Stream.runFold({ state: initial, version: 0 }, (acc, event) => ({
        state: evolve(acc.state, event),
        version: event.version
      }))
    )
    const events = yield* decide(command, state)
    return yield* store.append(streamId, events, { expectedVersion: Event.Exact(version) })
  }).pipe(
    Effect.retry({
      while: (error) => typeof error === "object" && error._tag === "ConcurrencyConflict",
      schedule: Schedule.exponential("1 millis").pipe(Schedule.jittered, Schedule.intersect(Schedule.recurs(20)))
    })
  )

const accounts = ["alice", "bob", "carol"]

const program = Effect.gen(function* () {
  const store = yield* EventStore.EventStore
  yield* Effect.forEach(accounts, (id) =>
    handle(id, { _tag: "Open", owner: id }).pipe(
      Effect.catchIf(
        (e) => e === "already open",
        () => Effect.void
      )
    )
  )

  let rejected = 0
  yield* Effect.forEach(
    Array.from({ length: 300 }, (_, i) => i),
    () =>
      Effect.gen(function* () {
        const account = accounts[yield* Random.nextIntBetween(0, accounts.length)]!
        const amount = yield* Random.nextIntBetween(1, 100)
        const command: Command = (yield* Random.nextBoolean)
          ? { _tag: "Deposit", amount }
          : { _tag: "Withdraw", amount }
        yield* handle(account, command).pipe(
          Effect.catchIf(
            (e) => typeof e === "string",
            () => Effect.sync(() => rejected++)
          )
        )
      }),
    { concurrency: 16 }
  )

  // rebuild balances from the global log, the way a projection would
  const balances = yield* store
    .readAll({ categories: ["Account"] })
    .pipe(
      Stream.runFold(new Map<string, Account>(), (map, event) =>
        map.set(event.streamId, evolve(map.get(event.streamId) ?? initial, event))
      )
    )
  for (const [streamId, account] of balances) {
    const version = yield* store.streamVersion(streamId)
    yield* Effect.log(`${streamId}: balance ${account.balance} after ${version} events`)
    if (account.balance < 0) return yield* Effect.die(`${streamId} is overdrawn: a stale decision was committed`)
  }
  yield* Effect.log(`300 commands handled, ${rejected} rejected by the domain (insufficient funds)`)
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
