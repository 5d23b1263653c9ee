/**
 * The bank's account aggregate: commands, events, domain errors and the decider. Every money event
 * records the balance after it, so a reader can check that no decision was taken on stale state.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Aggregate } from "effect-eventsourcing"

// commands
export const OpenAccount = Schema.TaggedStruct("OpenAccount", { owner: Schema.NonEmptyTrimmedString })
export const Deposit = Schema.TaggedStruct("Deposit", { amount: Schema.Positive })
export const Withdraw = Schema.TaggedStruct("Withdraw", { amount: Schema.Positive })
export const CloseAccount = Schema.TaggedStruct("CloseAccount", {})
export const AccountCommand = Schema.Union(OpenAccount, Deposit, Withdraw, CloseAccount)
export type AccountCommand = typeof AccountCommand.Type

// events
export const AccountOpened = Schema.TaggedStruct("AccountOpened", { owner: Schema.String })
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
export type AccountError = AccountAlreadyOpen | AccountNotOpen | InsufficientFunds | BalanceNotZero

export const AccountState = Schema.Struct({
  status: Schema.Literal("none", "open", "closed"),
  balance: Schema.Finite
})
export type AccountState = typeof AccountState.Type

export const Account = Aggregate.make({
  category: "Account",
  events: AccountEvent,
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
        ? Effect.succeed([AccountOpened.make({ owner: command.owner })])
        : Effect.fail(new AccountAlreadyOpen())
    }
    if (state.status !== "open") return Effect.fail(new AccountNotOpen())
    switch (command._tag) {
      case "Deposit":
        return Effect.succeed([
          MoneyDeposited.make({ amount: command.amount, balance: state.balance + command.amount })
        ])
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
