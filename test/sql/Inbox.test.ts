/**
 * The SQL inbox on SQLite and PostgreSQL: a message's claim commits with the handler's writes or not at
 * all; concurrent deliveries of one message on PostgreSQL run the handler once.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Inbox from "../../src/Inbox.js"
import * as SqlInbox from "../../src/sql/SqlInbox.js"
import { isolatedPrefix } from "../support/ids.js"
import { mysqlWithPrefix, pgWithSchema, sqliteMemory } from "../support/sql.js"

const schema = isolatedPrefix(import.meta.url)

const databases = [
  ["SQLite", SqlInbox.layer().pipe(Layer.provideMerge(sqliteMemory))],
  ["PostgreSQL", SqlInbox.layer({ schema }).pipe(Layer.provideMerge(pgWithSchema(schema)))],
  ["MariaDB", SqlInbox.layer({ tablePrefix: `${schema}_` }).pipe(Layer.provideMerge(mysqlWithPrefix(`${schema}_`)))]
] as const

/** The read model of the test, one row per handled message, in the file's own schema or prefix. */
const effectsTable = Effect.map(SqlClient.SqlClient, (sql) =>
  sql.onDialectOrElse({
    pg: () => `${schema}.inbox_effects`,
    mysql: () => `${schema}_inbox_effects`,
    orElse: () => "inbox_effects"
  })
)
const setup = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.flatMap(
    effectsTable,
    (table) =>
      sql`create table if not exists ${sql(table)} (consumer varchar(64) not null, message_id varchar(64) not null)`
  )
)
const write = (consumer: string, id: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.flatMap(effectsTable, (table) => sql`insert into ${sql(table)} values (${consumer}, ${id})`)
  )
const rows = (consumer: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.flatMap(
      effectsTable,
      (table) => sql<{ message_id: string }>`select message_id from ${sql(table)} where consumer = ${consumer}`
    )
  )

describe.each(databases)("SqlInbox (%s)", (_, layer) => {
  it.live("runs the handler once per message; a failed handler leaves no claim and no writes", () =>
    Effect.gen(function* () {
      yield* setup
      const inbox = yield* Inbox.Inbox
      const consumer = crypto.randomUUID()
      assert.deepStrictEqual(yield* inbox.once(consumer, "m1", Effect.as(write(consumer, "m1"), 1)), Option.some(1))
      assert.deepStrictEqual(yield* inbox.once(consumer, "m1", Effect.as(write(consumer, "m1"), 2)), Option.none())
      const failed = yield* Effect.flip(
        inbox.once(consumer, "m2", Effect.zipRight(write(consumer, "m2"), Effect.fail("boom")))
      )
      assert.strictEqual(failed, "boom")
      assert.deepStrictEqual(
        (yield* rows(consumer)).map((r) => r.message_id),
        ["m1"]
      )
      assert.deepStrictEqual(yield* inbox.once(consumer, "m2", Effect.as(write(consumer, "m2"), 3)), Option.some(3))
      assert.deepStrictEqual((yield* rows(consumer)).map((r) => r.message_id).sort(), ["m1", "m2"])
      // other consumers have their own record
      assert.deepStrictEqual(yield* inbox.once(`${consumer}-2`, "m1", Effect.succeed(4)), Option.some(4))
    }).pipe(Effect.provide(layer))
  )

  it.live("concurrent deliveries of one message run the handler once", () =>
    Effect.gen(function* () {
      yield* setup
      const inbox = yield* Inbox.Inbox
      const consumer = crypto.randomUUID()
      const results = yield* Effect.all(
        Array.from({ length: 8 }, () =>
          inbox.once(consumer, "m", Effect.zipRight(write(consumer, "m"), Effect.sleep("20 millis")))
        ),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(results.filter(Option.isSome).length, 1)
      assert.strictEqual((yield* rows(consumer)).length, 1)
    }).pipe(Effect.provide(layer))
  )

  it.live("prunes old claims", () =>
    Effect.gen(function* () {
      const inbox = yield* Inbox.Inbox
      const consumer = crypto.randomUUID()
      yield* inbox.once(consumer, "old", Effect.void)
      assert.strictEqual(yield* inbox.prune("1 hour"), 0)
      yield* Effect.sleep("5 millis")
      assert.isAtLeast(yield* inbox.prune("1 millis"), 1)
      assert.deepStrictEqual(yield* inbox.once(consumer, "old", Effect.succeed(1)), Option.some(1))
    }).pipe(Effect.provide(layer))
  )
})
