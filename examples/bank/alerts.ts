/**
 * An integration consumer: the `alerts` group of the event bus records every withdrawal of 1,000 or
 * more in `bank_alerts`. The outbox relay publishes the committed events (to JetStream, or to the
 * in-process bus on the embedded default); delivery is at-least-once, so the handler goes through the
 * inbox, which records the message id in the same transaction as the alert: a redelivery adds nothing.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { EventBus, Inbox } from "effect-eventsourcing"

const Withdrawal = Schema.Struct({ amount: Schema.Number })

export const createTable = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql`create table if not exists bank_alerts (
    message_id varchar(255) primary key,
    account_id text not null,
    amount double precision not null
  )`
)

export const LargeWithdrawals = Inbox.idempotent({
  group: "alerts",
  categories: ["Account"],
  maxDeliveries: 5,
  handle: (message: EventBus.Message) =>
    Effect.gen(function* () {
      if (message.type !== "MoneyWithdrawn") return
      const { amount } = yield* Schema.decodeUnknown(Withdrawal)(message.data)
      if (amount < 1000) return
      const sql = yield* SqlClient.SqlClient
      yield* sql`insert into bank_alerts ${sql.insert({
        message_id: message.id,
        account_id: message.streamId.slice("Account-".length),
        amount
      })}`
    })
})

/** The subscription, for as long as the Layer lives. */
export const layer = Layer.scopedDiscard(
  Effect.zipRight(
    createTable,
    Effect.flatMap(EventBus.EventBus, (bus) => bus.subscribe(LargeWithdrawals))
  )
)

/** The alerts recorded so far. */
export const alerts = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<{ readonly account_id: string; readonly amount: number }>`select account_id, amount from bank_alerts`
)
