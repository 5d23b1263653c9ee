import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { DeciderSpec, ProjectionSpec, SagaSpec } from "effect-eventsourcing/testing"
import { Sqlite } from "effect-eventsourcing/sqlite"
import { Account, AccountOpened, InsufficientFunds, MoneyDeposited, MoneyWithdrawn } from "../bank/Account.js"
import { Deposit, Withdraw } from "../bank/commands.js"
import { account, Balances, createTables } from "../bank/readModels.js"
import { Transfer, TransferRequested } from "../bank/Transfer.js"

const opened = AccountOpened.make({ owner: "Ada" })
const deposited = MoneyDeposited.make({ amount: 10, balance: 10 })

// a decider: given past events, when a command, then the events it decides (or the domain error)
export const withdrawing = Effect.all([
  DeciderSpec.make(Account)
    .given([opened, deposited])
    .when({ _tag: "Withdraw", amount: 4 })
    .then([MoneyWithdrawn.make({ amount: 4, balance: 6 })]),
  DeciderSpec.make(Account)
    .given([opened, deposited])
    .when({ _tag: "Withdraw", amount: 20 })
    .thenFails(new InsufficientFunds({ balance: 10, requested: 20 }))
])

// a projection: the given events are appended to memory stores and the projection catches up; then the
// assertion reads the read model (here SQLite tables, fresh for this specification)
export const balances = ProjectionSpec.make(Balances)
  .given([opened, deposited])
  .then(
    Effect.flatMap(account("1"), (view) =>
      view?.balance === 10 ? Effect.void : Effect.fail(`balance ${view?.balance}, expected 10`)
    )
  )
  .pipe(
    Effect.provide(Layer.effectDiscard(createTables).pipe(Layer.provideMerge(Sqlite.layer({ filename: ":memory:" }))))
  )

// a saga: given its inputs (events, timeouts), then the commands it sends, its status, its pending timeouts;
// `failing` names the commands that fail, by their index in the order sent
const requested = TransferRequested.make({ transferId: "t1", from: "A", to: "B", amount: 30 })
export const transfer = Effect.all([
  SagaSpec.make(Transfer)
    .given([requested])
    .then({
      commands: [new Withdraw({ accountId: "A", amount: 30 }), new Deposit({ accountId: "B", amount: 30 })],
      status: "running",
      timeouts: ["deadline"]
    }),
  // the deposit fails: the withdrawal is undone
  SagaSpec.make(Transfer)
    .given([requested], { failing: [1] })
    .then({
      commands: [
        new Withdraw({ accountId: "A", amount: 30 }),
        new Deposit({ accountId: "B", amount: 30 }),
        new Deposit({ accountId: "A", amount: 30 })
      ],
      status: "compensated",
      timeouts: []
    })
])
