/**
 * The bank's queries, declared once, as `Schema.TaggedRequest`s for the query bus, answered from the read
 * models (`readModels.ts`): an account, every account, an account's movements. The HTTP API derives its
 * read endpoints from them (`QueryApi`), and the same queries cross NATS (`NatsQueryTransport`). Asked with
 * a command's `readAfter`, a query answers once the projections show that command.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { QueryBus } from "effect-eventsourcing"
import { AccountId } from "./commands.js"
import * as ReadModels from "./readModels.js"

/** No such account in the read model (yet: without `readAfter`, a new account may not show at once). */
export class AccountNotFound extends Schema.TaggedError<AccountNotFound>()(
  "AccountNotFound",
  { accountId: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {}

export class GetAccount extends Schema.TaggedRequest<GetAccount>()("GetAccount", {
  failure: AccountNotFound,
  success: ReadModels.AccountView,
  payload: { accountId: AccountId }
}) {}

export class ListAccounts extends Schema.TaggedRequest<ListAccounts>()("ListAccounts", {
  failure: Schema.Never,
  success: Schema.Array(ReadModels.AccountView),
  payload: {}
}) {}

export class AccountHistory extends Schema.TaggedRequest<AccountHistory>()("AccountHistory", {
  failure: Schema.Never,
  success: Schema.Array(ReadModels.Movement),
  payload: { accountId: AccountId }
}) {}

export const AccountQueries = QueryBus.group(GetAccount, ListAccounts, AccountHistory)

/** The read model could not be read (its database is unavailable): the query bus retries, then answers 503. */
export class ReadModelUnavailable extends Schema.TaggedError<ReadModelUnavailable>()("ReadModelUnavailable", {
  message: Schema.String,
  transient: Schema.Literal(true)
}) {}

const unavailable = (error: { readonly message: string }) =>
  new ReadModelUnavailable({ message: error.message, transient: true })

/** The queries' handlers: reads of the read models, in the database in context. */
export const accountQueryHandlers = AccountQueries.toLayer({
  GetAccount: ({ accountId }) =>
    ReadModels.account(accountId).pipe(
      Effect.mapError(unavailable),
      Effect.flatMap((found) =>
        found === undefined ? Effect.fail(new AccountNotFound({ accountId })) : Effect.succeed(found)
      )
    ),
  ListAccounts: () => Effect.mapError(ReadModels.accounts, unavailable),
  AccountHistory: ({ accountId }) => Effect.mapError(ReadModels.history(accountId), unavailable)
})

/** The query bus of the bank: its queries, and the projections a `readAfter` waits for. */
export const queryBus = QueryBus.layer({
  groups: [AccountQueries],
  projections: [ReadModels.Balances, ReadModels.History]
})
