import { assert, describe, it, layer } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as CheckpointStore from "../../src/CheckpointStore.js"
import * as Event from "../../src/Event.js"
import * as SqlClient from "@effect/sql/SqlClient"
import { tables } from "../../src/sql/migrations.js"
import * as SqlCheckpointStore from "../../src/sql/SqlCheckpointStore.js"
import * as SqlInbox from "../../src/sql/SqlInbox.js"
import * as SqlSagaStore from "../../src/sql/SqlSagaStore.js"
import * as SqlSnapshotStore from "../../src/sql/SqlSnapshotStore.js"
import { isolatedPrefix, uniqueCategory } from "../support/ids.js"
import { mysqlWithPrefix, pgWithSchema, sqliteFile, sqliteMemory } from "../support/sql.js"
import { suite } from "../suites/CheckpointStoreSuite.js"

suite("SqlCheckpointStore on SQLite (memory)", SqlCheckpointStore.layer().pipe(Layer.provide(sqliteMemory)), {
  transactional: true
})

suite(
  "SqlCheckpointStore on SQLite (file)",
  SqlCheckpointStore.layer({ tablePrefix: "cp_" }).pipe(Layer.provide(sqliteFile)),
  { transactional: true }
)

const schema = isolatedPrefix(import.meta.url)
suite(
  "SqlCheckpointStore on PostgreSQL",
  SqlCheckpointStore.layer({ schema }).pipe(Layer.provide(pgWithSchema(schema))),
  { transactional: true }
)

suite(
  "SqlCheckpointStore on MariaDB",
  SqlCheckpointStore.layer({ tablePrefix: `${schema}_` }).pipe(Layer.provide(mysqlWithPrefix(`${schema}_`))),
  { transactional: true }
)

// a projection batch's transaction reads (the handler's queries) before it commits; meanwhile its lease
// expires and another worker takes the partition over: the commit must say LeaseLost, whatever the
// transaction's snapshot still shows (MySQL's REPEATABLE READ keeps the one of its first read). Needs a store
// whose transactions run beside other connections: not SQLite, whose one connection serializes them.
for (const [name, storeLayer] of [
  ["PostgreSQL", SqlCheckpointStore.layer({ schema }).pipe(Layer.provide(pgWithSchema(schema)))],
  [
    "MariaDB",
    SqlCheckpointStore.layer({ tablePrefix: `${schema}_` }).pipe(Layer.provide(mysqlWithPrefix(`${schema}_`)))
  ]
] as const) {
  layer(storeLayer, { excludeTestServices: true, timeout: "60 seconds" })(`SqlCheckpointStore on ${name}`, (it) => {
    it.effect("a commit whose lease was taken over after the transaction first read fails with LeaseLost", () =>
      Effect.gen(function* () {
        const s = yield* CheckpointStore.CheckpointStore
        const id = { name: `projection_${yield* uniqueCategory}`, version: 1 }
        yield* s.register(id, 1)
        const a = Option.getOrThrow(yield* s.claim(id, 0, "A", 300))
        yield* Effect.sleep("500 millis")
        const read = yield* Deferred.make<void>()
        // forked outside the transaction: its claim runs on a connection of its own
        const takeOver = yield* Effect.fork(
          Effect.zipRight(
            Deferred.await(read),
            Effect.flatMap(s.claim(id, 0, "B", 60_000), (b) => Effect.succeed(Option.isSome(b)))
          )
        )
        const refused = yield* Effect.flip(
          s.transaction(
            Effect.gen(function* () {
              assert.deepStrictEqual(
                (yield* s.partitions(id)).map((p) => Option.getOrNull(p.owner)),
                ["A"],
                "the transaction's first read"
              )
              yield* Deferred.succeed(read, undefined)
              assert.isTrue(yield* Fiber.join(takeOver), "B took the partition over")
              yield* s.commit(a.lease, Event.start, { transaction: 1n, position: 1n }, 60_000)
            })
          )
        )
        assert.strictEqual(refused._tag, "LeaseLost")
      })
    )
  })
}

describe("SqlCheckpointStore configuration", () => {
  it.scoped("refuses table names that are not plain identifiers, with a CheckpointStoreError", () =>
    Effect.gen(function* () {
      for (const options of [
        { tablePrefix: "Bad-Prefix" },
        { tablePrefix: "x; drop table y" },
        { tablePrefix: "a".repeat(41) },
        { schema: "1abc" }
      ]) {
        const error = yield* Effect.flip(SqlCheckpointStore.make(options))
        assert.strictEqual(error._tag, "CheckpointStoreError", JSON.stringify(options))
        assert.strictEqual(error.operation, "configure", JSON.stringify(options))
      }
    }).pipe(Effect.provide(sqliteMemory))
  )

  it.scoped("the schema option on SQLite is a CheckpointStoreError", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(SqlCheckpointStore.make({ schema: "elsewhere" }))
      assert.strictEqual(error._tag, "CheckpointStoreError")
      assert.strictEqual(error.operation, "migrate")
    }).pipe(Effect.provide(sqliteMemory))
  )
})

describe("SQL service errors say whether they are transient", () => {
  it.scoped("a statement the database refuses (its table gone) is transient: false on every SQL service", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const checkpoints = yield* SqlCheckpointStore.make()
      const sagas = yield* SqlSagaStore.make()
      const snapshots = yield* SqlSnapshotStore.make()
      const inbox = yield* SqlInbox.make()
      const t = yield* tables()
      for (const table of [t.checkpoints, t.sagaInstances, t.snapshots, t.processedMessages]) {
        yield* sql`drop table ${sql(table)}`
      }
      const errors = [
        yield* Effect.flip(checkpoints.partitions({ name: "gone", version: 1 })),
        yield* Effect.flip(sagas.load("gone", "1")),
        yield* Effect.flip(snapshots.load("Gone-1")),
        yield* Effect.flip(inbox.prune("1 second"))
      ]
      for (const error of errors) assert.isFalse(error.transient, `${error._tag}: ${error.message}`)
    }).pipe(Effect.provide(sqliteMemory))
  )
})
