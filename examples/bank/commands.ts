/**
 * The bank's account commands as `Schema.TaggedRequest`s for the command bus (each names the account it
 * acts on), and their handlers on the `Account` aggregate, registered in one call. Their fields are the
 * aggregate's Schemas (`Owner`, `Amount`), which the HTTP API reuses: what one layer accepts, the others do.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Aggregate, CommandBus } from "effect-eventsourcing"
import {
  Account,
  AccountAlreadyOpen,
  AccountNotOpen,
  Amount,
  BalanceLimitExceeded,
  BalanceNotZero,
  InsufficientFunds,
  Owner
} from "./Account.js"

export const AccountId = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9]{1,64}$/))
export const Handled = Schema.Struct({ version: Schema.Number })

export class OpenAccount extends Schema.TaggedRequest<OpenAccount>()("OpenAccount", {
  failure: AccountAlreadyOpen,
  success: Handled,
  payload: { accountId: AccountId, owner: Owner }
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

const handle = Aggregate.handler(Account)
const handled = Effect.map((result: { readonly version: number }) => ({ version: result.version }))

/** The account commands' handlers; `prefix` goes before every account id (tests isolate themselves with it). */
export const accountHandlers = (prefix = "") =>
  AccountCommands.toLayer({
    OpenAccount: (c) => handled(handle(`${prefix}${c.accountId}`, { _tag: "OpenAccount", owner: c.owner })),
    Deposit: (c) => handled(handle(`${prefix}${c.accountId}`, { _tag: "Deposit", amount: c.amount })),
    Withdraw: (c) => handled(handle(`${prefix}${c.accountId}`, { _tag: "Withdraw", amount: c.amount })),
    CloseAccount: (c) => handled(handle(`${prefix}${c.accountId}`, { _tag: "CloseAccount" }))
  })
