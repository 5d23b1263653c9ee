/**
 * Erasing an account holder of the bank example (issue #29's done-when), on SQLite and PostgreSQL: the
 * bank's accounts are opened with their holders' names sealed (`Personal.field`), one holder is erased
 * (`KeyStore.erase`), then every projection is rebuilt and every aggregate loaded and handles a command.
 * The erased holder's name reads as erased everywhere (events, read models, the console's state view),
 * the other holder's in clear, nothing fails; and a scan of every table of the database, of the logs and of
 * the spans of the whole run finds no clear name of the erased holder, nor its key.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, layer } from "@effect/vitest"
import { randomBytes } from "node:crypto"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { Account, AccountState, erasedOwner } from "../../examples/bank/Account.js"
import * as ReadModels from "../../examples/bank/readModels.js"
import * as Aggregate from "../../src/Aggregate.js"
import type * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as ConsoleHandlers from "../../src/http/internal/consoleHandlers.js"
import type * as EventBrowserHandlers from "../../src/http/internal/eventBrowserHandlers.js"
import * as KeyStore from "../../src/KeyStore.js"
import * as Projection from "../../src/Projection.js"
import * as SqlCheckpointStore from "../../src/sql/SqlCheckpointStore.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import * as SqlKeyStore from "../../src/sql/SqlKeyStore.js"
import * as Upcaster from "../../src/Upcaster.js"
import { capturing } from "../support/capture.js"
import { pgUrl } from "../support/config.js"
import { isolatedPrefix } from "../support/ids.js"
import { pgWithSchema, sqliteFile } from "../support/sql.js"

const masterKey = Redacted.make(randomBytes(32).toString("base64"))

/** The bank's stores (events, checkpoints, keys) and read models on a database of their own. */
const bank = (database: Layer.Layer<SqlClient.SqlClient>, schema?: string) =>
  Layer.mergeAll(
    SqlEventStore.layer(schema === undefined ? {} : { schema }),
    SqlCheckpointStore.layer(schema === undefined ? {} : { schema }),
    SqlKeyStore.layer({ masterKey, ...(schema === undefined ? {} : { schema }) }),
    Projection.layerRegistry
  ).pipe(Layer.provideMerge(database), Layer.orDie)

/** Every row of every table of the database (the test's own), as one text. */
type TableScan = Effect.Effect<string, unknown, SqlClient.SqlClient>

const sqliteTables: TableScan = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const tables = yield* sql<{ readonly name: string }>`select name from sqlite_master where type = 'table'`
  return JSON.stringify(yield* Effect.forEach(tables, ({ name }) => sql`select * from ${sql(name)}`))
})

const pgTables = (schema: string): TableScan =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const tables = yield* sql<{ readonly name: string }>`
      select table_name as name from information_schema.tables where table_schema = ${schema}`
    const rows = yield* Effect.forEach(tables, ({ name }) => sql`select * from ${sql(schema)}.${sql(name)}`)
    return JSON.stringify(rows, (_, v: unknown) => (typeof v === "bigint" ? String(v) : v))
  })

const erasure = (scanTables: TableScan) =>
  Effect.gen(function* () {
    const run = randomBytes(4).toString("hex")
    // ann is erased, bob is not; their names are distinctive so that a scan cannot find them by chance
    const ann = { holderId: `cust-ann-${run}`, owner: `Ann Erasable-${run}` }
    const bob = { holderId: `cust-bob-${run}`, owner: `Bob Keepable-${run}` }
    const accounts = [
      { id: `a1${run}`, holder: ann },
      { id: `a2${run}`, holder: ann },
      { id: `b1${run}`, holder: bob },
      { id: `n1${run}`, holder: undefined }
    ]
    const keys = yield* KeyStore.KeyStore
    const store = yield* EventStore.EventStore
    const handle = Aggregate.handler(Account)
    yield* ReadModels.createTables

    return yield* capturing((captured) =>
      Effect.gen(function* () {
        for (const { holder, id } of accounts) {
          yield* handle(id, {
            _tag: "OpenAccount",
            ...(holder === undefined ? { owner: `Nobody ${run}` } : holder)
          })
          yield* handle(id, { _tag: "Deposit", amount: 100 })
          yield* handle(id, { _tag: "Withdraw", amount: 30 })
        }
        const annKey = Buffer.from(Redacted.value(yield* keys.dataKey(ann.holderId)))
        yield* Projection.catchUp(ReadModels.Balances)
        yield* Projection.catchUp(ReadModels.History)
        const owners = Effect.map(ReadModels.accounts, (rows) =>
          Object.fromEntries(rows.filter((r) => r.accountId.endsWith(run)).map((r) => [r.accountId, r.owner]))
        )
        assert.deepStrictEqual(yield* owners, {
          [`a1${run}`]: ann.owner,
          [`a2${run}`]: ann.owner,
          [`b1${run}`]: bob.owner,
          [`n1${run}`]: `Nobody ${run}`
        })
        // the events hold the names sealed, not in clear
        const stored = yield* store.readStream(`Account-a1${run}`).pipe(Stream.runCollect)
        assert.notInclude(JSON.stringify(Chunk.toReadonlyArray(stored).map((e) => e.data)), ann.owner)

        yield* keys.erase(ann.holderId)

        // every projection rebuilt
        for (const projection of [ReadModels.Balances, ReadModels.History]) {
          yield* Projection.rebuild(projection)
          yield* Projection.catchUp(projection)
          assert.deepStrictEqual(yield* Projection.deadLetters(projection.name), [])
        }
        assert.deepStrictEqual(yield* owners, {
          [`a1${run}`]: erasedOwner,
          [`a2${run}`]: erasedOwner,
          [`b1${run}`]: bob.owner,
          [`n1${run}`]: `Nobody ${run}`
        })
        const balances = Effect.map(ReadModels.accounts, (rows) => rows.filter((r) => r.accountId.endsWith(run)))
        assert.deepStrictEqual(
          (yield* balances).map((r) => r.balance),
          [70, 70, 70, 70]
        )
        assert.strictEqual((yield* ReadModels.history(`a1${run}`)).length, 2)

        // every aggregate of the category loads (its events decode) and handles a command
        const streams = yield* store.readAll({ categories: ["Account"] }).pipe(
          Stream.map((e) => e.streamId),
          Stream.runCollect,
          Effect.map((ids) => [...new Set(Chunk.toReadonlyArray(ids))])
        )
        assert.includeMembers(
          streams,
          accounts.map((a) => `Account-${a.id}`)
        )
        for (const streamId of streams) {
          const events = yield* Upcaster.readStream(Account.codec, streamId).pipe(
            Stream.map((d) => d.event),
            Stream.runCollect,
            Effect.map(Chunk.toReadonlyArray)
          )
          const opened = events.find((e) => e._tag === "AccountOpened")
          const account = accounts.find((a) => `Account-${a.id}` === streamId)
          if (opened !== undefined && account !== undefined) {
            assert.strictEqual(
              opened.owner,
              account.holder === ann ? erasedOwner : (account.holder?.owner ?? `Nobody ${run}`)
            )
          }
          const id = streamId.slice("Account-".length)
          const result = yield* handle(id, { _tag: "Deposit", amount: 1 })
          assert.strictEqual(result.version, events.length + 1)
        }

        // the console's state view (time travel) folds the erased holder's stream without an error
        const config = {
          deciders: new Map([["Account", ConsoleHandlers.stateView(Account, AccountState)]])
        } as unknown as EventBrowserHandlers.Config
        const states = yield* ConsoleHandlers.streamStates(config, `Account-a1${run}` as Event.StreamId, {})
        assert.deepStrictEqual(
          states.steps.map((s) => s.error),
          [null, null, null, null]
        )
        assert.notInclude(
          JSON.stringify(states, (_, v: unknown) => (typeof v === "bigint" ? String(v) : v)),
          ann.owner
        )

        // the erased holder's new accounts are refused, with a typed error; the other holder's are not
        const refused = yield* Effect.flip(handle(`a3${run}`, { _tag: "OpenAccount", ...ann }))
        assert.strictEqual(refused._tag, "EventEncodeError")
        yield* handle(`b2${run}`, { _tag: "OpenAccount", ...bob })

        // nowhere: no clear name of the erased holder, nor its key
        const database = yield* scanTables
        assert.include(database, ann.holderId)
        assert.include(database, erasedOwner)
        for (const [where, text] of [
          ["tables", database],
          ["logs", captured.logs()],
          ["spans", captured.spans()]
        ] as const) {
          assert.notInclude(text, ann.owner, `the erased name in the ${where}`)
          assert.notInclude(text, `Erasable-${run}`, `the erased name in the ${where}`)
          assert.notInclude(text, annKey.toString("base64"), `the erased key in the ${where}`)
          assert.notInclude(text, annKey.toString("hex"), `the erased key in the ${where}`)
        }
        assert.include(captured.spans(), "Aggregate.handle")
        // the other holder's name: in clear in the read model only (the events hold it sealed)
        assert.include(database, bob.owner)
      })
    )
  })

describe("erasing a holder of the bank example", () => {
  layer(bank(sqliteFile), { timeout: 120_000 })((it) => {
    it.effect("on SQLite: erased everywhere after rebuilds and loads, no clear value left", () => erasure(sqliteTables))
  })

  const schema = isolatedPrefix(import.meta.url)
  // the read models' tables are unqualified: the schema comes first on the connections' search path
  const pg = pgWithSchema(schema, { url: `${pgUrl}?options=${encodeURIComponent(`-c search_path=${schema}`)}` })
  layer(bank(pg, schema), { timeout: 120_000 })((it) => {
    it.effect("on PostgreSQL: erased everywhere after rebuilds and loads, no clear value left", () =>
      erasure(pgTables(schema))
    )
  })
})
