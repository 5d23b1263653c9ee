/**
 * W1-W3: appends. W1 one event to a new stream, one writer; W2 the same with 16 writers; W3 appends of
 * 50 events. Each store figure is compared with the raw `pg` baseline of the same run, measured in turns with it;
 * SQLite's W1 and W2 with a raw better-sqlite3 baseline of their own.
 */
import { randomUUID } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as MetricState from "effect/MetricState"
import type pg from "pg"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import {
  interleaved,
  type Measurement,
  measureEffect,
  type Options,
  payload,
  perSecond,
  type Result,
  result,
  scaled,
  type Sliced
} from "../harness.js"
import { batchInserts, singleInserts, sqliteSingleInserts } from "../raw.js"
import { openFreshStore, type Target } from "../targets.js"

const appendNew = (store: EventStore.EventStore["Type"], run: string, eventsPerAppend: number) => (i: number) =>
  Effect.flatMap(
    Event.makeAll(Array.from({ length: eventsPerAppend }, () => ({ type: "Deposited", data: payload }))),
    (events) => store.append(`W-${run}-${i}`, events, { expectedVersion: Event.NoStream })
  )

/** Appends per round trip under group commit, from a snapshot of the histogram taken before. */
const batchesSince = (before: MetricState.MetricState.Histogram) => {
  const after = Effect.runSync(Metric.value(SqlEventStore.appendBatchSize))
  return {
    count: after.count - before.count,
    sum: after.sum - before.sum,
    buckets: after.buckets.map(([bound, n], i) => [bound, n - (before.buckets[i]?.[1] ?? 0)] as const)
  }
}

type Batches = ReturnType<typeof batchesSince>

const batchReport = (runs: ReadonlyArray<Batches>) => {
  const count = runs.reduce((n, b) => n + b.count, 0)
  if (count === 0) return {}
  const sum = runs.reduce((n, b) => n + b.sum, 0)
  return {
    batches: count,
    mean_batch: Number((sum / count).toFixed(2)),
    batch_size_buckets: Object.fromEntries(
      runs[0]!.buckets.map(([bound], i) => [`<=${bound}`, runs.reduce((n, b) => n + b.buckets[i]![1], 0)])
    )
  }
}

/**
 * Operations run unmeasured before each measured run, on the raw baseline and the stores alike: 5% of the
 * run, at least one per writer. A store is fresh each run (a new pool, file or schema): its connections open
 * and the server plans its statements (PostgreSQL's append function, per connection) before the clock starts,
 * as the raw pool's connections are opened before timing.
 */
const warmupOf = (count: number, writers: number) => Math.max(writers, Math.ceil(count / 20))

/** Slices per repetition (see `interleaved`): ten, unless that leaves fewer than ten appends per writer in one. */
const slicesOf = (count: number, writers: number) => Math.max(1, Math.min(10, Math.floor(count / (writers * 10))))

/**
 * A workload: the raw baseline and every store, `repetitions` times each, all opened together (each warmed up,
 * see {@link warmupOf}) and measured in interleaved slices (see `interleaved`); the figures are each one's
 * median repetition. Batch sizes are reported over all of a store's measured slices.
 */
const workload =
  (
    id: string,
    appends: (options: Options) => number,
    writers: number,
    eventsPerAppend: number,
    baseline: (pool: pg.Pool, count: number) => Promise<Measurement>,
    /** The SQLite store's own baseline, if it has one (else it is compared with `baseline`), after `warmup` inserts. */
    sqliteBaseline?: (warmup: number) => Promise<Sliced>
  ) =>
  async (options: Options, pool: pg.Pool, targets: ReadonlyArray<Target>): Promise<ReadonlyArray<Result>> => {
    const count = appends(options)
    const rate = (m: Measurement) => perSecond(m, eventsPerAppend)
    const batches = targets.map((): Array<Batches> => [])
    const warmup = warmupOf(count, writers)
    const openStore = (k: number) => async (): Promise<Sliced> => {
      const opened = await openFreshStore(targets[k]!)
      const appendAll = (n: number) =>
        Effect.runPromise(measureEffect(n, writers, appendNew(opened.store, randomUUID(), eventsPerAppend)))
      await appendAll(warmup)
      return {
        measure: async (n) => {
          const before = Effect.runSync(Metric.value(SqlEventStore.appendBatchSize))
          const m = await appendAll(n)
          batches[k]!.push(batchesSince(before))
          return m
        },
        close: opened.close
      }
    }
    const openRaw = async (): Promise<Sliced> => {
      await baseline(pool, warmup)
      return { measure: (n) => baseline(pool, n), close: async () => {} }
    }
    const rawSqlite = sqliteBaseline === undefined ? [] : [() => sqliteBaseline(warmup)]
    const [raw, ...rest] = await interleaved(
      options.repetitions,
      [openRaw, ...rawSqlite, ...targets.map((_, k) => openStore(k))],
      count,
      slicesOf(count, writers),
      rate
    )
    const sqliteRaw = sqliteBaseline === undefined ? undefined : rest[0]!
    const stores = rest.slice(rawSqlite.length)
    return [
      ...targets.map((target, k) =>
        result({
          id,
          store: target.name,
          value: rate(stores[k]!),
          unit: "events/s",
          measurement: stores[k]!,
          baseline: rate(target.name === "sqlite" && sqliteRaw !== undefined ? sqliteRaw : raw!),
          extra: batchReport(batches[k]!)
        })
      ),
      result({ id, store: "raw-pg", value: rate(raw!), unit: "events/s", measurement: raw!, notes: "the baseline" }),
      ...(sqliteRaw === undefined
        ? []
        : [
            result({
              id,
              store: "raw-sqlite",
              value: rate(sqliteRaw),
              unit: "events/s",
              measurement: sqliteRaw,
              notes: "the SQLite store's baseline (better-sqlite3, synchronous = FULL)"
            })
          ])
    ]
  }

export const W1 = workload(
  "W1",
  (o) => scaled(o, 10_000, 100),
  1,
  1,
  (pool, n) => singleInserts(pool, n, 1),
  sqliteSingleInserts
)
export const W2 = workload(
  "W2",
  (o) => scaled(o, 10_000, 100),
  16,
  1,
  (pool, n) => singleInserts(pool, n, 16),
  sqliteSingleInserts
)
export const W3 = workload(
  "W3",
  (o) => scaled(o, 200, 20),
  1,
  50,
  (pool, n) => batchInserts(pool, n, 50)
)
