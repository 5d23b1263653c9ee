/**
 * Projections on the SQL stores, with the read model in the same database: exactly-once effects under
 * a crash, a rebuild under a running runner, live tails woken by NOTIFY alone or by polling alone, and a
 * worker process killed while it shares partitions with another.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as CheckpointStore from "../../src/CheckpointStore.js"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as Projection from "../../src/Projection.js"
import * as Postgres from "../../src/pg/Postgres.js"
import * as SqlCheckpointStore from "../../src/sql/SqlCheckpointStore.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import * as Wakeup from "../../src/Wakeup.js"
import { balancesProjection, createTables, Deposited, readModel } from "../support/balances.js"
import { pgUrl } from "../support/config.js"
import { workerProcess } from "../support/workerProcess.js"
import { isolatedPrefix, uniqueCategory } from "../support/ids.js"
import { settle } from "../support/settle.js"
import { mysqlWithPrefix, pgWithSchema, sqliteMemory } from "../support/sql.js"

const schema = isolatedPrefix(import.meta.url)

const storesOn = (options: SqlEventStore.Options) =>
  Layer.mergeAll(SqlEventStore.layer(options), SqlCheckpointStore.layer(options))

const postgres = Layer.provideMerge(storesOn({ schema }), pgWithSchema(schema))
const sqlite = Layer.provideMerge(storesOn({}), sqliteMemory)
const mariadb = Layer.provideMerge(storesOn({ tablePrefix: `${schema}_` }), mysqlWithPrefix(`${schema}_`))

const deposits = (category: string, streams: number, perStream: number) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    let amount = 0
    for (let round = 0; round < perStream; round++) {
      for (let s = 0; s < streams; s++) {
        yield* store.append(`${category}-${s}`, [yield* Event.make({ type: "Deposited", data: { amount: ++amount } })])
      }
    }
    return amount
  })

// bounds generous enough for a machine loaded several times over: they only turn a hang into a message
const waitUntil = <E, R>(condition: Effect.Effect<boolean, E, R>, timeout: Duration.DurationInput = "45 seconds") =>
  condition.pipe(
    Effect.repeat({ until: (done) => done, schedule: Schedule.spaced("25 millis") }),
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () => new Error(`condition not reached in ${Duration.format(timeout)}`)
    })
  )

const assertAppliedOnce = (model: Effect.Effect.Success<ReturnType<typeof readModel>>, events: number) => {
  assert.strictEqual(model.applied.length, events)
  for (const a of model.applied) assert.strictEqual(a.count, 1, `${a.streamId}@${a.version} applied ${a.count} times`)
}

const exactlyOnceUnderCrash = (tables: string) =>
  Effect.gen(function* () {
    const category = yield* uniqueCategory
    const [crashed, full] = [`${tables}_${category.toLowerCase()}_c`, `${tables}_${category.toLowerCase()}_f`]
    yield* createTables(crashed)
    yield* createTables(full)
    const total = yield* deposits(category, 6, 5)
    // catch-ups below end at the log's visible end: make every deposit visible first
    yield* settle
    const inFlight = yield* Deferred.make<void>()
    const stall = yield* Ref.make(true)
    const projection = balancesProjection({
      name: `crash-${category}`,
      category,
      tables: crashed,
      batchSize: 10,
      // the 17th deposit stalls its batch (once): the runner is interrupted with the batch half applied
      beforeEach: (amount) =>
        amount === 17
          ? Effect.flatMap(Ref.getAndSet(stall, false), (first) =>
              first ? Effect.zipRight(Deferred.succeed(inFlight, undefined), Effect.never) : Effect.void
            )
          : Effect.void
    })
    const runner = yield* Effect.fork(Projection.run(projection, { pollInterval: "50 millis" }))
    yield* Deferred.await(inFlight)
    yield* Fiber.interrupt(runner)
    const afterCrash = yield* readModel(crashed)
    assert.strictEqual(afterCrash.applied.length, 10, "the first batch committed, the interrupted one rolled back")
    yield* Projection.catchUp(projection)
    yield* Projection.catchUp(balancesProjection({ name: `full-${category}`, category, tables: full }))
    const [restarted, rebuilt] = [yield* readModel(crashed), yield* readModel(full)]
    assertAppliedOnce(restarted, total)
    assert.deepStrictEqual(restarted, rebuilt)
  })

describe("Projection on SQL stores", () => {
  it.live("PostgreSQL: exactly-once effects when a runner is interrupted mid-batch and restarted", () =>
    exactlyOnceUnderCrash(`${schema}.rm`).pipe(Effect.provide(postgres))
  )

  it.live("SQLite: exactly-once effects when a runner is interrupted mid-batch and restarted", () =>
    exactlyOnceUnderCrash("rm").pipe(Effect.provide(sqlite))
  )

  it.live("MariaDB: exactly-once effects when a runner is interrupted mid-batch and restarted", () =>
    exactlyOnceUnderCrash(`${schema}_rm`).pipe(Effect.provide(mariadb))
  )

  it.live("PostgreSQL: a rebuild under a running runner replays into an emptied read model", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const tables = `${schema}.rb_${category.toLowerCase()}`
      yield* createTables(tables)
      const total = yield* deposits(category, 3, 4)
      const projection = balancesProjection({ name: `rebuild-${category}`, category, tables, batchSize: 5 })
      const runner = yield* Effect.fork(
        Projection.run(projection, { pollInterval: "50 millis", leaseTtl: "600 millis" })
      )
      yield* waitUntil(Effect.map(readModel(tables), (m) => m.applied.length === total))
      const before = yield* readModel(tables)
      yield* Projection.rebuild(projection)
      yield* waitUntil(Effect.map(readModel(tables), (m) => m.applied.length === total))
      const after = yield* readModel(tables)
      assertAppliedOnce(after, total)
      assert.deepStrictEqual(after, before)
      yield* Fiber.interrupt(runner)
    }).pipe(Effect.provide(postgres))
  )
})

/**
 * An operator retries two dead letters from outside (the checkpoint store only): the one the handler takes
 * now is applied once, with its letter's removal; the one still refused stays, with the new error.
 */
const retriedDeadLetters = (tables: string) =>
  Effect.gen(function* () {
    const category = yield* uniqueCategory
    const model = `${tables}_${category.toLowerCase()}`
    yield* createTables(model)
    const refusing = new Set([2, 3])
    const projection = balancesProjection({
      name: `retry-${category}`,
      category,
      tables: model,
      batchSize: 2,
      onPoison: "skip",
      refuse: (amount) => refusing.has(amount)
    })
    const total = yield* deposits(category, 2, 2)
    const runner = yield* Effect.fork(Projection.run(projection, { pollInterval: "50 millis", leaseTtl: "600 millis" }))
    yield* waitUntil(Effect.map(Projection.deadLetters(projection.name), (letters) => letters.length === 2))
    const [two, three] = yield* Projection.deadLetters(projection.name)
    yield* waitUntil(Effect.map(readModel(model), (m) => m.applied.length === total - 2))
    refusing.delete(2)
    const store = yield* CheckpointStore.CheckpointStore
    yield* store.retryDeadLetter(projection.name, two!.id)
    yield* store.retryDeadLetter(projection.name, three!.id)
    yield* waitUntil(
      Effect.map(Projection.deadLetters(projection.name), (letters) => letters.every((l) => !l.retryRequested))
    )
    const letters = yield* Projection.deadLetters(projection.name)
    assert.deepStrictEqual(
      letters.map((l) => l.id),
      [three!.id]
    )
    assert.include(letters[0]!.error, "refusing 3")
    const after = yield* readModel(model)
    assertAppliedOnce(after, total - 1)
    assert.isTrue(after.applied.some((a) => a.eventId === two!.event.eventId))
    yield* Fiber.interrupt(runner)
  })

describe("Projection requests from an operator on SQL stores", () => {
  it.live("SQLite: a retried dead letter is applied once with its removal; refused again, it stays", () =>
    retriedDeadLetters("rq").pipe(Effect.provide(sqlite))
  )

  it.live("PostgreSQL: a retried dead letter is applied once with its removal; refused again, it stays", () =>
    retriedDeadLetters(`${schema}.rq`).pipe(Effect.provide(postgres))
  )

  it.live("MariaDB: a retried dead letter is applied once with its removal; refused again, it stays", () =>
    retriedDeadLetters(`${schema}_rq`).pipe(Effect.provide(mariadb))
  )

  it.live("PostgreSQL: a requested rebuild is done once by two workers sharing the partitions", () =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const tables = `${schema}.rr_${category.toLowerCase()}`
      yield* createTables(tables)
      const total = yield* deposits(category, 6, 3)
      const truncated = yield* Ref.make(0)
      const base = balancesProjection({ name: `requested-${category}`, category, tables, partitions: 4, batchSize: 4 })
      const projection = {
        ...base,
        truncate: Effect.zipRight(
          Ref.update(truncated, (n) => n + 1),
          base.truncate
        )
      }
      const options = { pollInterval: "50 millis", leaseTtl: "600 millis" } as const
      const a = yield* Effect.fork(Projection.run(projection, { ...options, workerId: "a" }))
      const b = yield* Effect.fork(Projection.run(projection, { ...options, workerId: "b" }))
      yield* waitUntil(Effect.map(readModel(tables), (m) => m.applied.length === total))
      const before = yield* readModel(tables)
      const store = yield* CheckpointStore.CheckpointStore
      const id = { name: projection.name, version: 1 }
      yield* store.requestRebuild(id)
      yield* waitUntil(Effect.map(store.partitions(id), (partitions) => partitions.every((p) => !p.pendingRebuild)))
      yield* waitUntil(Effect.map(readModel(tables), (m) => m.applied.length === total))
      const after = yield* readModel(tables)
      assert.strictEqual(yield* Ref.get(truncated), 1, "one rebuild")
      assertAppliedOnce(after, total)
      assert.deepStrictEqual(after, before)
      yield* Fiber.interrupt(a)
      yield* Fiber.interrupt(b)
    }).pipe(Effect.provide(postgres))
  )
})

describe("Projection rebuild while a batch is in flight", () => {
  it.live(
    "PostgreSQL: the in-flight batch's commit is refused, rolled back, and the runner starts over",
    () =>
      Effect.gen(function* () {
        const category = yield* uniqueCategory
        const tables = `${schema}.rf_${category.toLowerCase()}`
        yield* createTables(tables)
        const total = yield* deposits(category, 2, 5)
        const inFlight = yield* Deferred.make<void>()
        const proceed = yield* Deferred.make<void>()
        const stall = yield* Ref.make(true)
        const projection = balancesProjection({
          name: `inflight-${category}`,
          category,
          tables,
          batchSize: 4,
          // the second batch (deposits 5-8) waits (once), before writing anything, until the rebuild committed
          beforeEach: (amount) =>
            amount === 5
              ? Effect.flatMap(Ref.getAndSet(stall, false), (first) =>
                  first ? Effect.zipRight(Deferred.succeed(inFlight, undefined), Deferred.await(proceed)) : Effect.void
                )
              : Effect.void
        })
        const runner = yield* Effect.fork(Projection.run(projection, { pollInterval: "50 millis" }))
        yield* Deferred.await(inFlight)
        // the stalled batch holds no row lock yet: truncate + reset commit now, its commit must be refused
        yield* Projection.rebuild(projection)
        yield* Deferred.succeed(proceed, undefined)
        yield* waitUntil(Effect.map(readModel(tables), (m) => m.applied.length === total))
        const model = yield* readModel(tables)
        assertAppliedOnce(model, total)
        yield* Fiber.interrupt(runner)
      }).pipe(Effect.provide(postgres)),
    180_000
  )
})

describe("Projection handlers on PostgreSQL", () => {
  it.scopedLive(
    "a handler that goes on after an SQL error (its transaction aborted) meets the poison policy",
    () =>
      Effect.gen(function* () {
        const category = yield* uniqueCategory
        const tables = `${schema}.ab_${category.toLowerCase()}`
        yield* createTables(tables)
        const sql = yield* SqlClient.SqlClient
        const projection = Projection.make({
          name: `aborted-${category}`,
          events: Deposited,
          categories: [category],
          onPoison: "skip",
          retry: Schedule.recurs(1),
          handle: (event, envelope) =>
            event.amount === 2
              ? // an SQL error swallowed: PostgreSQL refuses everything after it in the transaction
                Effect.ignore(sql`select * from ${sql(`${tables}_missing`)}`)
              : Effect.asVoid(
                  sql`insert into ${sql(`${tables}_balances`)} (stream_id, balance)
                  values (${envelope.eventId}, ${event.amount})`
                )
        })
        yield* deposits(category, 1, 3)
        const runner = yield* Effect.fork(Projection.run(projection, { pollInterval: "20 millis" }))
        const balances = Effect.map(
          sql<{ readonly balance: string | number }>`select balance from ${sql(`${tables}_balances`)} order by balance`,
          (rows) => rows.map((row) => Number(row.balance))
        )
        // the batch fails on 3 (after 2 aborted it), then one at a time 2 cannot commit: skipped, 3 applied
        yield* waitUntil(Effect.map(balances, (applied) => applied.includes(3)))
        assert.deepStrictEqual(yield* balances, [1, 3])
        yield* Fiber.interrupt(runner)
      }).pipe(Effect.provide(postgres)),
    180_000
  )
})

describe("Projection live tail on PostgreSQL", () => {
  /** A process's worth of services: its own pool, stores and (optionally) LISTEN/NOTIFY wake-ups. */
  const processOn = (wakeup: boolean) => {
    const client = Postgres.layer({ url: pgUrl, maxConnections: 4 })
    const stores = storesOn({ schema })
    return (wakeup ? stores.pipe(Layer.provideMerge(Postgres.layerWakeup({ channel: schema }))) : stores).pipe(
      Layer.provideMerge(client)
    )
  }

  const tail = (wakeup: boolean, pollInterval: Duration.DurationInput) =>
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const tables = `${schema}.lt_${category.toLowerCase()}`
      const writer = yield* Layer.build(processOn(wakeup))
      const reader = yield* Layer.build(processOn(wakeup))
      yield* createTables(tables).pipe(Effect.provide(reader))
      const projection = balancesProjection({ name: `tail-${category}`, category, tables })
      const runner = yield* Effect.fork(Projection.run(projection, { pollInterval }).pipe(Effect.provide(reader)))
      const model = readModel(tables).pipe(Effect.provide(reader))
      const partitions = Effect.flatMap(CheckpointStore.CheckpointStore, (s) =>
        s.partitions({ name: projection.name, version: 1 })
      ).pipe(Effect.provide(reader))
      // live first: from then on only a hint (or a poll) can bring the next event in
      yield* waitUntil(Effect.map(partitions, (ps) => ps.length === 1 && ps[0]!.live))
      for (let i = 1; i <= 3; i++) {
        yield* deposits(category, 1, 1).pipe(Effect.provide(writer))
        // far below the hour of polling: only a hint can bring it in time
        yield* waitUntil(Effect.map(model, (m) => m.applied.length === i))
      }
      yield* Fiber.interrupt(runner)
    })

  it.scopedLive(
    "NOTIFY alone wakes a runner in another process (polling set to an hour)",
    () => tail(true, "1 hour").pipe(Effect.provide(postgres)),
    240_000
  )

  it.scopedLive("a LISTEN connection killed under a process is replaced: NOTIFYs reach it again", () =>
    Effect.gen(function* () {
      const channel = `${schema}_relisten`
      const processWith = (applicationName: string) =>
        Layer.build(
          Postgres.layerWakeup({ channel }).pipe(
            Layer.provideMerge(Postgres.layer({ url: pgUrl, maxConnections: 2, applicationName }))
          )
        )
      const listener = yield* processWith(channel)
      const sender = yield* processWith(`${channel}_sender`)
      const hints = yield* Effect.flatMap(Wakeup.Wakeup, (w) => w.subscribe).pipe(Effect.provide(listener))
      const sql = Context.get(sender, SqlClient.SqlClient)
      const listening = Effect.map(
        sql<{ readonly pid: number }>`select pid from pg_stat_activity
          where application_name in (${channel}, ${`${channel}-listen`}) and query ilike 'listen %'`,
        (rows) => rows.map((row) => row.pid)
      )
      // what the listener heard before is dropped: only a hint the sender's NOTIFY brings counts
      const heard = Effect.gen(function* () {
        yield* Queue.takeAll(hints)
        yield* Effect.flatMap(Wakeup.Wakeup, (w) => w.notify).pipe(Effect.provide(sender))
        return yield* Queue.take(hints).pipe(Effect.timeout("2 seconds"))
      }).pipe(Effect.retry(Schedule.recurs(5)))
      yield* waitUntil(Effect.map(listening, (pids) => pids.length === 1))
      yield* heard
      const [killed] = yield* listening
      yield* sql`select pg_terminate_backend(${killed!})`
      yield* waitUntil(Effect.map(listening, (pids) => pids.length === 1 && pids[0] !== killed))
      yield* heard
    }).pipe(Effect.provide(postgres))
  )

  it.scopedLive(
    "polling alone keeps a runner live without any wake-up hint",
    () => tail(false, "50 millis").pipe(Effect.provide(postgres)),
    240_000
  )
})

describe("Projection workers sharing partitions on PostgreSQL", () => {
  it.scopedLive(
    "a killed worker process's partitions are taken over after its lease expires; no event applied twice",
    () =>
      Effect.gen(function* () {
        const category = yield* uniqueCategory
        const name = `shared-${category}`
        const tables = `${schema}.sh_${category.toLowerCase()}`
        yield* createTables(tables)
        const projection = balancesProjection({
          name,
          category,
          tables,
          partitions: 4,
          batchSize: 5,
          beforeEach: () => Effect.sleep("5 millis")
        })
        const owners = Effect.flatMap(CheckpointStore.CheckpointStore, (s) => s.partitions({ name, version: 1 })).pipe(
          Effect.map((ps) => ps.map((p) => (p.owner._tag === "Some" ? p.owner.value : null)))
        )
        // the other process starts first and takes all four partitions
        const child = yield* workerProcess({ schema, name, category, tables, partitions: 4 })
        yield* waitUntil(
          Effect.map(owners, (o) => o.length === 4 && o.every((w) => w === "worker-process")),
          "60 seconds"
        )
        const here = yield* Effect.fork(
          Projection.run(projection, { workerId: "worker-test", leaseTtl: "1 second", pollInterval: "50 millis" })
        )
        yield* waitUntil(
          Effect.map(owners, (o) => o.filter((w) => w === "worker-test").length === 2),
          "30 seconds"
        )
        const writing = yield* Effect.fork(deposits(category, 16, 10))
        // kill the other process while it is inside batches: once it has committed some of its own
        const childProgress = Effect.flatMap(CheckpointStore.CheckpointStore, (s) =>
          s.partitions({ name, version: 1 })
        ).pipe(
          Effect.map((ps) =>
            ps.some((p) => p.owner._tag === "Some" && p.owner.value === "worker-process" && p.checkpoint.position > 0n)
          )
        )
        yield* waitUntil(childProgress)
        child.kill("SIGKILL")
        const total = yield* Fiber.join(writing)
        yield* waitUntil(
          Effect.map(owners, (o) => o.every((w) => w === "worker-test")),
          "30 seconds"
        )
        yield* waitUntil(Effect.map(readModel(tables), (m) => m.applied.length === total))
        const model = yield* readModel(tables)
        assertAppliedOnce(model, total)
        // per-stream order: versions applied are exactly 1..10 in each stream
        for (let s = 0; s < 16; s++) {
          const versions = model.applied.filter((a) => a.streamId === `${category}-${s}`).map((a) => a.version)
          assert.deepStrictEqual(
            versions,
            Array.from({ length: 10 }, (_, i) => i + 1)
          )
        }
        yield* Fiber.interrupt(here)
      }).pipe(Effect.provide(postgres)),
    120_000
  )

  it.scopedLive(
    "a worker process stopped with SIGTERM hands its partitions over at once, long before its lease ends",
    () =>
      Effect.gen(function* () {
        const category = yield* uniqueCategory
        const name = `leaving-${category}`
        const tables = `${schema}.lv_${category.toLowerCase()}`
        yield* createTables(tables)
        const projection = balancesProjection({ name, category, tables, partitions: 8, batchSize: 5 })
        const owners = Effect.flatMap(CheckpointStore.CheckpointStore, (s) => s.partitions({ name, version: 1 })).pipe(
          Effect.map((ps) => ps.map((p) => (p.owner._tag === "Some" ? p.owner.value : null)))
        )
        // the other process's leases last 10 minutes: only a hand-over, not an expiry, frees them in this test
        const child = yield* workerProcess({
          schema,
          name,
          category,
          tables,
          partitions: 8,
          workerId: "worker-leaving",
          leaseTtl: "10 minutes"
        })
        yield* waitUntil(
          Effect.map(owners, (o) => o.length === 8 && o.every((w) => w === "worker-leaving")),
          "60 seconds"
        )
        const total = yield* deposits(category, 16, 5)
        yield* waitUntil(
          Effect.map(readModel(tables), (m) => m.applied.length === total),
          "60 seconds"
        )
        const here = yield* Effect.fork(
          Projection.run(projection, { workerId: "worker-staying", leaseTtl: "1 second", pollInterval: "50 millis" })
        )
        child.kill("SIGTERM")
        yield* waitUntil(
          Effect.map(owners, (o) => o.every((w) => w === "worker-staying")),
          "60 seconds"
        )
        const more = yield* deposits(category, 16, 5)
        yield* waitUntil(
          Effect.map(readModel(tables), (m) => m.applied.length === total + more),
          "60 seconds"
        )
        assertAppliedOnce(yield* readModel(tables), total + more)
        yield* Fiber.interrupt(here)
      }).pipe(Effect.provide(postgres)),
    180_000
  )
})
