/**
 * The bank's HTTP API: the library's event browser and console (`GET /`, `/docs`, `/events`, `/events/live`,
 * `/streams/...`, `/projections`, `/sagas/...`, `/dead-letters`, `/health`, `/metrics`, `/openapi.json`) plus
 * the bank's own group: commands go through the command bus, reads come from the read models (eventually
 * consistent: a read right after a command may not show it yet).
 *
 * Client input never yields a 5xx, and only a failure worth retrying says so:
 * - the bodies are the commands' own Schemas (`Owner`, `Amount`, `AccountId`), so what passes here passes
 *   the command bus; **unknown fields are refused** (400), as the command bus refuses them: a misspelt
 *   field is an error, never silently dropped;
 * - {@link guard} answers a JSON body over {@link maxBodyBytes} with 413 and one nested deeper than
 *   {@link maxJsonDepth} with 400 before anything decodes it (describing a schema error on a value nested
 *   100,000 levels deep overflows the stack);
 * - failures: bad input 400 (`Invalid`, also a command whose events the store refuses as `InvalidAppend`),
 *   a domain refusal 409 (`Refused`), a transient failure 503 (`Unavailable`: try again), anything else
 *   500 (`Failed`: retrying will not help).
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
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { CommandBus, Event, EventStore } from "effect-eventsourcing"
import { EventBrowserApi } from "effect-eventsourcing/http"
import { Amount } from "./Account.js"
import { AccountId, Deposit, OpenAccount, Withdraw } from "./commands.js"
import * as ReadModels from "./readModels.js"

/** The command was refused by the domain (the account is not open, funds are insufficient...). */
export class Refused extends Schema.TaggedError<Refused>()(
  "Refused",
  { reason: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 409 })
) {}

/** The command was not valid. */
export class Invalid extends Schema.TaggedError<Invalid>()(
  "Invalid",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 400 })
) {}

/** The command failed in a way retrying will not fix (a bug, an undecodable stored event...). */
export class Failed extends Schema.TaggedError<Failed>()(
  "Failed",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 500 })
) {}

/** The command could not be handled now (store down, overloaded...): try again. */
export class Unavailable extends Schema.TaggedError<Unavailable>()(
  "Unavailable",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 503 })
) {}

export class AccountNotFound extends Schema.TaggedError<AccountNotFound>()(
  "AccountNotFound",
  { accountId: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {}

const Handled = Schema.Struct({ version: Schema.Number })
const accountPath = Schema.Struct({ accountId: AccountId })

/** A request body: unknown fields are refused, as the command bus refuses them. */
const body = <Fields extends Schema.Struct.Fields>(fields: Fields) =>
  Schema.Struct(fields).annotations({ parseOptions: { onExcessProperty: "error" } })

const OpenAccountBody = body({ accountId: OpenAccount.fields.accountId, owner: OpenAccount.fields.owner })
const AmountBody = body({ amount: Deposit.fields.amount })
const TransferBody = body({ from: AccountId, to: AccountId, amount: Amount })

export class BankGroup extends HttpApiGroup.make("bank")
  .add(
    HttpApiEndpoint.post("openAccount", "/accounts").setPayload(OpenAccountBody).addSuccess(Handled, { status: 201 })
  )
  .add(
    HttpApiEndpoint.post("deposit", "/accounts/:accountId/deposits")
      .setPath(accountPath)
      .setPayload(AmountBody)
      .addSuccess(Handled)
  )
  .add(
    HttpApiEndpoint.post("withdraw", "/accounts/:accountId/withdrawals")
      .setPath(accountPath)
      .setPayload(AmountBody)
      .addSuccess(Handled)
  )
  .add(HttpApiEndpoint.get("listAccounts", "/accounts").addSuccess(Schema.Array(ReadModels.AccountView)))
  .add(
    HttpApiEndpoint.get("getAccount", "/accounts/:accountId")
      .setPath(accountPath)
      .addSuccess(ReadModels.AccountView)
      .addError(AccountNotFound)
  )
  .add(
    HttpApiEndpoint.get("accountHistory", "/accounts/:accountId/history")
      .setPath(accountPath)
      .addSuccess(Schema.Array(ReadModels.Movement))
  )
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
  .addError(Refused)
  .addError(Invalid)
  .addError(Failed)
  .addError(Unavailable) {}

/** The event browser's groups and the bank's, served together. */
export class BankApi extends EventBrowserApi.Api.add(BankGroup) {}

/** The domain's refusals (the commands' failure Schemas). */
const isRefusal = (tag: string) =>
  ["AccountAlreadyOpen", "AccountNotOpen", "InsufficientFunds", "BalanceNotZero", "BalanceLimitExceeded"].includes(tag)

/** The bus's failures worth retrying (it already retried them; the client may, later). */
const isTransient = (tag: string) =>
  ["CommandUnavailable", "CommandTimeout", "BusOverloaded", "CommandCancelled", "CommandTransportError"].includes(tag)

/**
 * A command's failure as HTTP: bad input 400 (also events the store refuses as `InvalidAppend`: the
 * command's data, not the store, is at fault), domain refusals 409, transient failures 503, the rest 500.
 */
export const commandFailure = (error: {
  readonly _tag: string
  readonly message: string
  readonly errorTag?: string | undefined
}): Invalid | Refused | Unavailable | Failed => {
  if (error._tag === "CommandValidationError") return new Invalid({ message: error.message })
  if (error._tag === "CommandFailed" && error.errorTag === "InvalidAppend")
    return new Invalid({ message: error.message })
  if (isRefusal(error._tag)) return new Refused({ reason: error._tag, message: error.message || error._tag })
  if (isTransient(error._tag)) return new Unavailable({ message: error.message })
  return new Failed({ message: error.message })
}

const dispatch = <C extends CommandBus.Command>(command: C) =>
  Effect.flatMap(CommandBus.CommandBus, (bus) => bus.dispatch(command)).pipe(
    Effect.mapError((error) => commandFailure(error as Parameters<typeof commandFailure>[0]))
  )

/** A store failure as HTTP: a refused append is the request's fault (400); the rest may pass (503). */
const storeFailure = (error: { readonly _tag: string; readonly message: string }) =>
  error._tag === "InvalidAppend" || error._tag === "InvalidStreamId"
    ? new Invalid({ message: error.message })
    : new Unavailable({ message: error.message })

const unavailable = (error: { readonly message: string }) => new Unavailable({ message: error.message })

/** Appends one transfer event to the transfer's stream (the `Transfer` saga reacts to it). */
const transferEvent = (transferId: string, type: string, data: object) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const event = yield* Event.make({ type, data })
    yield* store.append(`Transfer-${transferId}`, [event])
    return { transferId }
  }).pipe(Effect.mapError(storeFailure))

export const BankHandlers = HttpApiBuilder.group(BankApi, "bank", (handlers) =>
  handlers
    .handle("openAccount", ({ payload }) => dispatch(new OpenAccount(payload)))
    .handle("deposit", ({ path, payload }) =>
      dispatch(new Deposit({ accountId: path.accountId, amount: payload.amount }))
    )
    .handle("withdraw", ({ path, payload }) =>
      dispatch(new Withdraw({ accountId: path.accountId, amount: payload.amount }))
    )
    .handle("listAccounts", () => Effect.mapError(ReadModels.accounts, unavailable))
    .handle("getAccount", ({ path }) =>
      ReadModels.account(path.accountId).pipe(
        Effect.mapError(unavailable),
        Effect.flatMap((found) =>
          found === undefined ? Effect.fail(new AccountNotFound({ accountId: path.accountId })) : Effect.succeed(found)
        )
      )
    )
    .handle("accountHistory", ({ path }) => Effect.mapError(ReadModels.history(path.accountId), unavailable))
    .handle("requestTransfer", ({ payload }) => {
      const transferId = crypto.randomUUID()
      return transferEvent(transferId, "TransferRequested", { transferId, ...payload })
    })
    .handle("confirmTransfer", ({ path }) =>
      transferEvent(path.transferId, "TransferConfirmed", { transferId: path.transferId })
    )
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
