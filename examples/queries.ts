import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { CommandBus, Projection, QueryBus } from "effect-eventsourcing"
import { QueryApi } from "effect-eventsourcing/http"
import { SqlCheckpointStore, SqlEventStore } from "effect-eventsourcing/sql"
import { Sqlite } from "effect-eventsourcing/sqlite"
import { AccountCommands, accountHandlers, Deposit, OpenAccount } from "./bank/commands.js"
import { AccountQueries, accountQueryHandlers, GetAccount } from "./bank/queries.js"
import * as ReadModels from "./bank/readModels.js"

// the queries' handlers by group, like commands; `projections` are those a readAfter may wait for
export const Queries = QueryBus.layer({
  groups: [AccountQueries],
  projections: [ReadModels.Balances, ReadModels.History]
}).pipe(Layer.provide(accountQueryHandlers))

// read-your-writes in process: the command answers its readAfter, the query waits for the projections
export const program = Effect.gen(function* () {
  const commands = yield* CommandBus.CommandBus
  yield* commands.dispatch(new OpenAccount({ accountId: "ada", owner: "Ada" }))
  const { readAfter } = yield* commands.dispatch(new Deposit({ accountId: "ada", amount: 100 }))
  // typed: the AccountView, or AccountNotFound, or a QueryBus error (ProjectionBehind after the timeout)
  const account = yield* QueryBus.ask(new GetAccount({ accountId: "ada" }), { readAfter })
  return account.balance // 100, every time
})

export const Live = Layer.mergeAll(
  Projection.layer(ReadModels.Balances),
  Projection.layer(ReadModels.History),
  Queries,
  CommandBus.layer({ groups: [AccountCommands] }).pipe(Layer.provide(accountHandlers()))
).pipe(
  Layer.provideMerge(
    Layer.mergeAll(SqlEventStore.layer(), SqlCheckpointStore.layer(), Layer.effectDiscard(ReadModels.createTables))
  ),
  Layer.provideMerge(Sqlite.layer({ filename: ":memory:" }))
)

// over HTTP, derived: GET /accounts/:accountId, GET /accounts, GET /accounts/:accountId/history
export const AccountQueriesApi = QueryApi.group("accountQueries", AccountQueries, {
  idField: "accountId",
  path: "/accounts",
  endpoints: { GetAccount: { path: "" }, ListAccounts: { path: "" }, AccountHistory: { path: "/history" } }
})
export class Api extends HttpApi.make("bank").add(AccountQueriesApi) {}
export const ApiLive = HttpApiBuilder.serve().pipe(
  Layer.provide(HttpApiBuilder.api(Api)),
  Layer.provide(QueryApi.layer(Api, "accountQueries")),
  Layer.provide(Queries)
)

// the typed client: the read-after header carries a command's readAfter (`headers: {}` without one)
export const read = (readAfter: QueryBus.ReadAfter) =>
  Effect.gen(function* () {
    const client = yield* HttpApiClient.make(Api)
    return yield* client.accountQueries.getAccount({ path: { accountId: "ada" }, headers: { "read-after": readAfter } })
  })
