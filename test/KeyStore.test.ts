/**
 * Key stores: the KeyStore conformance suite (test/suites/KeyStoreSuite.ts) on memory, SQLite, PostgreSQL
 * and MariaDB, and what only the SQL store does: keys stored wrapped by the master key, a wrong or
 * malformed master key refused with a typed error, one key per subject across two store instances.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, layer } from "@effect/vitest"
import { randomBytes } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Aggregate from "../src/Aggregate.js"
import * as EventStore from "../src/EventStore.js"
import * as KeyStore from "../src/KeyStore.js"
import * as MemoryEventStore from "../src/MemoryEventStore.js"
import * as SqlEventStore from "../src/sql/SqlEventStore.js"
import * as SqlKeyStore from "../src/sql/SqlKeyStore.js"
import { capturing } from "./support/capture.js"
import { isolatedPrefix } from "./support/ids.js"
import { mysqlWithPrefix, pgWithSchema, sqliteMemory } from "./support/sql.js"
import { customer, suite } from "./suites/KeyStoreSuite.js"

const masterKey = Redacted.make(randomBytes(32).toString("base64"))

suite("memory", Layer.merge(KeyStore.layerMemory, MemoryEventStore.layer()))
suite(
  "SqlKeyStore on SQLite",
  Layer.merge(SqlKeyStore.layer({ masterKey }), SqlEventStore.layer()).pipe(Layer.provideMerge(sqliteMemory))
)
const schema = isolatedPrefix(import.meta.url)
suite(
  "SqlKeyStore on PostgreSQL",
  Layer.merge(SqlKeyStore.layer({ masterKey, schema }), SqlEventStore.layer({ schema })).pipe(
    Layer.provideMerge(pgWithSchema(schema))
  )
)
const mysqlPrefix = `${schema}_`
suite(
  "SqlKeyStore on MariaDB",
  Layer.merge(
    SqlKeyStore.layer({ masterKey, tablePrefix: mysqlPrefix }),
    SqlEventStore.layer({ tablePrefix: mysqlPrefix })
  ).pipe(Layer.provideMerge(mysqlWithPrefix(mysqlPrefix)))
)

describe("SqlKeyStore", () => {
  layer(sqliteMemory)((it) => {
    it.effect("stores keys wrapped by the master key, never in clear", () =>
      Effect.gen(function* () {
        const store = yield* SqlKeyStore.make({ masterKey })
        const key = Buffer.from(Redacted.value(yield* store.dataKey("alice")))
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql<{ readonly subject: string; readonly wrapped_key: string }>`
          select subject, wrapped_key from es_keys where subject = ${"alice"}`
        assert.strictEqual(rows.length, 1)
        const stored = Buffer.from(rows[0]!.wrapped_key, "base64")
        assert.strictEqual(stored.length, 12 + 32 + 16)
        assert.strictEqual(stored.indexOf(key), -1)
        assert.notInclude(rows[0]!.wrapped_key, key.toString("base64"))
        yield* store.erase("alice")
        const erased = yield* sql<{ readonly wrapped_key: string | null }>`
          select wrapped_key from es_keys where subject = ${"alice"}`
        assert.strictEqual(erased[0]!.wrapped_key, null)
      })
    )

    it.effect("a wrong master key is a typed error when the store starts, and names no key", () =>
      Effect.gen(function* () {
        yield* SqlKeyStore.make({ masterKey, tablePrefix: "wrong_" })
        const other = randomBytes(32).toString("base64")
        const error = yield* Effect.flip(SqlKeyStore.make({ masterKey: Redacted.make(other), tablePrefix: "wrong_" }))
        assert.strictEqual(error._tag, "KeyStoreError")
        assert.strictEqual(error.reason, "WrongMasterKey")
        assert.notInclude(error.message, other)
        assert.notInclude(error.message, Redacted.value(masterKey))
      })
    )

    it.scoped("no clear personal value or key in spans, logs or the database once erased", () =>
      Effect.gen(function* () {
        const keys = yield* SqlKeyStore.make({ masterKey, tablePrefix: "traced_" })
        const events = yield* SqlEventStore.make({ tablePrefix: "traced_" })
        const subject = `s${randomBytes(4).toString("hex")}`
        const secret = `Secret ${randomBytes(4).toString("hex")}`
        const category = `T${randomBytes(4).toString("hex")}`
        const decider = customer(category)
        const work = Effect.gen(function* () {
          const handle = Aggregate.handler(decider)
          yield* handle(subject, { register: { id: subject, email: secret }, plan: "free" })
          yield* handle(subject, { plan: "pro" })
          const key = Buffer.from(Redacted.value(yield* keys.dataKey(subject)))
          yield* keys.erase(subject)
          yield* handle(subject, { plan: "team" })
          yield* Effect.flip(handle(subject, { register: { id: subject, email: secret }, plan: "x" }))
          return key
        }).pipe(Effect.provideService(KeyStore.KeyStore, keys), Effect.provideService(EventStore.EventStore, events))
        const { key, logs, spans } = yield* capturing((captured) =>
          Effect.map(work, (key) => ({ key, logs: captured.logs(), spans: captured.spans() }))
        )
        assert.include(spans.split("\n"), "Aggregate.handle")
        assert.include(spans.split("\n"), "KeyStore.dataKeys")
        const sql = yield* SqlClient.SqlClient
        const tables = yield* sql<{ readonly name: string }>`
          select name from sqlite_master where type = 'table' and name like 'traced_%'`
        const database = JSON.stringify(yield* Effect.forEach(tables, ({ name }) => sql`select * from ${sql(name)}`))
        assert.include(database, subject)
        for (const text of [spans, logs, database]) {
          assert.notInclude(text, secret)
          assert.notInclude(text, key.toString("base64"))
          assert.notInclude(text, key.toString("hex"))
        }
      })
    )

    it.effect("a master key that is not 32 bytes of base64 is refused, typed", () =>
      Effect.gen(function* () {
        for (const bad of ["", "too short", randomBytes(16).toString("base64")]) {
          const error = yield* Effect.flip(SqlKeyStore.make({ masterKey: Redacted.make(bad), tablePrefix: "bad_" }))
          assert.strictEqual(error.reason, "WrongMasterKey")
        }
      })
    )
  })

  const pgSchema = `${schema}_two`
  layer(pgWithSchema(pgSchema))((it) => {
    it.effect("two store instances making a new subject's key concurrently end with one key", () =>
      Effect.gen(function* () {
        const [a, b] = [
          yield* SqlKeyStore.make({ masterKey, schema: pgSchema }),
          yield* SqlKeyStore.make({ masterKey, schema: pgSchema })
        ]
        for (let round = 0; round < 5; round++) {
          const subject = `s-${round}-${randomBytes(4).toString("hex")}`
          const keys = yield* Effect.all(
            [a.dataKey(subject), b.dataKey(subject), a.dataKey(subject), b.dataKey(subject)],
            {
              concurrency: "unbounded"
            }
          )
          assert.strictEqual(new Set(keys.map((k) => Buffer.from(Redacted.value(k)).toString("hex"))).size, 1)
        }
      })
    )
  })
})
