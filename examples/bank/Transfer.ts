/**
 * Money transfers between two accounts, as a saga: on `TransferRequested` it withdraws from one
 * account and deposits to the other, each step recording the command that undoes it. If a step fails
 * (the other account is closed, say), or no `TransferConfirmed` arrives before the deadline, the steps
 * done are undone, newest first.
 */
import * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"
import { Saga } from "effect-eventsourcing"
import { Deposit, Withdraw } from "./commands.js"

export const TransferRequested = Schema.TaggedStruct("TransferRequested", {
  transferId: Schema.String,
  from: Schema.String,
  to: Schema.String,
  amount: Schema.Positive
})
export const TransferConfirmed = Schema.TaggedStruct("TransferConfirmed", { transferId: Schema.String })
export const TransferEvent = Schema.Union(TransferRequested, TransferConfirmed)
export type TransferEvent = typeof TransferEvent.Type

export const TransferState = Schema.Struct({ step: Schema.Literal("new", "moved", "done") })
export type TransferState = typeof TransferState.Type

/** The transfer saga; the options let tests run isolated copies. */
export const makeTransfer = (
  options: {
    readonly name?: string
    /** Category of the streams holding the transfer events; default `Transfer`. */
    readonly category?: string
    readonly deadline?: Duration.DurationInput
  } = {}
) =>
  Saga.make({
    name: options.name ?? "transfer",
    events: TransferEvent,
    categories: [options.category ?? "Transfer"],
    correlate: (event) => event.transferId,
    state: TransferState,
    initialState: { step: "new" } as TransferState,
    commands: [Withdraw, Deposit],
    react: (state, input): Saga.Reaction<TransferState, Withdraw | Deposit> => {
      switch (input._tag) {
        case "TransferRequested":
          return {
            state: { step: "moved" },
            commands: [
              {
                command: new Withdraw({ accountId: input.from, amount: input.amount }),
                compensation: new Deposit({ accountId: input.from, amount: input.amount })
              },
              {
                command: new Deposit({ accountId: input.to, amount: input.amount }),
                compensation: new Withdraw({ accountId: input.to, amount: input.amount })
              }
            ],
            schedule: [{ name: "deadline", after: options.deadline ?? "30 seconds" }]
          }
        case "TransferConfirmed":
          return { state: { step: "done" }, complete: true }
        case "SagaTimeout":
          return { state, fail: `${input.name} passed` }
      }
    }
  })

export const Transfer = makeTransfer()
