/**
 * The bank's account aggregate: events, domain errors and the decider (its commands are the bus's, in
 * `commands.ts`, declared once). Every money event
 * records the balance after it, so a reader can check that no decision was taken on stale state.
 *
 * An account opened for a holder (a customer, {@link HolderId}) keeps the owner's name as personal data of
 * that holder (`Personal.field`): stored sealed with the holder's key, read as {@link erasedOwner} once the
 * holder is erased. An account opened without a holder keeps its owner's name in clear.
 *
 * The input rules live here once ({@link Owner}, {@link Amount}) and the command bus's commands and the
 * HTTP API use these same Schemas, so every layer accepts exactly what the decider can handle: a balance
 * stays a finite number within {@link maxBalance}.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Aggregate, type CommandBus, Personal } from "effect-eventsourcing"
import type { CloseAccount, Deposit, OpenAccount, Withdraw } from "./commands.js"

/** The largest balance an account may hold: beyond it, sums of numbers are no longer exact. */
export const maxBalance = Number.MAX_SAFE_INTEGER

// control characters and lone surrogates: not text a person is called, and no store keeps them
const unprintable =
  /[\u0000-\u001f\u007f-\u009f]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** An account's owner: 1 to 100 characters, trimmed, printable (no control character, no lone surrogate). */
export const Owner = Schema.NonEmptyTrimmedString.pipe(
  Schema.maxLength(100),
  Schema.filter((s) => !unprintable.test(s) || "an owner must not contain control characters or lone surrogates", {
    identifier: "Owner"
  })
)

/**
 * A holder's id: the data subject the owner's name belongs to, stored in clear beside the sealed name (an
 * opaque customer id, never an e-mail address): 1 to 64 letters, digits, `-` or `_`.
 */
export const HolderId = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_-]{1,64}$/, { identifier: "HolderId" }))

/** What an erased holder's owner name reads as, everywhere (aggregates, read models once rebuilt). */
export const erasedOwner = "(erased)"

/** An amount of money: a finite number above 0, at most {@link maxBalance} (`Infinity` and `1e309` are refused). */
export const Amount = Schema.Finite.pipe(
  Schema.positive(),
  Schema.lessThanOrEqualTo(maxBalance, { identifier: "Amount" })
)

/** What the decider decides on: the bus's account commands (`commands.ts`) without the account id. */
export type AccountCommand = CommandBus.DeciderCommand<OpenAccount | Deposit | Withdraw | CloseAccount, "accountId">

// events
export const AccountOpened = Schema.TaggedStruct("AccountOpened", {
  /** Personal data of `holderId` when there is one (sealed), else in clear. */
  owner: Personal.field(Schema.String, { subject: "holderId", erased: erasedOwner }),
  holderId: Schema.optional(Schema.String)
})
export const MoneyDeposited = Schema.TaggedStruct("MoneyDeposited", { amount: Schema.Finite, balance: Schema.Finite })
export const MoneyWithdrawn = Schema.TaggedStruct("MoneyWithdrawn", { amount: Schema.Finite, balance: Schema.Finite })
export const AccountClosed = Schema.TaggedStruct("AccountClosed", {})
export const AccountEvent = Schema.Union(AccountOpened, MoneyDeposited, MoneyWithdrawn, AccountClosed)
export type AccountEvent = typeof AccountEvent.Type

// domain errors
export class AccountAlreadyOpen extends Schema.TaggedError<AccountAlreadyOpen>()("AccountAlreadyOpen", {}) {}
export class AccountNotOpen extends Schema.TaggedError<AccountNotOpen>()("AccountNotOpen", {}) {}
export class InsufficientFunds extends Schema.TaggedError<InsufficientFunds>()("InsufficientFunds", {
  balance: Schema.Finite,
  requested: Schema.Finite
}) {}
export class BalanceNotZero extends Schema.TaggedError<BalanceNotZero>()("BalanceNotZero", {
  balance: Schema.Finite
}) {}
/** The deposit would take the balance beyond {@link maxBalance}. */
export class BalanceLimitExceeded extends Schema.TaggedError<BalanceLimitExceeded>()("BalanceLimitExceeded", {
  balance: Schema.Finite,
  requested: Schema.Finite,
  limit: Schema.Finite
}) {}
export type AccountError =
  AccountAlreadyOpen | AccountNotOpen | InsufficientFunds | BalanceNotZero | BalanceLimitExceeded

export const AccountState = Schema.Struct({
  status: Schema.Literal("none", "open", "closed"),
  balance: Schema.Finite
})
export type AccountState = typeof AccountState.Type

export const Account = Aggregate.make({
  category: "Account",
  events: AccountEvent,
  // the state keeps no personal value: command handlers may keep it between commands
  state: AccountState,
  initialState: { status: "none", balance: 0 } as AccountState,
  evolve: (state, event): AccountState => {
    switch (event._tag) {
      case "AccountOpened":
        return { status: "open", balance: 0 }
      case "MoneyDeposited":
      case "MoneyWithdrawn":
        return { ...state, balance: event.balance }
      case "AccountClosed":
        return { ...state, status: "closed" }
    }
  },
  decide: (command: AccountCommand, state): Effect.Effect<ReadonlyArray<AccountEvent>, AccountError> => {
    if (command._tag === "OpenAccount") {
      return state.status === "none"
        ? Effect.succeed([
            AccountOpened.make({
              owner: command.owner,
              ...(command.holderId === undefined ? {} : { holderId: command.holderId })
            })
          ])
        : Effect.fail(new AccountAlreadyOpen())
    }
    if (state.status !== "open") return Effect.fail(new AccountNotOpen())
    switch (command._tag) {
      case "Deposit":
        // compared without adding: the sum itself could overflow
        return command.amount > maxBalance - state.balance
          ? Effect.fail(
              new BalanceLimitExceeded({ balance: state.balance, requested: command.amount, limit: maxBalance })
            )
          : Effect.succeed([MoneyDeposited.make({ amount: command.amount, balance: state.balance + command.amount })])
      case "Withdraw":
        return command.amount > state.balance
          ? Effect.fail(new InsufficientFunds({ balance: state.balance, requested: command.amount }))
          : Effect.succeed([MoneyWithdrawn.make({ amount: command.amount, balance: state.balance - command.amount })])
      case "CloseAccount":
        return state.balance === 0
          ? Effect.succeed([AccountClosed.make({})])
          : Effect.fail(new BalanceNotZero({ balance: state.balance }))
    }
  }
})
