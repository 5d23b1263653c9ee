/**
 * The bank's read-your-writes, end to end: a deposit, then a query carrying the deposit's `readAfter`,
 * sees the new balance every time, over HTTP (the derived `QueryApi`, typed client) and over NATS
 * (`NatsQueryTransport`), on SQLite (a file shared by the processes) and PostgreSQL, while the bank's
 * projections run in another process (`support/bankProjectionWorker.ts`).
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { AccountCommands, accountHandlers } from "../../examples/bank/commands.js"
import { AccountCommandsApi, AccountQueriesApi } from "../../examples/bank/http.js"
import { AccountQueries, accountQueryHandlers, GetAccount } from "../../examples/bank/queries.js"
import * as ReadModels from "../../examples/bank/readModels.js"
import * as CommandBus from "../../src/CommandBus.js"
import * as CommandApi from "../../src/http/CommandApi.js"
import * as QueryApi from "../../src/http/QueryApi.js"
import * as Nats from "../../src/nats/Nats.js"
import * as NatsQueryTransport from "../../src/nats/NatsQueryTransport.js"
import * as Postgres from "../../src/pg/Postgres.js"
import * as QueryBus from "../../src/QueryBus.js"
import * as SqlCheckpointStore from "../../src/sql/SqlCheckpointStore.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import * as Sqlite from "../../src/sqlite/Sqlite.js"
import { natsUrl } from "../support/config.js"
import { freshPgDatabase } from "../support/sql.js"

/** The bank's account commands and queries over HTTP: the derived groups, without the event browser. */
class Api extends HttpApi.make("bank").add(AccountCommandsApi).add(AccountQueriesApi) {}

const deposits = 12

/** The bank's web side on `database`: commands and queries (HTTP and NATS), no projections. */
const web = (database: Layer.Layer<SqlClient.SqlClient, unknown>, subjectPrefix: string) => {
  const stores = Layer.mergeAll(
    SqlEventStore.layer(),
    SqlCheckpointStore.layer(),
    Layer.effectDiscard(ReadModels.createTables)
  ).pipe(Layer.provideMerge(database))
  const buses = Layer.mergeAll(
    CommandBus.layer({ groups: [AccountCommands] }).pipe(Layer.provide(accountHandlers())),
    QueryBus.layer({
      groups: [AccountQueries],
      projections: [ReadModels.Balances, ReadModels.History],
      // the worker process starts meanwhile: the first waits may be long
      readAfterTimeout: "60 seconds"
    }).pipe(Layer.provide(accountQueryHandlers))
  )
  const http = HttpApiBuilder.serve().pipe(
    Layer.provide(HttpApiBuilder.api(Api)),
    Layer.provide(Layer.merge(CommandApi.layer(Api, "accounts"), QueryApi.layer(Api, "accountQueries"))),
    Layer.provideMerge(NodeHttpServer.layerTest)
  )
  const nats = NatsQueryTransport.serve({ subjectPrefix }).pipe(Layer.provide(Nats.layer({ servers: natsUrl })))
  return Layer.mergeAll(http, nats).pipe(Layer.provideMerge(buses), Layer.provideMerge(stores))
}

/** The projection worker process on `target` (a SQLite file or a PostgreSQL URL), killed with the scope. */
const projectionProcess = (target: string) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      spawn(
        process.execPath,
        ["--import", "tsx", fileURLToPath(new URL("../support/bankProjectionWorker.ts", import.meta.url)), target],
        { stdio: "inherit" }
      )
    ),
    (child) => Effect.sync(() => child.kill("SIGKILL"))
  )

/** Deposits, each followed by a query with its `readAfter`, over HTTP and over NATS: every answer shows it. */
const scenario = (target: string, database: Layer.Layer<SqlClient.SqlClient, unknown>) =>
  Effect.gen(function* () {
    const subjectPrefix = `ryw-${process.pid}-${Math.floor(Math.random() * 1e9)}`
    const context = yield* Layer.build(web(database, subjectPrefix))
    // started once the web side has created the tables: the two processes never migrate at once
    yield* projectionProcess(target)
    const client = yield* HttpApiClient.make(Api).pipe(Effect.provide(context))
    const remote = Context.get(
      yield* Layer.build(
        NatsQueryTransport.layerClient({ subjectPrefix, groups: [AccountQueries], timeout: "90 seconds" }).pipe(
          Layer.provide(Nats.layer({ servers: natsUrl }))
        )
      ),
      QueryBus.QueryBus
    )
    const accountId = `ryw${Math.floor(Math.random() * 1e9)}`
    yield* client.accounts.openAccount({ path: { accountId }, payload: { owner: "Reader" } })
    let expected = 0
    for (let amount = 1; amount <= deposits; amount++) {
      const deposited = yield* client.accounts.deposit({ path: { accountId }, payload: { amount } })
      expected += amount
      const readAfter = deposited.readAfter
      // alternately over HTTP and over NATS, each read right after its write
      const account =
        amount % 2 === 0
          ? yield* client.accountQueries.getAccount({ path: { accountId }, headers: { "read-after": readAfter } })
          : yield* remote.ask(new GetAccount({ accountId }), { readAfter })
      assert.strictEqual(account.balance, expected, `deposit ${amount} (${amount % 2 === 0 ? "HTTP" : "NATS"})`)
      assert.strictEqual(account.version, deposited.version)
    }
    // both transports, one more time each, after the same write
    const last = yield* client.accounts.withdraw({ path: { accountId }, payload: { amount: 1 } })
    const overHttp = yield* client.accountQueries.accountHistory({
      path: { accountId },
      headers: { "read-after": last.readAfter }
    })
    const overNats = yield* remote.ask(new GetAccount({ accountId }), { readAfter: last.readAfter })
    assert.strictEqual(overHttp.length, deposits + 1)
    assert.strictEqual(overNats.balance, expected - 1)
  })

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "bank-ryw-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

describe("examples/bank read-your-writes, the projections in another process", () => {
  it.scopedLive(
    "on SQLite (one file, two processes): every query after a deposit shows it, over HTTP and NATS",
    () =>
      Effect.gen(function* () {
        const file = path.join(yield* tempDir, "bank.db")
        yield* scenario(file, Sqlite.layer({ filename: file }))
      }),
    180_000
  )

  it.scopedLive(
    "on PostgreSQL: every query after a deposit shows it, over HTTP and NATS",
    () =>
      Effect.gen(function* () {
        const url = yield* freshPgDatabase("bank_ryw")
        yield* scenario(url, Postgres.layer({ url, maxConnections: 4 }))
      }),
    180_000
  )
})
