/**
 * P1: rebuild a projection of 100,000 events into a SQL read-model table (a balance per stream, one
 * multi-row upsert per batch, the checkpoint committed with it), with 1 and 4 partitions. Baseline: the
 * same work with `pg`: keyset-read 1,000-row pages and, per page, one transaction holding the upsert and
 * a checkpoint update.
 *
 * P2: a live projection's lag while 16 writers append single events (W2): for each event, the time from
 * its append returning to its handler running (in the batch's transaction, just before the commit).
 *
 * Both count gaps and duplicates: the read model must hold every event exactly once.
 */
import { spawn } from "node:child_process"
import * as readline from "node:readline"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Option from "effect/Option"
import type pg from "pg"
import * as Schema from "effect/Schema"
import type * as CheckpointStore from "../../src/CheckpointStore.js"
import { CheckpointStore as CheckpointStoreTag } from "../../src/CheckpointStore.js"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as Projection from "../../src/Projection.js"
import * as Postgres from "../../src/pg/Postgres.js"
import * as SqlCheckpointStore from "../../src/sql/SqlCheckpointStore.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import * as Sqlite from "../../src/sqlite/Sqlite.js"
import * as Wakeup from "../../src/Wakeup.js"
import { measureEffect, type Options, payload, percentile, type Result, result, scaled } from "../harness.js"
import { events as rawEvents, schema as rawSchema } from "../raw.js"

const Deposited = Schema.TaggedStruct("Deposited", { amount: Schema.Number, note: Schema.String })

const eventsPerStream = 50
const pageSize = 1000

type Services = EventStore.EventStore | CheckpointStore.CheckpointStore | SqlClient.SqlClient

/** A fresh store with its checkpoint store and read-model table, in a new schema or SQLite file. */
interface ProjectionTarget {
  readonly name: string
  /** Qualified read-model table name. */
  readonly table: string
  /** After a bulk fill: fresh planner statistics, as autovacuum would soon gather (see the bench README). */
  readonly analyze: Effect.Effect<void, unknown, SqlClient.SqlClient>
  readonly layer: Layer.Layer<Services>
}

const postgresTarget = (url: string): ProjectionTarget => {
  const schema = `bench_p_${randomBytes(4).toString("hex")}`
  const dropSchema = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`drop schema if exists ${sql(schema)} cascade`)
  const stores = Layer.mergeAll(SqlEventStore.layer({ schema }), SqlCheckpointStore.layer({ schema }))
  return {
    name: "postgres",
    table: `${schema}.balances`,
    analyze: Effect.flatMap(SqlClient.SqlClient, (sql) => sql`analyze ${sql(`${schema}.es_events`)}`),
    layer: stores.pipe(
      Layer.provideMerge(Postgres.layerWakeup({ channel: schema })),
      Layer.provideMerge(Layer.scopedDiscard(Effect.addFinalizer(() => Effect.orDie(dropSchema)))),
      Layer.provideMerge(Postgres.layer({ url, maxConnections: 16 })),
      Layer.orDie
    )
  }
}

const sqliteTarget = (): ProjectionTarget => ({
  name: "sqlite",
  table: "balances",
  analyze: Effect.void,
  layer: Layer.unwrapScoped(
    Effect.map(
      Effect.acquireRelease(
        Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "ees-bench-p-"))),
        (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
      ),
      (dir) =>
        Layer.mergeAll(SqlEventStore.layer(), SqlCheckpointStore.layer()).pipe(
          Layer.provideMerge(Wakeup.layer),
          Layer.provideMerge(Sqlite.layer({ filename: path.join(dir, "events.db") }))
        )
    )
  ).pipe(Layer.orDie)
})

export const targets = (options: Options) => [() => postgresTarget(options.pgUrl), sqliteTarget]

export const createTable = (table: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql`create table ${sql(table)} (stream_id text primary key, total bigint not null, events integer not null)`
  )

/** One multi-row upsert of the batch's totals per stream. */
const upsertTotals = (table: string, batch: ReadonlyArray<{ readonly streamId: string; readonly amount: number }>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const totals = new Map<string, { total: number; events: number }>()
    for (const { amount, streamId } of batch) {
      const t = totals.get(streamId) ?? { total: 0, events: 0 }
      t.total += amount
      t.events += 1
      totals.set(streamId, t)
    }
    const rows = [...totals].map(([stream_id, t]) => ({ stream_id, total: t.total, events: t.events }))
    return sql`insert into ${sql(table)} as b ${sql.insert(rows)} on conflict (stream_id)
      do update set total = b.total + excluded.total, events = b.events + excluded.events`
  })

/** The read model; `onHandled` sees each batch's events as its handler runs (the commit follows). */
export const balances = (
  table: string,
  partitions: number,
  onHandled?: (events: ReadonlyArray<Event.RecordedEvent>) => void
) =>
  Projection.make({
    name: "balances",
    events: Deposited,
    partitions,
    batchSize: pageSize,
    handleBatch: (batch) =>
      Effect.zipRight(
        Effect.sync(() => onHandled?.(batch.map((d) => d.envelope))),
        upsertTotals(
          table,
          batch.map((d) => ({ streamId: d.envelope.streamId, amount: d.event.amount }))
        )
      ),
    truncate: Effect.flatMap(SqlClient.SqlClient, (sql) => sql`delete from ${sql(table)}`)
  })

/** Events missing from the read model and events counted twice (or more). */
export const countGaps = (table: string, expectedPerStream: ReadonlyMap<string, number>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ readonly stream_id: string; readonly events: number }>`
      select stream_id, events from ${sql(table)}`
    const seen = new Map(rows.map((r) => [r.stream_id, r.events]))
    let gaps = 0
    let duplicates = 0
    for (const [streamId, expected] of expectedPerStream) {
      const actual = seen.get(streamId) ?? 0
      gaps += Math.max(0, expected - actual)
      duplicates += Math.max(0, actual - expected)
    }
    for (const [streamId, actual] of seen) if (!expectedPerStream.has(streamId)) duplicates += actual
    return { gaps, duplicates }
  })

const fill = (total: number) =>
  Effect.flatMap(EventStore.EventStore, (store) =>
    Effect.forEach(
      Array.from({ length: Math.ceil(total / eventsPerStream) }, (_, i) => i),
      (i) =>
        Effect.flatMap(
          Event.makeAll(Array.from({ length: eventsPerStream }, () => ({ type: "Deposited", data: payload }))),
          (events) => store.append(`P-${i}`, events)
        ),
      { concurrency: 8, discard: true }
    )
  )

const rawRebuild = async (pool: pg.Pool, total: number): Promise<{ readonly seconds: number }> => {
  await pool.query(`drop table if exists ${rawSchema}.p1_balances, ${rawSchema}.p1_checkpoint`)
  await pool.query(
    `create table ${rawSchema}.p1_balances (stream_id text primary key, total bigint not null, events integer not null)`
  )
  await pool.query(`create table ${rawSchema}.p1_checkpoint (id int primary key, tx text, position bigint)`)
  await pool.query(`insert into ${rawSchema}.p1_checkpoint values (1, '0', 0)`)
  const start = performance.now()
  let last = { transaction: "0", position: "0" }
  let n = 0
  for (;;) {
    const { rows } = await pool.query<{
      position: string
      transaction_id: string
      stream_id: string
      data: { amount: number }
    }>(
      `select position, transaction_id, stream_id, category, version, event_id, type, schema_version, data, metadata, recorded_at
       from ${rawEvents} where (transaction_id, position) > ($1::xid8, $2::bigint)
       order by transaction_id, position limit ${pageSize}`,
      [last.transaction, last.position]
    )
    if (rows.length === 0) break
    const totals = new Map<string, { total: number; events: number }>()
    for (const row of rows) {
      const t = totals.get(row.stream_id) ?? { total: 0, events: 0 }
      t.total += row.data.amount
      t.events += 1
      totals.set(row.stream_id, t)
    }
    last = { transaction: rows[rows.length - 1]!.transaction_id, position: rows[rows.length - 1]!.position }
    const client = await pool.connect()
    try {
      await client.query("begin")
      const values = [...totals].map((_, i) => `($${i * 3 + 1}, $${i * 3 + 2}, $${i * 3 + 3})`).join(", ")
      await client.query(
        `insert into ${rawSchema}.p1_balances as b (stream_id, total, events) values ${values}
         on conflict (stream_id) do update set total = b.total + excluded.total, events = b.events + excluded.events`,
        [...totals].flatMap(([streamId, t]) => [streamId, t.total, t.events])
      )
      await client.query(`update ${rawSchema}.p1_checkpoint set tx = $1, position = $2 where id = 1`, [
        last.transaction,
        last.position
      ])
      await client.query("commit")
    } finally {
      client.release()
    }
    n += rows.length
  }
  if (n !== total) throw new Error(`raw rebuild saw ${n} rows, expected ${total}`)
  return { seconds: (performance.now() - start) / 1000 }
}

export const P1 = async (options: Options, pool: pg.Pool): Promise<ReadonlyArray<Result>> => {
  const total = scaled(options, 100_000, 2000)
  // the raw table holds the same events (R2's layout: streams of 50)
  await pool.query(`truncate ${rawEvents}`)
  await pool.query(
    `insert into ${rawEvents} (stream_id, category, stream_hash, version, event_id, type, schema_version, data, metadata)
     select 'P-' || (g / ${eventsPerStream}), 'P', 0, (g % ${eventsPerStream}) + 1, gen_random_uuid(), 'Deposited', 1, $1::json, '{}'
     from generate_series(0, $2 - 1) as g`,
    [JSON.stringify(payload), total]
  )
  const rawSeconds: Array<number> = []
  /** One raw rebuild, run just before each store's: the two take turns, so both meet the same load. */
  const rawTurn = Effect.promise(async () => {
    const raw = await rawRebuild(pool, total)
    rawSeconds.push(raw.seconds)
    return raw.seconds
  })
  const expected = new Map(
    Array.from({ length: Math.ceil(total / eventsPerStream) }, (_, i) => [`P-${i}`, eventsPerStream] as const)
  )
  const results: Array<Result> = []
  const processRuns: Array<Result> = []
  for (const makeTarget of targets(options)) {
    const target = makeTarget()
    const runs = await Effect.runPromise(
      Effect.gen(function* () {
        yield* fill(total)
        yield* target.analyze
        yield* createTable(target.table)
        const out: Array<{
          partitions: number
          seconds: number
          rawSeconds: number
          gaps: number
          duplicates: number
        }> = []
        for (const partitions of [1, 4]) {
          const projection = { ...balances(target.table, partitions), name: `balances-${partitions}` }
          const seconds: Array<number> = []
          const raw: Array<number> = []
          for (let i = 0; i < options.repetitions; i++) {
            yield* Projection.rebuild(projection)
            raw.push(yield* rawTurn)
            const start = performance.now()
            yield* Projection.catchUp(projection)
            seconds.push((performance.now() - start) / 1000)
          }
          const counts = yield* countGaps(target.table, expected)
          out.push({ partitions, seconds: middle(seconds), rawSeconds: middle(raw), ...counts })
        }
        if (target.name === "postgres") processRuns.push(...(yield* processVariants(options, target, total, expected)))
        return out
      }).pipe(Effect.provide(target.layer), Effect.orDie)
    )
    for (const run of runs) {
      results.push(
        result({
          id: "P1",
          store: target.name,
          variant: `partitions=${run.partitions}`,
          value: total / run.seconds,
          unit: "events/s",
          baseline: total / run.rawSeconds,
          notes: `${total} events, batches of ${pageSize}`,
          extra: { gaps: run.gaps, duplicates: run.duplicates }
        })
      )
    }
  }
  results.push(...processRuns)
  results.push(
    result({
      id: "P1",
      store: "raw-pg",
      value: total / middle(rawSeconds),
      unit: "events/s",
      notes: "the baseline: median of all its runs (each store variant's ratio is to the raw runs beside its own)"
    })
  )
  return results
}

const middle = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

export const P2 = async (options: Options): Promise<ReadonlyArray<Result>> => {
  const appends = scaled(options, 10_000, 500)
  const writers = 16
  const results: Array<Result> = []
  for (const makeTarget of targets(options)) {
    const target = makeTarget()
    const appendedAt = new Map<string, number>()
    const handledAt = new Map<string, number>()
    let handledTwice = 0
    const projection = balances(target.table, 1, (events) => {
      const now = performance.now()
      for (const { eventId: id } of events) {
        // a batch retried after a failed commit runs its handler again: keep the first time, count none twice
        if (handledAt.has(id)) handledTwice++
        else handledAt.set(id, now)
      }
    })
    const run = await Effect.runPromise(
      Effect.gen(function* () {
        yield* createTable(target.table)
        const runner = yield* Effect.fork(Projection.run(projection, { pollInterval: "1 second" }))
        const store = yield* EventStore.EventStore
        const m = yield* measureEffect(appends, writers, (i) =>
          Effect.flatMap(Event.make({ type: "Deposited", data: payload }), (event) =>
            Effect.map(store.append(`L-${i}`, [event]), () => appendedAt.set(event.eventId, performance.now()))
          )
        )
        const deadline = performance.now() + 60_000
        while (handledAt.size < appends && performance.now() < deadline) yield* Effect.sleep("20 millis")
        yield* Fiber.interrupt(runner)
        const counts = yield* countGaps(
          target.table,
          new Map(Array.from({ length: appends }, (_, i) => [`L-${i}`, 1] as const))
        )
        return { m, counts }
      }).pipe(Effect.provide(target.layer), Effect.orDie)
    )
    const lags = [...appendedAt].map(([id, at]) => Math.max(0, (handledAt.get(id) ?? Infinity) - at))
    results.push(
      result({
        id: "P2",
        store: target.name,
        value: percentile(lags, 99)!,
        unit: "ms lag p99",
        notes: `${appends} appends by ${writers} writers at ${Math.round(run.m.ops / run.m.seconds)}/s; target p99 < 250 ms`,
        extra: {
          p50_ms: Number(percentile(lags, 50)!.toFixed(2)),
          p99_ms: Number(percentile(lags, 99)!.toFixed(2)),
          gaps: run.counts.gaps,
          duplicates: run.counts.duplicates,
          handler_reruns: handledTwice
        }
      })
    )
  }
  return results
}

// ---------------------------------------------------------------------------------------------------
// P1 across worker processes (PostgreSQL)
// ---------------------------------------------------------------------------------------------------

/** Partitions of P1's multi-process variants. */
export const processPartitions = 16

/** The workers' lease TTL: a killed worker's partitions are taken over once it ends. */
const workerLease = "2 seconds"

const workerScript = fileURLToPath(new URL("../projectionWorker.ts", import.meta.url))

/**
 * A worker process (see `projectionWorker.ts`) and the events it reported handled (a pipe's writes are
 * synchronous: a killed worker's count is complete), stopped with SIGTERM (and awaited) when the scope closes.
 */
const workerProcess = (url: string, schema: string, table: string, name: string, workerId: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(
        process.execPath,
        ["--import", "tsx", workerScript, url, schema, table, name, workerId, workerLease],
        { stdio: ["ignore", "pipe", "ignore"] }
      )
      let handled = 0
      readline.createInterface({ input: child.stdout! }).on("line", (line) => {
        const match = /^handled (\d+)$/.exec(line)
        if (match !== null) handled += Number(match[1])
      })
      return { child, handled: () => handled }
    }),
    ({ child }) =>
      Effect.async<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
        child.once("exit", () => resume(Effect.void))
        child.kill("SIGTERM")
      })
  )

/** Polls `condition` every 50 ms, for at most 10 minutes. */
const waitFor = <E, R>(condition: Effect.Effect<boolean, E, R>) =>
  condition.pipe(
    Effect.repeat({ until: (done) => done, schedule: Schedule.spaced("50 millis") }),
    Effect.timeoutFail({ duration: "10 minutes", onTimeout: () => new Error("a worker process run did not finish") })
  )

/**
 * One rebuild by `workers` processes of a fresh 16-partition projection, clocked from its first committed
 * batch (process start-up left out) to the last event applied. With `kill`, worker 0 is killed (SIGKILL)
 * halfway, and the time until its partitions are all owned again is the takeover time.
 */
const processRun = (
  options: Options,
  schema: string,
  total: number,
  expected: ReadonlyMap<string, number>,
  workers: number,
  kill: boolean,
  run: number
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const checkpoints = yield* CheckpointStoreTag
      const name = `balances-w${workers}${kill ? "k" : ""}-${run}`
      const table = `${schema}.${name.replace(/-/g, "_")}`
      yield* createTable(table)
      const applied = Effect.map(
        sql<{ readonly n: number }>`select coalesce(sum(events), 0)::int as n from ${sql(table)}`,
        ([row]) => row!.n
      )
      const children = yield* Effect.forEach(
        Array.from({ length: workers }, (_, i) => i),
        (i) => workerProcess(options.pgUrl, schema, table, name, `worker-${i}`)
      )
      yield* waitFor(Effect.map(applied, (n) => n > 0))
      const start = performance.now()
      const atStart = yield* applied
      let takeoverMs: number | undefined
      if (kill) {
        yield* waitFor(Effect.map(applied, (n) => n >= total / 2))
        const killedAt = performance.now()
        children[0]!.child.kill("SIGKILL")
        const owners = Effect.map(checkpoints.partitions({ name, version: 1 }), (ps) =>
          ps.map((p) => Option.getOrUndefined(p.owner))
        )
        yield* waitFor(
          Effect.map(
            owners,
            (o) => o.length === processPartitions && o.every((w) => w !== undefined && w !== "worker-0")
          )
        )
        takeoverMs = performance.now() - killedAt
      }
      yield* waitFor(Effect.map(applied, (n) => n >= total))
      const seconds = (performance.now() - start) / 1000
      // every event was handled at least once: the rest are batches handled again after a rollback (a
      // killed worker's, or one whose lease moved while it was in flight)
      const handled = () => children.reduce((sum, worker) => sum + worker.handled(), 0)
      yield* waitFor(Effect.sync(() => handled() >= total))
      return {
        rate: (total - atStart) / seconds,
        takeoverMs,
        rehandled: handled() - total,
        ...(yield* countGaps(table, expected))
      }
    })
  )

/** P1 with 1, 2 and 4 worker processes, and the takeover of a killed one (2 processes). */
const processVariants = (
  options: Options,
  target: ProjectionTarget,
  total: number,
  expected: ReadonlyMap<string, number>
) =>
  Effect.gen(function* () {
    const schema = target.table.split(".")[0]!
    const results: Array<Result> = []
    for (const workers of [1, 2, 4]) {
      const runs: Array<Effect.Effect.Success<ReturnType<typeof processRun>>> = []
      for (let i = 0; i < options.repetitions; i++)
        runs.push(yield* processRun(options, schema, total, expected, workers, false, i))
      const rates = runs.map((r) => r.rate)
      results.push(
        result({
          id: "P1",
          store: "postgres",
          variant: `processes=${workers}, partitions=${processPartitions}`,
          value: middle(rates),
          unit: "events/s",
          notes: `${workers} worker process(es) sharing ${processPartitions} partitions; clocked from the first committed batch; rehandled: events handled again after a rollback (the most of the runs)`,
          extra: {
            gaps: Math.max(...runs.map((r) => r.gaps)),
            duplicates: Math.max(...runs.map((r) => r.duplicates)),
            rehandled: Math.max(...runs.map((r) => r.rehandled))
          }
        })
      )
    }
    const takeovers: Array<Effect.Effect.Success<ReturnType<typeof processRun>>> = []
    for (let i = 0; i < options.repetitions; i++)
      takeovers.push(yield* processRun(options, schema, total, expected, 2, true, i))
    results.push(
      result({
        id: "P1",
        store: "postgres",
        variant: "takeover, processes=2",
        value: middle(takeovers.map((r) => r.takeoverMs!)),
        unit: "ms",
        notes: `a worker killed (SIGKILL) halfway: until its partitions are all owned again; lease TTL ${workerLease}; rehandled: events handled again after a rollback (the most of the runs)`,
        extra: {
          gaps: Math.max(...takeovers.map((r) => r.gaps)),
          duplicates: Math.max(...takeovers.map((r) => r.duplicates)),
          rehandled: Math.max(...takeovers.map((r) => r.rehandled))
        }
      })
    )
    return results
  })
