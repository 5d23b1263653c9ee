/**
 * The bank's account commands, declared once, as `Schema.TaggedRequest`s for the command bus (each names
 * the account it acts on): the `Account` decider decides on them (without the account id), and
 * `CommandBus.deciderLayer` hands them to it. Their fields are the aggregate's Schemas (`Owner`, `Amount`),
 * which the HTTP API reuses (`holderId`: the customer whose personal data the owner's name is, see
 * `Account.ts`): what one layer accepts, the others do.
 */
import * as Schema from "effect/Schema"
import { CommandBus, QueryBus } from "effect-eventsourcing"
import {
  Account,
  AccountAlreadyOpen,
  AccountNotOpen,
  Amount,
  BalanceLimitExceeded,
  BalanceNotZero,
  HolderId,
  InsufficientFunds,
  Owner
} from "./Account.js"

export const AccountId = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9]{1,64}$/))
/**
 * What a command answers: the account's version after it, and its `readAfter`: ask a query with it (over
 * HTTP, as the `read-after` header) and the answer shows this command.
 */
export const Handled = Schema.Struct({ version: Schema.Number, readAfter: QueryBus.ReadAfter })

export class OpenAccount extends Schema.TaggedRequest<OpenAccount>()("OpenAccount", {
  failure: AccountAlreadyOpen,
  success: Handled,
  payload: { accountId: AccountId, owner: Owner, holderId: Schema.optional(HolderId) }
}) {}

export class Deposit extends Schema.TaggedRequest<Deposit>()("Deposit", {
  failure: Schema.Union(AccountNotOpen, BalanceLimitExceeded),
  success: Handled,
  payload: { accountId: AccountId, amount: Amount }
}) {}

export class Withdraw extends Schema.TaggedRequest<Withdraw>()("Withdraw", {
  failure: Schema.Union(AccountNotOpen, InsufficientFunds),
  success: Handled,
  payload: { accountId: AccountId, amount: Amount }
}) {}

export class CloseAccount extends Schema.TaggedRequest<CloseAccount>()("CloseAccount", {
  failure: Schema.Union(AccountNotOpen, BalanceNotZero),
  success: Handled,
  payload: { accountId: AccountId }
}) {}

export const AccountCommands = CommandBus.group(OpenAccount, Deposit, Withdraw, CloseAccount)

/** The account commands' handlers: the `Account` decider; `prefix` goes before every account id (tests isolate themselves with it). */
export const accountHandlers = (prefix = "") =>
  CommandBus.deciderLayer(AccountCommands, Account, {
    idField: "accountId",
    idPrefix: prefix,
    success: (result) => ({ version: result.version, readAfter: QueryBus.readAfter(result) })
  })
