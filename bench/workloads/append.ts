/**
 * W1-W3: appends. W1 one event to a new stream, one writer; W2 the same with 16 writers; W3 appends of
 * 50 events. Each store figure is compared with the raw `pg` baseline of the same run.
 */
import { randomUUID } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type pg from "pg"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import {
  type Measurement,
  measureEffect,
  median,
  type Options,
  payload,
  perSecond,
  type Result,
  result,
  scaled
} from "../harness.js"
import { batchInserts, singleInserts } from "../raw.js"
import { type Target, withFreshStore } from "../targets.js"

const appendNew = (store: EventStore.EventStore["Type"], run: string, eventsPerAppend: number) => (i: number) =>
  Effect.flatMap(
    Event.makeAll(Array.from({ length: eventsPerAppend }, () => ({ type: "Deposited", data: payload }))),
    (events) => store.append(`W-${run}-${i}`, events, { expectedVersion: Event.NoStream })
  )

const workload =
  (
    id: string,
    appends: (options: Options) => number,
    writers: number,
    eventsPerAppend: number,
    baseline: (pool: pg.Pool, count: number) => Promise<Measurement>
  ) =>
  async (options: Options, pool: pg.Pool, targets: ReadonlyArray<Target>): Promise<ReadonlyArray<Result>> => {
    const count = appends(options)
    const rate = (m: Measurement) => perSecond(m, eventsPerAppend)
    const raw = await median(options.repetitions, () => baseline(pool, count), rate)
    const results: Array<Result> = []
    for (const target of targets) {
      const before = Effect.runSync(Metric.value(SqlEventStore.appendBatchSize))
      const m = await median(
        options.repetitions,
        () =>
          withFreshStore(target, (store) =>
            measureEffect(count, writers, appendNew(store, randomUUID(), eventsPerAppend))
          ),
        rate
      )
      const after = Effect.runSync(Metric.value(SqlEventStore.appendBatchSize))
      const batches = after.count - before.count
      const extra =
        batches === 0
          ? {}
          : {
              batches,
              mean_batch: Number(((after.sum - before.sum) / batches).toFixed(2)),
              batch_size_buckets: Object.fromEntries(
                after.buckets.map(([bound, n], i) => [`<=${bound}`, n - (before.buckets[i]?.[1] ?? 0)])
              )
            }
      results.push(
        result({ id, store: target.name, value: rate(m), unit: "events/s", measurement: m, baseline: rate(raw), extra })
      )
    }
    results.push(
      result({ id, store: "raw-pg", value: rate(raw), unit: "events/s", measurement: raw, notes: "the baseline" })
    )
    return results
  }

export const W1 = workload(
  "W1",
  (o) => scaled(o, 10_000, 100),
  1,
  1,
  (pool, n) => singleInserts(pool, n, 1)
)
export const W2 = workload(
  "W2",
  (o) => scaled(o, 10_000, 100),
  16,
  1,
  (pool, n) => singleInserts(pool, n, 16)
)
export const W3 = workload(
  "W3",
  (o) => scaled(o, 200, 20),
  1,
  50,
  (pool, n) => batchInserts(pool, n, 50)
)
