/**
 * The hot path's transactions on SQLite's one connection (`HotPath.transaction` of `Sqlite.layer`, and its
 * synchronous `synchronous.transaction`): statements through the client join them, nested ones are savepoints
 * that roll back alone, a failed COMMIT is typed and rolled back, and the connection goes on serving afterwards.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as HotPath from "../../src/sql/HotPath.js"
import { sqliteMemory } from "../support/sql.js"

const setUp = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const hot = yield* HotPath.HotPath
  const transaction = hot.transaction!
  const synchronous = hot.synchronous!
  yield* sql`create table if not exists hot_rows (id integer primary key, label text not null)`
  yield* sql`delete from hot_rows`
  const labels = Effect.map(sql<{ readonly label: string }>`select label from hot_rows order by id`, (rows) =>
    rows.map((r) => r.label)
  )
  const insert = (label: string) => sql`insert into hot_rows (label) values (${label})`
  const insertNow = (label: string) => synchronous.changes("insert into hot_rows (label) values (?)", [label])
  return { sql, transaction, synchronous, labels, insert, insertNow }
})

/**
 * A deferred foreign key, checked at COMMIT: the one way to make SQLite refuse a COMMIT on demand. A child row
 * inserted into `hot_children` makes its transaction's COMMIT fail (with `pragma foreign_keys = off` after).
 */
const refusingCommits = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.all([
    sql`pragma foreign_keys = on`,
    sql`create table if not exists hot_parents (id integer primary key)`,
    sql`create table if not exists hot_children (parent integer references hot_parents (id)
      deferrable initially deferred)`
  ])
)

describe("Sqlite.layer hot transactions", () => {
  layer(sqliteMemory, { excludeTestServices: true })((it) => {
    it.effect("commit what the client's statements wrote in them; a failure rolls it all back", () =>
      Effect.gen(function* () {
        const { insert, labels, transaction } = yield* setUp
        yield* transaction(Effect.zipRight(insert("a"), insert("b")))
        const failed = yield* Effect.exit(transaction(Effect.zipRight(insert("c"), Effect.fail("refused" as const))))
        assert.deepStrictEqual(failed, Exit.fail("refused"))
        assert.deepStrictEqual(yield* labels, ["a", "b"])
      })
    )

    it.effect("a nested one (or a client transaction inside) is a savepoint that rolls back alone", () =>
      Effect.gen(function* () {
        const { insert, labels, sql, transaction } = yield* setUp
        yield* transaction(
          Effect.gen(function* () {
            yield* insert("outer")
            yield* Effect.exit(transaction(Effect.zipRight(insert("inner, undone"), Effect.fail("no"))))
            yield* transaction(insert("inner, kept"))
            yield* Effect.exit(sql.withTransaction(Effect.zipRight(insert("client's, undone"), Effect.fail("no"))))
            yield* sql.withTransaction(insert("client's, kept"))
          })
        )
        assert.deepStrictEqual(yield* labels, ["outer", "inner, kept", "client's, kept"])
      })
    )

    it.effect("a COMMIT that fails is a typed SqlError, the writes are rolled back, the connection serves on", () =>
      Effect.gen(function* () {
        const { insert, labels, sql, transaction } = yield* setUp
        yield* refusingCommits
        const exit = yield* Effect.exit(
          transaction(Effect.zipRight(insert("orphaned"), sql`insert into hot_children (parent) values (42)`))
        )
        assert.isTrue(Exit.isFailure(exit))
        const error = Exit.isFailure(exit) ? exit.cause : undefined
        assert.include(String(error), "COMMIT failed")
        assert.strictEqual((yield* sql<{ readonly n: number }>`select count(*) as n from hot_children`)[0]!.n, 0)
        assert.deepStrictEqual(yield* labels, [])
        // the connection is out of the transaction: the next one commits
        yield* transaction(insert("after"))
        assert.deepStrictEqual(yield* labels, ["after"])
        yield* sql`pragma foreign_keys = off`
      })
    )

    it.effect("a synchronous one commits a body's answer, rolls back an undefined one, and a throw is a defect", () =>
      Effect.gen(function* () {
        const { insertNow, labels, synchronous } = yield* setUp
        assert.strictEqual(yield* synchronous.transaction(() => insertNow("a").changes), 1)
        assert.isUndefined(yield* synchronous.transaction(() => void insertNow("undone")))
        const thrown = yield* Effect.exit(
          synchronous.transaction(() => {
            insertNow("thrown")
            throw new Error("a bug")
          })
        )
        assert.isTrue(Exit.isFailure(thrown) && Cause.isDie(thrown.cause))
        assert.deepStrictEqual(yield* labels, ["a"])
      })
    )

    it.effect("a synchronous one whose COMMIT fails is a typed SqlError, rolled back; the connection serves on", () =>
      Effect.gen(function* () {
        const { insertNow, labels, sql, synchronous } = yield* setUp
        yield* refusingCommits
        const error = yield* Effect.flip(
          synchronous.transaction(() => {
            insertNow("orphaned")
            return synchronous.changes("insert into hot_children (parent) values (42)", [])
          })
        )
        assert.strictEqual(error._tag, "SqlError")
        assert.include(error.message, "COMMIT failed")
        assert.strictEqual((yield* sql<{ readonly n: number }>`select count(*) as n from hot_children`)[0]!.n, 0)
        assert.deepStrictEqual(yield* labels, [])
        assert.strictEqual(yield* synchronous.transaction(() => insertNow("after").changes), 1)
        assert.deepStrictEqual(yield* labels, ["after"])
        yield* sql`pragma foreign_keys = off`
      })
    )
  })
})
