import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as SqlCheckpointStore from "../../src/sql/SqlCheckpointStore.js"
import { isolatedPrefix } from "../support/ids.js"
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
