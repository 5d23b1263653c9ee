/**
 * The bank's read models, in the event store's database: `bank_balances` (one row per account) and
 * `bank_history` (one row per money movement). Each is a projection whose writes commit with its
 * checkpoint, so every event is applied exactly once, and a rebuild (`truncate` then replay) gives the
 * same rows. The SQL is plain enough for both SQLite and PostgreSQL. A movement `History` cannot write is
 * set aside as a dead letter (`onPoison: "skip"`) rather than stopping the list: an operator fixes the cause
 * and retries it from the console (or the `dead-letters` command).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Projection } from "effect-eventsourcing"
import { Account } from "./Account.js"

/** Creates the read-model tables if they are missing. */
export const createTables = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`create table if not exists bank_balances (
    account_id varchar(255) primary key,
    owner text not null,
    balance double precision not null,
    status text not null,
    version integer not null
  )`
  yield* sql`create table if not exists bank_history (
    account_id varchar(255) not null,
    version integer not null,
    kind text not null,
    amount double precision not null,
    balance double precision not null,
    recorded_at text not null,
    primary key (account_id, version)
  )`
})

/** `Account-42` -> `42`. */
const accountIdOf = (streamId: string) => streamId.slice("Account-".length)

export const Balances = Projection.make({
  name: "balances",
  events: Account.codec,
  categories: ["Account"],
  handle: (event, envelope) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const id = accountIdOf(envelope.streamId)
      switch (event._tag) {
        case "AccountOpened":
          return yield* sql`insert into bank_balances ${sql.insert({
            account_id: id,
            owner: event.owner,
            balance: 0,
            status: "open",
            version: envelope.version
          })}`
        case "MoneyDeposited":
        case "MoneyWithdrawn":
          return yield* sql`update bank_balances set balance = ${event.balance}, version = ${envelope.version}
            where account_id = ${id}`
        case "AccountClosed":
          return yield* sql`update bank_balances set status = 'closed', version = ${envelope.version}
            where account_id = ${id}`
      }
    }),
  truncate: Effect.flatMap(SqlClient.SqlClient, (sql) => sql`delete from bank_balances`)
})

export const History = Projection.make({
  name: "history",
  events: Account.codec,
  categories: ["Account"],
  onPoison: "skip",
  handle: (event, envelope) =>
    Effect.gen(function* () {
      if (event._tag !== "MoneyDeposited" && event._tag !== "MoneyWithdrawn") return
      const sql = yield* SqlClient.SqlClient
      yield* sql`insert into bank_history ${sql.insert({
        account_id: accountIdOf(envelope.streamId),
        version: envelope.version,
        kind: event._tag === "MoneyDeposited" ? "deposit" : "withdrawal",
        amount: event.amount,
        balance: event.balance,
        recorded_at: DateTime.formatIso(envelope.recordedAt)
      })}`
    }),
  truncate: Effect.flatMap(SqlClient.SqlClient, (sql) => sql`delete from bank_history`)
})

export const AccountView = Schema.Struct({
  accountId: Schema.String,
  owner: Schema.String,
  balance: Schema.Number,
  status: Schema.String,
  version: Schema.Number
})

export const Movement = Schema.Struct({
  version: Schema.Number,
  kind: Schema.String,
  amount: Schema.Number,
  balance: Schema.Number,
  recordedAt: Schema.String
})

/** Every account, by id. */
export const accounts = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<typeof AccountView.Type>`select account_id as "accountId", owner, balance, status, version
    from bank_balances order by account_id`.pipe(Effect.map((rows) => rows.map(numeric)))
)

/** One account, if the projection has seen it. */
export const account = (accountId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<typeof AccountView.Type>`select account_id as "accountId", owner, balance, status, version
      from bank_balances where account_id = ${accountId}`.pipe(Effect.map((rows) => rows.map(numeric)[0]))
  )

/** An account's movements, oldest first. */
export const history = (accountId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<typeof Movement.Type>`select version, kind, amount, balance, recorded_at as "recordedAt"
      from bank_history where account_id = ${accountId} order by version`.pipe(
      Effect.map((rows) => rows.map((row) => ({ ...row, amount: Number(row.amount), balance: Number(row.balance) })))
    )
  )

// PostgreSQL returns double precision as numbers, but be strict about it for both drivers
const numeric = (row: typeof AccountView.Type) => ({
  ...row,
  balance: Number(row.balance),
  version: Number(row.version)
})
