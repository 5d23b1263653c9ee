import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as OpenApi from "@effect/platform/OpenApi"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { CommandBus, MemoryEventStore } from "effect-eventsourcing"
import { CommandApi } from "effect-eventsourcing/http"
import { AccountCommands, accountHandlers } from "./bank/commands.js"

// one POST endpoint per command of the group: the account id in the path, the other fields as the body,
// typed by the command (success, domain errors: 409 unless annotated); the default path is the tag in
// kebab case (POST /accounts/:accountId/deposit)
export const AccountsApi = CommandApi.group("accounts", AccountCommands, {
  idField: "accountId",
  path: "/accounts",
  endpoints: { OpenAccount: { path: "/open", status: 201 } }
})
export class Api extends HttpApi.make("bank").add(AccountsApi) {}

// served by dispatching each request on the command bus
const Bus = CommandBus.layer({ groups: [AccountCommands] }).pipe(
  Layer.provide(accountHandlers()),
  Layer.provide(MemoryEventStore.layer())
)
export const ApiLive = HttpApiBuilder.serve().pipe(
  Layer.provide(HttpApiBuilder.api(Api)),
  Layer.provide(CommandApi.layer(Api, "accounts")),
  Layer.provide(Bus)
)

// a typed client: a misspelt field does not compile, and the domain errors are in the error type
export const program = Effect.gen(function* () {
  const client = yield* HttpApiClient.make(Api)
  yield* client.accounts.openAccount({ path: { accountId: "ada" }, payload: { owner: "Ada" } })
  const { version } = yield* client.accounts.deposit({ path: { accountId: "ada" }, payload: { amount: 100 } })
  // the refusal is typed: InsufficientFunds (409), with the balance
  const refused = yield* Effect.flip(client.accounts.withdraw({ path: { accountId: "ada" }, payload: { amount: 500 } }))
  return { version, refused: refused._tag, balance: refused._tag === "InsufficientFunds" ? refused.balance : 0 }
})

// the OpenAPI document describes every command, for clients in other languages
export const document = OpenApi.fromApi(Api)

// in process, on a free port, with an HTTP client aimed at it
export const main = program.pipe(Effect.provide(ApiLive.pipe(Layer.provideMerge(NodeHttpServer.layerTest))))
