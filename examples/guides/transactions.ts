import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { Event, EventStore, Outbox } from "effect-eventsourcing"
import { SqlEventStore } from "effect-eventsourcing/sql"
import { Sqlite } from "effect-eventsourcing/sqlite"

// your own rows, the events and an integration message commit together, or none of them does
const register = (userId: string, email: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const store = yield* EventStore.EventStore
    const work = Effect.gen(function* () {
      yield* sql`insert into users ${sql.insert({ id: userId, email })}`
      const registered = yield* Event.make({ type: "UserRegistered", data: { email } })
      yield* store.append(`User-${userId}`, [registered], { expectedVersion: Event.NoStream })
      // stored as an event of stream Welcome-<userId>: the outbox relay publishes it once this commits
      yield* Outbox.enqueue({ topic: "Welcome", key: userId, type: "SendWelcomeMail", data: { email } })
      if (!email.includes("@")) return yield* Effect.fail(`not an e-mail address: ${email}`)
    })
    return yield* sql.withTransaction(work)
  })

export const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const store = yield* EventStore.EventStore
  yield* sql`create table users (id text primary key, email text not null)`
  yield* register("1", "ada@example.com")
  // the failure rolls back the row, the event and the message
  const refused = yield* Effect.flip(register("2", "grace"))
  const [users] = yield* sql<{ readonly count: number }>`select count(*) as count from users`
  const events = yield* Stream.runCount(store.readAll())
  return { users: users!.count, events, refused }
})

export const main = program.pipe(
  Effect.provide(SqlEventStore.layer().pipe(Layer.provideMerge(Sqlite.layer({ filename: ":memory:" }))))
)
