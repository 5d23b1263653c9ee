/**
 * The bank's HTTP API: the library's event browser and console (`GET /`, `/docs`, `/events`, `/events/live`,
 * `/streams/...`, `/projections`, `/sagas/...`, `/dead-letters`, `/health`, `/metrics`, `/openapi.json`), the
 * account commands derived from the command bus group (`CommandApi`: `POST /accounts/:accountId/open`,
 * `/deposit`, `/withdraw`, `/close`), the account queries derived from the query bus group (`QueryApi`:
 * `GET /accounts`, `/accounts/:accountId`, `/accounts/:accountId/history`, answered from the read models:
 * eventually consistent, unless the request carries a command's `readAfter` as its `read-after` header),
 * and the bank's own group: transfers.
 *
 * Client input never yields a 5xx, and only a failure worth retrying says so:
 * - the command bodies are the commands' own fields, so what passes here passes the command bus; **unknown
 *   fields are refused** (400), as the command bus refuses them: a misspelt field is an error, never dropped;
 * - {@link guard} answers a JSON body over {@link maxBodyBytes} with 413 and one nested deeper than
 *   {@link maxJsonDepth} with 400 before anything decodes it (describing a schema error on a value nested
 *   100,000 levels deep overflows the stack);
 * - commands: bad input 400, a domain refusal 409 (the error itself: `InsufficientFunds`...), a transient
 *   failure 503 (try again), anything else 500 (see `CommandApi.group`); queries: bad input 400, an unknown
 *   account 404, a read model unavailable or behind the `read-after` write 503 (see `QueryApi.group`);
 *   transfers: bad input 400 (`Invalid`), a store failure 503 (`Unavailable`).
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpMethod from "@effect/platform/HttpMethod"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { Event, EventStore } from "effect-eventsourcing"
import { CommandApi, EventBrowserApi, QueryApi } from "effect-eventsourcing/http"
import { Amount } from "./Account.js"
import { AccountCommands, AccountId } from "./commands.js"
import { AccountQueries } from "./queries.js"

/** The request was not valid. */
export class Invalid extends Schema.TaggedError<Invalid>()(
  "Invalid",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 400 })
) {}

/** The request could not be handled now (store down...): try again. */
export class Unavailable extends Schema.TaggedError<Unavailable>()(
  "Unavailable",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 503 })
) {}

/** A request body: unknown fields are refused, as the command bus refuses them. */
const body = <Fields extends Schema.Struct.Fields>(fields: Fields) =>
  Schema.Struct(fields).annotations({ parseOptions: { onExcessProperty: "error" } })

const TransferBody = body({ from: AccountId, to: AccountId, amount: Amount })

/**
 * The account commands (`commands.ts`) over HTTP, derived: `POST /accounts/:accountId/open` (201),
 * `/deposit`, `/withdraw` and `/close`, each answering the command's success or its domain error (409).
 */
export const AccountCommandsApi = CommandApi.group("accounts", AccountCommands, {
  idField: "accountId",
  path: "/accounts",
  endpoints: { OpenAccount: { path: "/open", status: 201 }, CloseAccount: { path: "/close" } }
})

/**
 * The account queries (`queries.ts`) over HTTP, derived: `GET /accounts`, `/accounts/:accountId` (404 when
 * unknown) and `/accounts/:accountId/history`; each takes a command's `readAfter` as its `read-after` header.
 */
export const AccountQueriesApi = QueryApi.group("accountQueries", AccountQueries, {
  idField: "accountId",
  path: "/accounts",
  endpoints: { GetAccount: { path: "" }, ListAccounts: { path: "" }, AccountHistory: { path: "/history" } }
})

/** The bank's own endpoints: transfers (events the `Transfer` saga reacts to). */
export class BankGroup extends HttpApiGroup.make("bank")
  .add(
    HttpApiEndpoint.post("requestTransfer", "/transfers")
      .setPayload(TransferBody)
      .addSuccess(Schema.Struct({ transferId: Schema.String }), { status: 202 })
  )
  .add(
    HttpApiEndpoint.post("confirmTransfer", "/transfers/:transferId/confirm")
      .setPath(Schema.Struct({ transferId: Schema.UUID }))
      .addSuccess(Schema.Struct({ transferId: Schema.String }), { status: 202 })
  )
  .addError(Invalid)
  .addError(Unavailable) {}

/** The event browser's groups, the account commands and queries, and the bank's own, served together. */
export class BankApi extends EventBrowserApi.Api.add(AccountCommandsApi).add(AccountQueriesApi).add(BankGroup) {}

/** A store failure as HTTP: a refused append is the request's fault (400); the rest may pass (503). */
const storeFailure = (error: { readonly _tag: string; readonly message: string }) =>
  error._tag === "InvalidAppend" || error._tag === "InvalidStreamId"
    ? new Invalid({ message: error.message })
    : new Unavailable({ message: error.message })

/** Appends one transfer event to the transfer's stream (the `Transfer` saga reacts to it). */
const transferEvent = (transferId: string, type: string, data: object) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const event = yield* Event.make({ type, data })
    yield* store.append(`Transfer-${transferId}`, [event])
    return { transferId }
  }).pipe(Effect.mapError(storeFailure))

const bankHandlers = HttpApiBuilder.group(BankApi, "bank", (handlers) =>
  handlers
    .handle("requestTransfer", ({ payload }) => {
      const transferId = crypto.randomUUID()
      return transferEvent(transferId, "TransferRequested", { transferId, ...payload })
    })
    .handle("confirmTransfer", ({ path }) =>
      transferEvent(path.transferId, "TransferConfirmed", { transferId: path.transferId })
    )
)

/**
 * The handlers of the account commands (dispatched on the command bus), of the account queries (asked of
 * the query bus) and of the bank's own group.
 */
export const BankHandlers = Layer.mergeAll(
  CommandApi.layer(BankApi, "accounts"),
  QueryApi.layer(BankApi, "accountQueries"),
  bankHandlers
)

// ---------------------------------------------------------------------------------------------------
// the request guard
// ---------------------------------------------------------------------------------------------------

/** Largest request body the bank reads: its commands are a few hundred bytes. */
export const maxBodyBytes = 64 * 1024

/** Deepest nesting of arrays and objects in a JSON body: the bank's bodies are one level deep. */
export const maxJsonDepth = 32

/** The platform reads a body without a content type as JSON, as it does `application/json`. */
const isJson = (contentType: string | undefined) =>
  contentType === undefined || contentType.toLowerCase().includes("application/json")

/**
 * How deeply `text` nests arrays and objects, counted without parsing (so without recursion), stopping
 * once past `limit`. Brackets inside strings do not count.
 */
export const jsonDepth = (text: string, limit: number): number => {
  let depth = 0
  let deepest = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 92)
        i++ // backslash: skip the escaped character
      else if (c === 34) inString = false
    } else if (c === 34) inString = true
    else if (c === 91 || c === 123) {
      depth++
      if (depth > deepest) deepest = depth
      if (deepest > limit) return deepest
    } else if (c === 93 || c === 125) depth--
  }
  return deepest
}

const refuse = (status: 400 | 413, message: string) =>
  HttpServerResponse.unsafeJson({ _tag: status === 413 ? "PayloadTooLarge" : "Invalid", message }, { status })

/**
 * The bank's request guard (an `HttpApp` middleware, for `HttpApiBuilder.serve`): bodies are read up to
 * {@link maxBodyBytes} (413 beyond it), and a JSON body nested deeper than {@link maxJsonDepth} is a 400
 * before anything decodes it. Requests without a body, and bodies of other content types, pass as they are.
 */
export const guard = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R | HttpServerRequest.HttpServerRequest> =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (!HttpMethod.hasBody(request.method) || !isJson(request.headers["content-type"])) return yield* app
    const declared = Number(request.headers["content-length"] ?? 0)
    if (declared > maxBodyBytes) return refuse(413, `The body is ${declared} bytes, the limit is ${maxBodyBytes}`)
    // the platform keeps the text it read: decoding the payload later reads it from there
    const text = yield* Effect.either(request.text)
    if (Either.isLeft(text)) {
      return refuse(413, `The body could not be read whole (at most ${maxBodyBytes} bytes are)`)
    }
    if (jsonDepth(text.right, maxJsonDepth) > maxJsonDepth) {
      return refuse(400, `The body nests arrays or objects more than ${maxJsonDepth} levels deep`)
    }
    return yield* app
  }).pipe(HttpIncomingMessage.withMaxBodySize(Option.some(maxBodyBytes)))
