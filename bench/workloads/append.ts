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
  type Measurement,
  measureEffect,
  medians,
  type Options,
  payload,
  perSecond,
  type Result,
  result,
  scaled
} from "../harness.js"
import { batchInserts, singleInserts, sqliteSingleInserts } from "../raw.js"
import { type Target, withFreshStore } from "../targets.js"

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

/**
 * A workload: the raw baseline and every store, `repetitions` times each, taking turns (see `medians`), each
 * after a warm-up ({@link warmupOf}); the figures are each one's median run. Batch sizes are reported over all
 * of a store's measured runs.
 */
const workload =
  (
    id: string,
    appends: (options: Options) => number,
    writers: number,
    eventsPerAppend: number,
    baseline: (pool: pg.Pool, count: number) => Promise<Measurement>,
    /** The SQLite store's own baseline, if it has one (else it is compared with `baseline`), after `warmup` inserts. */
    sqliteBaseline?: (count: number, warmup: number) => Promise<Measurement>
  ) =>
  async (options: Options, pool: pg.Pool, targets: ReadonlyArray<Target>): Promise<ReadonlyArray<Result>> => {
    const count = appends(options)
    const rate = (m: Measurement) => perSecond(m, eventsPerAppend)
    const batches = targets.map((): Array<Batches> => [])
    const warmup = warmupOf(count, writers)
    const storeRun = (k: number) => async (): Promise<Measurement> =>
      withFreshStore(targets[k]!, (store) =>
        Effect.gen(function* () {
          yield* measureEffect(warmup, writers, appendNew(store, randomUUID(), eventsPerAppend))
          const before = Effect.runSync(Metric.value(SqlEventStore.appendBatchSize))
          const m = yield* measureEffect(count, writers, appendNew(store, randomUUID(), eventsPerAppend))
          batches[k]!.push(batchesSince(before))
          return m
        })
      )
    const rawRun = async () => {
      await baseline(pool, warmup)
      return baseline(pool, count)
    }
    const rawSqlite = sqliteBaseline === undefined ? [] : [() => sqliteBaseline(count, warmup)]
    const [raw, ...rest] = await medians(
      options.repetitions,
      [rawRun, ...rawSqlite, ...targets.map((_, k) => storeRun(k))],
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
