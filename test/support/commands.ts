/**
 * Commands of the bank's accounts as Schema.TaggedRequests, their handlers on the Account aggregate, and a
 * `Probe` command whose handler each test controls: shared by the command bus and transport tests.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import {
  Account,
  AccountAlreadyOpen,
  AccountNotOpen,
  BalanceNotZero,
  InsufficientFunds
} from "../../examples/bank/Account.js"
import * as Aggregate from "../../src/Aggregate.js"
import * as CommandBus from "../../src/CommandBus.js"

const AccountId = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9]{1,64}$/))
const Handled = Schema.Struct({ version: Schema.Number })

export class OpenAccount extends Schema.TaggedRequest<OpenAccount>()("OpenAccount", {
  failure: AccountAlreadyOpen,
  success: Handled,
  payload: { accountId: AccountId, owner: Schema.NonEmptyTrimmedString.pipe(Schema.maxLength(100)) }
}) {}

export class Deposit extends Schema.TaggedRequest<Deposit>()("Deposit", {
  failure: AccountNotOpen,
  success: Handled,
  payload: { accountId: AccountId, amount: Schema.Positive }
}) {}

export class Withdraw extends Schema.TaggedRequest<Withdraw>()("Withdraw", {
  failure: Schema.Union(AccountNotOpen, InsufficientFunds),
  success: Handled,
  payload: { accountId: AccountId, amount: Schema.Positive }
}) {}

export class CloseAccount extends Schema.TaggedRequest<CloseAccount>()("CloseAccount", {
  failure: Schema.Union(AccountNotOpen, BalanceNotZero),
  success: Handled,
  payload: { accountId: AccountId }
}) {}

/** A command with a handler under the test's control. */
export class Probe extends Schema.TaggedRequest<Probe>()("Probe", {
  failure: Schema.Never,
  success: Schema.String,
  payload: { n: Schema.Number }
}) {}

export const Accounts = CommandBus.group(OpenAccount, Deposit, Withdraw, CloseAccount)
export const Probes = CommandBus.group(Probe)

const handle = Aggregate.handler(Account)
const version = Effect.map((r: { readonly version: number }) => ({ version: r.version }))

/** The account commands, registered in one call; the account id is the aggregate id. */
export const accountHandlers = (category: string) =>
  Accounts.toLayer({
    OpenAccount: (c) => version(handle(`${category}${c.accountId}`, { _tag: "OpenAccount", owner: c.owner })),
    Deposit: (c) => version(handle(`${category}${c.accountId}`, { _tag: "Deposit", amount: c.amount })),
    Withdraw: (c) => version(handle(`${category}${c.accountId}`, { _tag: "Withdraw", amount: c.amount })),
    CloseAccount: (c) => version(handle(`${category}${c.accountId}`, { _tag: "CloseAccount" }))
  })

export const probeHandlers = (probe: (n: number) => Effect.Effect<string, unknown>) =>
  Probes.toLayer({ Probe: (c) => probe(c.n) })
