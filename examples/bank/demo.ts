/**
 * `npm run demo`: the bank application end to end, scripted. It starts the application (on a fresh
 * SQLite file unless `DATABASE_URL` is set, on a free port) and drives it through its HTTP API with a
 * client derived from the API's definition (the account commands' endpoints are themselves derived from
 * the command bus group: see `http.ts`): accounts, deposits and withdrawals, a refused withdrawal, a
 * confirmed transfer and one the saga compensates; then it prints the read models, the alerts consumer's
 * records and the runners' statuses, checks the balances, and exits (0 if everything added up).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Alerts from "./alerts.js"
import * as Bank from "./app.js"
import { BankApi } from "./http.js"

const scenario = Effect.gen(function* () {
  const server = yield* HttpServer.HttpServer
  const port = server.address._tag === "TcpAddress" ? server.address.port : 0
  const client = yield* HttpApiClient.make(BankApi, { baseUrl: `http://127.0.0.1:${port}` })
  const run = Date.now().toString(36)
  const alice = `alice${run}`
  const bob = `bob${run}`

  yield* client.accounts.openAccount({
    path: { accountId: alice },
    payload: { owner: "Alice", holderId: `cust-${alice}` }
  })
  yield* client.accounts.openAccount({ path: { accountId: bob }, payload: { owner: "Bob", holderId: `cust-${bob}` } })
  yield* client.accounts.deposit({ path: { accountId: alice }, payload: { amount: 5000 } })
  yield* client.accounts.deposit({ path: { accountId: bob }, payload: { amount: 100 } })
  const withdrawn = yield* client.accounts.withdraw({ path: { accountId: alice }, payload: { amount: 1500 } })
  yield* Effect.log(`opened ${alice} (5000 in, 1500 out) and ${bob} (100 in)`)
  // read-your-writes: with the command's readAfter, the query answers once the read model shows it
  const read = yield* client.accountQueries.getAccount({
    path: { accountId: alice },
    headers: { "read-after": withdrawn.readAfter }
  })
  yield* Effect.log(`read right after the withdrawal: ${alice} has ${read.balance}`)

  // the command's domain errors are typed: InsufficientFunds carries the balance
  const refused = yield* Effect.flip(
    client.accounts.withdraw({ path: { accountId: bob }, payload: { amount: 1_000_000 } })
  )
  yield* Effect.log(
    `withdrawing 1,000,000 from ${bob}: refused (${refused._tag}${refused._tag === "InsufficientFunds" ? `: the balance is ${refused.balance}` : ""})`
  )

  const sagaDone = (transferId: string) =>
    client.sagas.getSagaInstance({ path: { name: "transfer", id: transferId } }).pipe(
      Effect.filterOrFail((instance) => instance.status !== "running" || instance.state !== null),
      Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("20 seconds")))
    )
  const settled = (transferId: string) =>
    client.sagas.getSagaInstance({ path: { name: "transfer", id: transferId } }).pipe(
      Effect.filterOrFail((instance) => instance.status !== "running"),
      Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("20 seconds")))
    )

  const { transferId: confirmed } = yield* client.bank.requestTransfer({
    payload: { from: alice, to: bob, amount: 250 }
  })
  yield* sagaDone(confirmed)
  yield* client.bank.confirmTransfer({ path: { transferId: confirmed } })
  const first = yield* settled(confirmed)
  yield* Effect.log(`transfer of 250 from ${alice} to ${bob}: ${first.status}`)

  const { transferId: doomed } = yield* client.bank.requestTransfer({
    payload: { from: alice, to: `nobody${run}`, amount: 100 }
  })
  const second = yield* settled(doomed)
  yield* Effect.log(
    `transfer of 100 from ${alice} to nobody${run}: ${second.status} (${second.error._tag === "Some" ? second.error.value : ""})`
  )

  // the read models catch up on their own; wait until they show every movement
  const expected = { [alice]: 5000 - 1500 - 250, [bob]: 100 + 250 }
  const accounts = yield* client.accountQueries.listAccounts({ headers: {} }).pipe(
    Effect.map((all) => all.filter((a) => a.accountId === alice || a.accountId === bob)),
    Effect.filterOrFail((mine) => mine.length === 2 && mine.every((a) => a.balance === expected[a.accountId])),
    Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("20 seconds"))),
    Effect.orElseFail(() => new Error(`balances do not add up: expected ${JSON.stringify(expected)}`))
  )
  for (const account of accounts) yield* Effect.log(`balance of ${account.accountId}: ${account.balance}`)
  const history = yield* client.accountQueries.accountHistory({ path: { accountId: alice }, headers: {} })
  for (const movement of history) {
    yield* Effect.log(`  ${alice} v${movement.version}: ${movement.kind} ${movement.amount} -> ${movement.balance}`)
  }
  const alerts = yield* Alerts.alerts.pipe(
    Effect.filterOrFail((rows) => rows.some((row) => row.account_id === alice)),
    Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("20 seconds")))
  )
  yield* Effect.log(
    `alerts (withdrawals of 1,000 or more, via the outbox and the event bus): ${alerts
      .filter((a) => a.account_id === alice)
      .map((a) => a.amount)
      .join(", ")}`
  )
  const { projections } = yield* client.projections.listProjections()
  for (const p of projections) yield* Effect.log(`runner ${p.name}: ${p.state}, lag ${p.lag.events} events`)
  const page = yield* client.events.listEvents({ urlParams: { category: ["Account"], limit: 1000 } })
  yield* Effect.log(`${page.events.length} account events in the log; browse them at http://127.0.0.1:${port}/`)
})

const main = Effect.gen(function* () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bank-demo-"))
  const config = yield* Bank.config.pipe(
    Effect.withConfigProvider(
      ConfigProvider.fromMap(
        new Map([
          ["PORT", "0"],
          ["BANK_DB", path.join(dir, "bank.db")]
        ])
      ).pipe(ConfigProvider.orElse(() => ConfigProvider.fromEnv()))
    )
  )
  yield* scenario.pipe(
    Effect.provide(Bank.layer(config)),
    Effect.provide(FetchHttpClient.layer),
    Effect.ensuring(Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
  )
  yield* Effect.log("demo done")
})

NodeRuntime.runMain(main)
