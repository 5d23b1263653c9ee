import { describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { DeciderSpec } from "../../src/testing/index.js"
import {
  Account,
  AccountAlreadyOpen,
  AccountClosed,
  AccountNotOpen,
  AccountOpened,
  BalanceLimitExceeded,
  BalanceNotZero,
  InsufficientFunds,
  maxBalance,
  MoneyDeposited,
  MoneyWithdrawn
} from "../../examples/bank/Account.js"

const spec = DeciderSpec.make(Account)
const opened = AccountOpened.make({ owner: "ada" })

describe("examples/bank Account", () => {
  it.effect("opens once", () =>
    Effect.all([
      spec.given([]).when({ _tag: "OpenAccount", owner: "ada" }).then([opened]),
      spec.given([opened]).when({ _tag: "OpenAccount", owner: "bob" }).thenFails(new AccountAlreadyOpen())
    ])
  )

  it.effect("deposits and withdrawals record the balance after them", () =>
    Effect.all([
      spec
        .given([opened])
        .when({ _tag: "Deposit", amount: 30 })
        .then([MoneyDeposited.make({ amount: 30, balance: 30 })]),
      spec
        .given([opened, MoneyDeposited.make({ amount: 30, balance: 30 })])
        .when({ _tag: "Withdraw", amount: 10 })
        .then([MoneyWithdrawn.make({ amount: 10, balance: 20 })]),
      spec
        .given([opened, MoneyDeposited.make({ amount: 30, balance: 30 })])
        .when({ _tag: "Withdraw", amount: 10 })
        .thenState((state) => state.balance === 20)
    ])
  )

  it.effect("refuses what the state does not allow", () =>
    Effect.all([
      spec
        .given([opened, MoneyDeposited.make({ amount: 5, balance: 5 })])
        .when({ _tag: "Withdraw", amount: 6 })
        .thenFails(new InsufficientFunds({ balance: 5, requested: 6 })),
      spec.given([]).when({ _tag: "Deposit", amount: 1 }).thenFails(new AccountNotOpen()),
      spec
        .given([opened, AccountClosed.make({})])
        .when({ _tag: "Deposit", amount: 1 })
        .thenFails((error) => error._tag === "AccountNotOpen"),
      spec
        .given([opened, MoneyDeposited.make({ amount: 5, balance: 5 })])
        .when({ _tag: "CloseAccount" })
        .thenFails(new BalanceNotZero({ balance: 5 })),
      spec
        .given([opened])
        .when({ _tag: "CloseAccount" })
        .then([AccountClosed.make({})])
    ])
  )

  it.effect("a deposit that would take the balance beyond maxBalance is refused; up to it is fine", () =>
    Effect.all([
      spec
        .given([opened, MoneyDeposited.make({ amount: maxBalance, balance: maxBalance })])
        .when({ _tag: "Deposit", amount: 1 })
        .thenFails(new BalanceLimitExceeded({ balance: maxBalance, requested: 1, limit: maxBalance })),
      spec
        .given([opened, MoneyDeposited.make({ amount: 1, balance: 1 })])
        .when({ _tag: "Deposit", amount: maxBalance - 1 })
        .then([MoneyDeposited.make({ amount: maxBalance - 1, balance: maxBalance })])
    ])
  )

  it.effect("a spec that does not hold fails with DeciderSpecFailure", () =>
    Effect.gen(function* () {
      const wrongEvents = yield* Effect.flip(spec.given([opened]).when({ _tag: "Deposit", amount: 1 }).then([]))
      const wrongError = yield* Effect.flip(
        spec.given([opened]).when({ _tag: "Withdraw", amount: 1 }).thenFails(new AccountNotOpen())
      )
      const succeeded = yield* Effect.flip(
        spec.given([opened]).when({ _tag: "CloseAccount" }).thenFails(new AccountNotOpen())
      )
      for (const failure of [wrongEvents, wrongError, succeeded]) {
        if (failure._tag !== "DeciderSpecFailure") return yield* Effect.die("expected a DeciderSpecFailure")
      }
    })
  )
})
