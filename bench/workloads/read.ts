/**
 * R2: read every event in global order with a catch-up reader (`readAll`, 1,000-event pages), counting
 * gaps and duplicates (an event out of order counts as a duplicate: it sorts before one already seen) and sampling the process's RSS after 10% and after all of the events (memory
 * must stay flat: reads are paged). Baseline: a raw keyset read of 1,000-row pages with `pg`.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type pg from "pg"
import * as Event from "../../src/Event.js"
import { type Measurement, type Options, payload, type Result, result, scaled } from "../harness.js"
import { events } from "../raw.js"
import { type Target, withFreshStore } from "../targets.js"

const pageSize = 1000
const eventsPerAppend = 50

const mb = (bytes: number) => Math.round(bytes / 1024 / 1024)

interface ReadRun extends Measurement {
  readonly gaps: number
  readonly duplicates: number
  readonly rssAtTenth: number
  readonly rssAtEnd: number
  readonly peakRss: number
}

const rawRead = async (pool: pg.Pool, total: number): Promise<Measurement> => {
  const start = performance.now()
  let last = { transaction: "0", position: "0" }
  let n = 0
  for (;;) {
    const { rows } = await pool.query<{ position: string; transaction_id: string }>(
      `select position, transaction_id, stream_id, category, version, event_id, type, schema_version, data, metadata, recorded_at
       from ${events} where (transaction_id, position) > ($1::xid8, $2::bigint)
       order by transaction_id, position limit ${pageSize}`,
      [last.transaction, last.position]
    )
    if (rows.length === 0) break
    n += rows.length
    last = { transaction: rows[rows.length - 1]!.transaction_id, position: rows[rows.length - 1]!.position }
  }
  if (n !== total) throw new Error(`raw read saw ${n} rows, expected ${total}`)
  return { ops: n, seconds: (performance.now() - start) / 1000, latencies: [] }
}

const fill = (store: Parameters<Parameters<typeof withFreshStore>[1]>[0], total: number) =>
  Effect.forEach(
    Array.from({ length: Math.ceil(total / eventsPerAppend) }, (_, i) => i),
    (i) =>
      Effect.flatMap(
        Event.makeAll(Array.from({ length: eventsPerAppend }, () => ({ type: "Deposited", data: payload }))),
        (events) => store.append(`R2-${i}`, events)
      ),
    { concurrency: 8, discard: true }
  )

/**
 * One full catch-up read. Checkpoints must strictly increase, which also rules out duplicates; events
 * missing from the count are gaps. Chunks are handled as the store delivers them (one per page), the way
 * a catch-up reader would.
 */
const readAll = (store: Parameters<Parameters<typeof withFreshStore>[1]>[0], total: number) =>
  Effect.suspend(() => {
    let count = 0
    let outOfOrder = 0
    let previous = Event.start
    let rssAtTenth = 0
    let peakRss = 0
    const tenth = Math.round(total / 10)
    const start = performance.now()
    return Stream.runForEachChunk(store.readAll({ batchSize: pageSize }), (chunk) =>
      Effect.sync(() => {
        for (const event of chunk) {
          const checkpoint = Event.checkpointOf(event)
          if (Event.checkpointOrder(checkpoint, previous) <= 0) outOfOrder++
          previous = checkpoint
        }
        const before = count
        count += chunk.length
        const rss = process.memoryUsage().rss
        peakRss = Math.max(peakRss, rss)
        if (before < tenth && count >= tenth) rssAtTenth = rss
      })
    ).pipe(
      Effect.map((): ReadRun => ({
        ops: count,
        seconds: (performance.now() - start) / 1000,
        latencies: [],
        gaps: Math.max(0, total - count),
        duplicates: outOfOrder + Math.max(0, count - total),
        rssAtTenth,
        rssAtEnd: process.memoryUsage().rss,
        peakRss
      }))
    )
  })

export const R2 = async (
  options: Options,
  pool: pg.Pool,
  targets: ReadonlyArray<Target>
): Promise<ReadonlyArray<Result>> => {
  const total = scaled(options, 100_000, 2000)
  await pool.query(`truncate ${events}`)
  await pool.query(
    `insert into ${events} (stream_id, category, stream_hash, version, event_id, type, schema_version, data, metadata)
     select 'R2-' || (g / ${eventsPerAppend}), 'R2', 0, (g % ${eventsPerAppend}) + 1, gen_random_uuid(), 'Deposited', 1, $1::json, '{}'
     from generate_series(0, $2 - 1) as g`,
    [JSON.stringify(payload), total]
  )
  const rate = (m: Measurement) => m.ops / m.seconds
  // a raw read runs just before each store read: the two take turns, so both meet the same load
  const allRaw: Array<Measurement> = []
  const results: Array<Result> = []
  for (const target of targets) {
    const { raw, run } = await withFreshStore(target, (store) =>
      Effect.gen(function* () {
        yield* fill(store, total)
        const runs: Array<ReadRun> = []
        const raws: Array<Measurement> = []
        for (let i = 0; i < options.repetitions; i++) {
          raws.push(yield* Effect.promise(() => rawRead(pool, total)))
          runs.push(yield* readAll(store, total))
        }
        allRaw.push(...raws)
        return { raw: middle(raws, rate), run: middle(runs, rate) }
      })
    )
    results.push(
      result({
        id: "R2",
        store: target.name,
        value: rate(run),
        unit: "events/s",
        baseline: rate(raw),
        notes: `${total} events`,
        extra: {
          gaps: run.gaps,
          duplicates: run.duplicates,
          rss_mb_at_10pct: mb(run.rssAtTenth),
          rss_mb_at_end: mb(run.rssAtEnd),
          peak_rss_mb: mb(run.peakRss)
        }
      })
    )
  }
  results.push(
    result({
      id: "R2",
      store: "raw-pg",
      value: rate(middle(allRaw, rate)),
      unit: "events/s",
      notes: "the baseline: median of all its runs (each store's ratio is to the raw runs beside its own)"
    })
  )
  return results
}

/** The median of `runs` by `value`. */
const middle = <A>(runs: ReadonlyArray<A>, value: (a: A) => number): A =>
  [...runs].sort((a, b) => value(a) - value(b))[Math.floor(runs.length / 2)]!
