import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Event from "../../src/Event.js"
import { tables } from "../../src/sql/migrations.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import { isolatedPrefix } from "../support/ids.js"
import { mysqlWithPrefix, pgWithSchema, sqliteFile, sqliteMemory } from "../support/sql.js"
import { suite } from "../suites/EventStoreSuite.js"

suite("SqlEventStore on SQLite (memory)", SqlEventStore.layer().pipe(Layer.provide(sqliteMemory)))

// pages of two rows: every multi-page path of the stream and global reads, forward and backward
suite(
  "SqlEventStore on SQLite (2-row pages)",
  SqlEventStore.layer({ readPageSize: 2 }).pipe(Layer.provide(sqliteMemory))
)

suite("SqlEventStore on SQLite (file)", SqlEventStore.layer({ tablePrefix: "evt_" }).pipe(Layer.provide(sqliteFile)))

const schema = isolatedPrefix(import.meta.url)
suite("SqlEventStore on PostgreSQL", SqlEventStore.layer({ schema }).pipe(Layer.provide(pgWithSchema(schema))))
// without group commit, concurrent appends run in concurrent transactions (batched ones share one): the
// stream row locks are what keeps them apart
const unbatched = `${schema}_nogc`
suite(
  "SqlEventStore on PostgreSQL (group commit off)",
  SqlEventStore.layer({ schema: unbatched, groupCommit: false }).pipe(Layer.provide(pgWithSchema(unbatched)))
)

const tick = Event.make({ type: "Tick", data: {} })

/** A fresh store's client and table options on each dialect, isolated by `name`. */
const dialects = (name: string) =>
  [
    [pgWithSchema(name), { schema: name }],
    [sqliteMemory, {}],
    [mysqlWithPrefix(`${name}_`), { tablePrefix: `${name}_` }]
  ] as const
const isolated = `${schema}_mig`
const burn = `${schema}_burn`
const ttl = `${schema}_ttl`
const atomic = `${schema}_atom`
const prepared = `${schema}_prep`
const enclosed = `${schema}_tx`
const kept = `${schema}_keep`
const pruned = `${schema}_prune`
const digits = `${schema}_digits`

describe("SqlEventStore configuration and migrations", () => {
  it.scoped("refuses table names that are not plain identifiers, with a typed error", () =>
    Effect.gen(function* () {
      for (const options of [{ tablePrefix: "Bad-Prefix" }, { tablePrefix: "x; drop table y" }, { schema: "1abc" }]) {
        const error = yield* Effect.flip(SqlEventStore.make(options))
        assert.strictEqual(error._tag, "EventStoreError")
        assert.strictEqual(error.operation, "configure")
      }
    }).pipe(Effect.provide(sqliteMemory))
  )

  it.scoped("the schema option on SQLite is a typed error", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(SqlEventStore.make({ schema: "elsewhere" }))
      assert.strictEqual(error._tag, "EventStoreError")
    }).pipe(Effect.provide(sqliteMemory))
  )

  it.scoped("migrations are idempotent, concurrent starts included, and prefixes isolate stores", () =>
    Effect.gen(function* () {
      const first = yield* Effect.all(
        [SqlEventStore.make({ schema: isolated }), SqlEventStore.make({ schema: isolated })],
        { concurrency: "unbounded" }
      )
      yield* first[0].append("A-1", [yield* tick])
      const again = yield* SqlEventStore.make({ schema: isolated })
      assert.strictEqual(yield* again.streamVersion("A-1"), 1)
      const other = yield* SqlEventStore.make({ schema: isolated, tablePrefix: "other_" })
      assert.strictEqual(yield* other.streamVersion("A-1"), 0)
    }).pipe(Effect.provide(pgWithSchema(isolated)))
  )

  it.effect("a failed concurrency check consumes no global position (PostgreSQL, SQLite, MariaDB)", () =>
    Effect.gen(function* () {
      for (const [client, tables] of dialects(burn)) {
        yield* Effect.gen(function* () {
          const store = yield* SqlEventStore.make(tables)
          const first = yield* store.append("B-1", [yield* tick])
          for (const expected of [Event.NoStream, Event.Exact(7)]) {
            yield* Effect.flip(store.append("B-1", [yield* tick, yield* tick], { expectedVersion: expected }))
          }
          const next = yield* store.append("B-2", [yield* tick])
          assert.strictEqual(next.positions[0], first.positions[0]! + 1n)
        }).pipe(Effect.provide(client), Effect.scoped)
      }
    })
  )

  it.live("commands are remembered for the command TTL, then forgotten (PostgreSQL, SQLite, MariaDB)", () =>
    Effect.gen(function* () {
      for (const [client, tables] of dialects(ttl)) {
        yield* Effect.gen(function* () {
          // long enough for the second append to come within it on a loaded machine; then waited out
          const store = yield* SqlEventStore.make({ commandTtl: "2 seconds", commandPruning: false, ...tables })
          const once = Effect.flatMap(tick, (e) => store.append("D-1", [e], { commandId: "ttl-1" }))
          yield* once
          assert.strictEqual((yield* Effect.flip(once))._tag, "DuplicateCommand")
          const forgotten = yield* store
            .findCommand("ttl-1")
            .pipe(Effect.delay("50 millis"), Effect.repeat({ until: Option.isNone, times: 1000 }))
          assert.strictEqual(forgotten._tag, "None")
          assert.strictEqual((yield* once).version, 2)
        }).pipe(Effect.provide(client), Effect.scoped)
      }
    })
  )

  it.live("expired command records are deleted in the store's scope (PostgreSQL, SQLite, MariaDB)", () =>
    Effect.gen(function* () {
      for (const [client, options] of dialects(pruned)) {
        yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const t = yield* tables(options)
          const records = Effect.map(
            sql<{ readonly n: number | string }>`select count(*) as n from ${sql(t.commands)}`,
            ([row]) => Number(row!.n)
          )
          // commands forgotten after a millisecond, and pruned two records per statement
          const store = yield* SqlEventStore.make({
            ...options,
            commandTtl: "1 millis",
            commandPruning: { interval: "10 millis", batchSize: 2 }
          })
          for (const n of [1, 2, 3, 4, 5]) yield* store.append(`P-${n}`, [yield* tick], { commandId: `gone-${n}` })
          const left = yield* records.pipe(
            Effect.delay("10 millis"),
            Effect.repeat({ until: (n) => n === 0, times: 3000 })
          )
          assert.strictEqual(left, 0)
        }).pipe(Effect.provide(client), Effect.scoped)
      }
    })
  )

  it.effect("an append the database refuses midway writes none of its events (PostgreSQL, SQLite, MariaDB)", () =>
    Effect.gen(function* () {
      for (const [client, options] of dialects(atomic)) {
        yield* Effect.gen(function* () {
          const store = yield* SqlEventStore.make(options)
          const sql = yield* SqlClient.SqlClient
          const t = yield* tables(options)
          // a trigger refuses the append's second event, after the first was inserted
          yield* sql.onDialectOrElse({
            pg: () =>
              Effect.zipRight(
                sql.unsafe(`create function ${atomic}.explode() returns trigger language plpgsql as $$
                  begin if new.type = 'Explode' then raise exception 'boom'; end if; return new; end $$`),
                sql.unsafe(
                  `create trigger explode before insert on ${t.events} for each row execute function ${atomic}.explode()`
                )
              ),
            mysql: () =>
              sql.unsafe(`create trigger ${atomic}_explode before insert on ${t.events} for each row
                begin if new.type = 'Explode' then signal sqlstate '45000' set message_text = 'boom'; end if; end`),
            orElse: () =>
              sql.unsafe(`create trigger explode before insert on ${t.events} when new.type = 'Explode'
                begin select raise(abort, 'boom'); end`)
          })
          const events = [yield* tick, yield* Event.make({ type: "Explode", data: {} })]
          const error = yield* Effect.flip(store.append("E-1", events))
          assert.strictEqual(error._tag, "EventStoreError")
          assert.strictEqual(yield* store.streamVersion("E-1"), 0)
          assert.strictEqual((yield* Stream.runCollect(store.readAll({ categories: ["E"] }))).length, 0)
          // the store goes on
          assert.strictEqual((yield* store.append("E-1", [yield* tick])).version, 1)
        }).pipe(Effect.provide(client), Effect.scoped)
      }
    })
  )

  it.effect("appends join an enclosing transaction: a rollback removes them (PostgreSQL, SQLite, MariaDB)", () =>
    Effect.gen(function* () {
      for (const [client, options] of dialects(enclosed)) {
        yield* Effect.gen(function* () {
          const store = yield* SqlEventStore.make(options)
          const sql = yield* SqlClient.SqlClient
          const rolledBack = yield* Effect.exit(
            Effect.gen(function* () {
              yield* store.append("C-1", [yield* tick])
              return yield* Effect.fail("abort")
            }).pipe(sql.withTransaction)
          )
          assert.isTrue(rolledBack._tag === "Failure")
          assert.strictEqual(yield* store.streamVersion("C-1"), 0)
        }).pipe(Effect.provide(client), Effect.scoped)
      }
    })
  )
  it.effect("readStream inside an enclosing transaction sees its appends; outside it, not yet", () =>
    Effect.gen(function* () {
      for (const [client, options] of dialects(enclosed)) {
        yield* Effect.gen(function* () {
          const store = yield* SqlEventStore.make(options)
          const sql = yield* SqlClient.SqlClient
          const versions = (streamId: string) =>
            Effect.map(Stream.runCollect(store.readStream(streamId)), (events) => [...events].map((e) => e.version))
          yield* store.append("R-1", [yield* tick])
          const inside = yield* Effect.gen(function* () {
            yield* store.append("R-1", [yield* tick, yield* tick])
            const seen = yield* versions("R-1")
            // outside the transaction (another connection: the pool's, or the hot path's) only the committed
            // event is seen; SQLite has a single connection
            const outside = yield* sql.onDialectOrElse({
              sqlite: () => Effect.succeed([1]),
              orElse: () =>
                Effect.mapInputContext(versions("R-1"), (context: Context.Context<never>) =>
                  Context.omit(SqlClient.TransactionConnection)(context)
                )
            })
            return { seen, outside }
          }).pipe(sql.withTransaction)
          assert.deepStrictEqual(inside, { seen: [1, 2, 3], outside: [1] })
          assert.deepStrictEqual(yield* versions("R-1"), [1, 2, 3])
        }).pipe(Effect.provide(client), Effect.scoped)
      }
    })
  )
  it.scoped("the PostgreSQL head orders positions as numbers: 100000 comes after 99999", () =>
    Effect.gen(function* () {
      const store = yield* SqlEventStore.make({ schema: digits })
      const sql = yield* SqlClient.SqlClient
      const t = yield* tables({ schema: digits })
      yield* sql`alter table ${sql(t.events)} alter column position restart with 99998`
      const appended = yield* store.append("D-1", [yield* tick, yield* tick, yield* tick])
      assert.deepStrictEqual(appended.positions, [99998n, 99999n, 100000n])
      // the head counts what is visible: another test's open transaction may hold it back for a while
      const head = yield* store.head.pipe(
        Effect.filterOrFail((h) => h.position >= 99998n),
        Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo("30 seconds")))
      )
      assert.strictEqual(head.position, 100000n)
    }).pipe(Effect.provide(pgWithSchema(digits)))
  )
  it.scoped("a PostgreSQL append the server refuses leaves its connection open (a retried command reuses it)", () =>
    Effect.gen(function* () {
      const store = yield* SqlEventStore.make({ schema: kept })
      const sql = yield* SqlClient.SqlClient
      const backend = Effect.map(sql<{ readonly pid: number }>`select pg_backend_pid() as pid`, ([row]) => row!.pid)
      const claim = { claims: [{ constraint: "email", value: "a@example.com" }] }
      yield* store.append("K-1", [yield* tick], claim)
      const before = yield* backend
      // refused by the append function (SQLSTATE P0001), on the one connection of the pool
      const refused = yield* Effect.flip(store.append("K-2", [yield* tick], claim))
      assert.strictEqual(refused._tag, "UniqueConstraintViolation")
      const duplicate = { commandId: "command-1" }
      yield* store.append("K-3", [yield* tick], duplicate)
      assert.strictEqual((yield* Effect.flip(store.append("K-3", [yield* tick], duplicate)))._tag, "DuplicateCommand")
      assert.strictEqual(yield* backend, before)
    }).pipe(Effect.provide(pgWithSchema(kept, { maxConnections: 1 })))
  )
  for (const preparedStatements of [true, false]) {
    it.scoped(`PostgreSQL append calls are named prepared statements unless turned off (${preparedStatements})`, () =>
      Effect.gen(function* () {
        const store = yield* SqlEventStore.make({ schema: prepared })
        const sql = yield* SqlClient.SqlClient
        // one connection: the first append runs alone, the next two wait and go together as a batch
        const results = yield* Effect.all(
          ["P-1", "P-2", "P-3"].map((id) => Effect.flatMap(tick, (event) => store.append(id, [event]))),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(
          results.map((r) => r.version),
          [1, 1, 1]
        )
        const t = yield* tables({ schema: prepared })
        const statements = (yield* sql<{ readonly statement: string }>`
          select statement from pg_prepared_statements`).map((row) => row.statement)
        const calling = (fn: string) => statements.filter((statement) => statement.includes(`${fn}(`)).length
        assert.deepStrictEqual(
          [calling(t.appendFunction), calling(t.appendBatchFunction)],
          preparedStatements ? [1, 1] : [0, 0]
        )
      }).pipe(Effect.provide(pgWithSchema(prepared, { maxConnections: 1, preparedStatements })))
    )
  }
})

const mysqlPrefix = `${schema}_`
suite(
  "SqlEventStore on MariaDB",
  SqlEventStore.layer({ tablePrefix: mysqlPrefix }).pipe(Layer.provide(mysqlWithPrefix(mysqlPrefix)))
)
