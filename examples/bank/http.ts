/**
 * The bank's HTTP API: the library's event browser (`GET /`, `/events`, `/streams/...`, `/projections`,
 * `/sagas/...`, `/health`, `/metrics`, `/openapi.json`) plus the bank's own group: commands go through the
 * command bus, reads come from the read models (eventually consistent: a read right after a command
 * may not show it yet).
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { CommandBus, Event, EventStore } from "effect-eventsourcing"
import { EventBrowserApi } from "effect-eventsourcing/http"
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
const Amount = Schema.Struct({ amount: Schema.Positive })

export class BankGroup extends HttpApiGroup.make("bank")
  .add(
    HttpApiEndpoint.post("openAccount", "/accounts")
      .setPayload(Schema.Struct({ accountId: AccountId, owner: Schema.NonEmptyTrimmedString }))
      .addSuccess(Handled, { status: 201 })
  )
  .add(
    HttpApiEndpoint.post("deposit", "/accounts/:accountId/deposits")
      .setPath(accountPath)
      .setPayload(Amount)
      .addSuccess(Handled)
  )
  .add(
    HttpApiEndpoint.post("withdraw", "/accounts/:accountId/withdrawals")
      .setPath(accountPath)
      .setPayload(Amount)
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
      .setPayload(Schema.Struct({ from: AccountId, to: AccountId, amount: Schema.Positive }))
      .addSuccess(Schema.Struct({ transferId: Schema.String }), { status: 202 })
  )
  .add(
    HttpApiEndpoint.post("confirmTransfer", "/transfers/:transferId/confirm")
      .setPath(Schema.Struct({ transferId: Schema.UUID }))
      .addSuccess(Schema.Struct({ transferId: Schema.String }), { status: 202 })
  )
  .addError(Refused)
  .addError(Invalid)
  .addError(Unavailable) {}

/** The event browser's groups and the bank's, served together. */
export class BankApi extends EventBrowserApi.Api.add(BankGroup) {}

/** A command's failure as HTTP: domain refusals 409, bad input 400, the rest 503. */
const commandFailure = (error: { readonly _tag: string; readonly message: string }) => {
  switch (error._tag) {
    case "CommandValidationError":
      return new Invalid({ message: error.message })
    case "AccountAlreadyOpen":
    case "AccountNotOpen":
    case "InsufficientFunds":
    case "BalanceNotZero":
      return new Refused({ reason: error._tag, message: error.message || error._tag })
    default:
      return new Unavailable({ message: error.message })
  }
}

const dispatch = <C extends CommandBus.Command>(command: C) =>
  Effect.flatMap(CommandBus.CommandBus, (bus) => bus.dispatch(command)).pipe(
    Effect.mapError((error) => commandFailure(error as { readonly _tag: string; readonly message: string }))
  )

const unavailable = (error: { readonly message: string }) => new Unavailable({ message: error.message })

/** Appends one transfer event to the transfer's stream (the `Transfer` saga reacts to it). */
const transferEvent = (transferId: string, type: string, data: object) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const event = yield* Event.make({ type, data })
    yield* store.append(`Transfer-${transferId}`, [event])
    return { transferId }
  }).pipe(Effect.mapError(unavailable))

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
