/**
 * Benchmark harness: result shape (BENCHMARKS.md), timing helpers, medians of repetitions, and the
 * table/JSON report. Numbers on this shared 2-core machine move 2x between runs; what counts is the ratio
 * to the raw baseline measured in the same run.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import * as Effect from "effect/Effect"

export interface Result {
  readonly id: string
  readonly store: string
  readonly variant?: string
  readonly value: number
  readonly unit: string
  readonly p50_ms?: number
  readonly p99_ms?: number
  readonly baseline?: number
  readonly ratio?: number
  readonly gaps?: number
  readonly duplicates?: number
  readonly notes?: string
  readonly [extra: string]: unknown
}

export interface Options {
  /** 1 normally, 0.1 with `--quick`. */
  readonly scale: number
  readonly repetitions: number
  readonly pgUrl: string
}

/** `n` scaled for `--quick`, at least `min`. */
export const scaled = (options: Options, n: number, min = 1): number => Math.max(min, Math.round(n * options.scale))

/** Throughput and latency of one measured run. */
export interface Measurement {
  readonly ops: number
  readonly seconds: number
  readonly latencies: ReadonlyArray<number>
}

export const perSecond = (m: Measurement, unitsPerOp = 1): number => (m.ops * unitsPerOp) / m.seconds

export const percentile = (values: ReadonlyArray<number>, p: number): number | undefined => {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

/** Runs `run` `repetitions` times and returns the run with the median `value`. */
export const median = async <A>(repetitions: number, run: () => Promise<A>, value: (a: A) => number): Promise<A> =>
  (await medians(repetitions, [run], value))[0]!

/**
 * Runs each of `runs` `repetitions` times, taking turns (first, second, ..., first, second, ...), and returns
 * each one's run with the median `value`, in order. Taking turns exposes all of them alike to the machine's
 * load, which drifts over seconds here: run one after the other, a baseline and the store compared with it
 * can meet different load, and the ratio moves by a third between runs of the benchmark.
 */
export const medians = async <A>(
  repetitions: number,
  runs: ReadonlyArray<() => Promise<A>>,
  value: (a: A) => number
): Promise<ReadonlyArray<A>> => {
  const all = runs.map((): Array<A> => [])
  for (let i = 0; i < repetitions; i++) {
    for (const [k, run] of runs.entries()) all[k]!.push(await run())
  }
  return all.map((results) => results.sort((a, b) => value(a) - value(b))[Math.floor(results.length / 2)]!)
}

/** A variant of a workload opened once per repetition and measured in slices (see {@link interleaved}). */
export interface Sliced {
  /** Measures `count` more operations. */
  readonly measure: (count: number) => Promise<Measurement>
  readonly close: () => Promise<void>
}

/**
 * Runs each of `variants` `repetitions` times, interleaved finely: in a repetition all are opened, then
 * measured in `slices` turns of about `count / slices` operations each, the order rotating from turn to
 * turn; a variant's measurement is the sum of its slices. Returns each one's repetition with the median
 * `value`, in order. Where a whole run takes seconds (W1: 10,000 appends), a baseline and the store run
 * one after the other can meet different load even when they take turns ({@link medians}): here, raw
 * single-row commits moved between 1,900 and 2,800/s from run to run while the store compared with them
 * moved 5%. Slices of a fraction of a second let every variant meet the same seconds' load.
 */
export const interleaved = async (
  repetitions: number,
  variants: ReadonlyArray<() => Promise<Sliced>>,
  count: number,
  slices: number,
  value: (m: Measurement) => number
): Promise<ReadonlyArray<Measurement>> => {
  const all = variants.map((): Array<Measurement> => [])
  for (let r = 0; r < repetitions; r++) {
    const opened: Array<Sliced> = []
    try {
      for (const open of variants) opened.push(await open())
      const sums = opened.map(() => ({ ops: 0, seconds: 0, latencies: [] as Array<number> }))
      for (let slice = 0; slice < slices; slice++) {
        const n = Math.floor((count * (slice + 1)) / slices) - Math.floor((count * slice) / slices)
        for (let turn = 0; turn < opened.length; turn++) {
          const k = (turn + slice) % opened.length
          const m = await opened[k]!.measure(n)
          sums[k]!.ops += m.ops
          sums[k]!.seconds += m.seconds
          sums[k]!.latencies.push(...m.latencies)
        }
      }
      sums.forEach((m, k) => all[k]!.push(m))
    } finally {
      for (const variant of opened.reverse()) await variant.close()
    }
  }
  return all.map((results) => results.sort((a, b) => value(a) - value(b))[Math.floor(results.length / 2)]!)
}

/** Times `op(i)` for `i` in `0..count`, by `concurrency` workers pulling from one counter. */
export const measure = async (
  count: number,
  concurrency: number,
  op: (i: number) => Promise<unknown>
): Promise<Measurement> => {
  const latencies: Array<number> = []
  let next = 0
  const worker = async () => {
    while (next < count) {
      const i = next++
      const t0 = performance.now()
      await op(i)
      latencies.push(performance.now() - t0)
    }
  }
  const start = performance.now()
  await Promise.all(Array.from({ length: concurrency }, worker))
  return { ops: count, seconds: (performance.now() - start) / 1000, latencies }
}

const round = (n: number | undefined, digits = 2) => (n === undefined ? undefined : Number(n.toFixed(digits)))

/** Builds a result from a measurement; `ratio` = value / baseline (or baseline / value for latencies). */
export const result = (fields: {
  readonly id: string
  readonly store: string
  readonly variant?: string
  readonly value: number
  readonly unit: string
  readonly measurement?: Measurement
  readonly baseline?: number
  readonly lowerIsBetter?: boolean
  readonly notes?: string
  readonly extra?: Record<string, unknown>
}): Result => {
  const { baseline, lowerIsBetter, measurement, value } = fields
  const ratio = baseline === undefined ? undefined : lowerIsBetter ? baseline / value : value / baseline
  const notes = [lowerIsBetter ? "lower is better; ratio = baseline / value" : undefined, fields.notes]
    .filter((n) => n !== undefined)
    .join("; ")
  return {
    id: fields.id,
    store: fields.store,
    ...(fields.variant === undefined ? {} : { variant: fields.variant }),
    value: round(value)!,
    unit: fields.unit,
    ...(measurement === undefined || measurement.latencies.length === 0
      ? {}
      : {
          p50_ms: round(percentile(measurement.latencies, 50)!, 3)!,
          p99_ms: round(percentile(measurement.latencies, 99)!, 3)!
        }),
    ...(baseline === undefined ? {} : { baseline: round(baseline)!, ratio: round(ratio, 3)! }),
    ...(notes === "" ? {} : { notes }),
    ...fields.extra
  }
}

export const printTable = (results: ReadonlyArray<Result>): void => {
  const rows = results.map((r) => [
    r.id,
    r.store + (r.variant ? ` (${r.variant})` : ""),
    `${r.value} ${r.unit}`,
    r.p50_ms === undefined ? "" : String(r.p50_ms),
    r.p99_ms === undefined ? "" : String(r.p99_ms),
    r.baseline === undefined ? "" : String(r.baseline),
    r.ratio === undefined ? "" : `${r.ratio}x`,
    r.gaps === undefined ? "" : `${r.gaps}/${r.duplicates}`
  ])
  const header = ["id", "store", "value", "p50 ms", "p99 ms", "baseline", "ratio", "gaps/dups"]
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ")
  process.stdout.write([line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n") + "\n")
}

export const writeReport = (path: string, env: Record<string, unknown>, results: ReadonlyArray<Result>): void => {
  mkdirSync(new URL(".", `file://${path}`).pathname, { recursive: true })
  writeFileSync(
    path,
    JSON.stringify({ env: { ...env, cpus: os.cpus().length, node: process.version }, results }, null, 2) + "\n"
  )
}

/** The payload of every benchmark event (BENCHMARKS.md). */
export const payload = { amount: 100, note: "a short text of about 40 characters....." } as const

/** {@link measure} for Effects: `concurrency` fibers pulling from one counter. */
export const measureEffect = <E, R>(
  count: number,
  concurrency: number,
  op: (i: number) => Effect.Effect<unknown, E, R>
): Effect.Effect<Measurement, E, R> =>
  Effect.suspend(() => {
    const latencies: Array<number> = []
    let next = 0
    const worker = Effect.gen(function* () {
      while (next < count) {
        const i = next++
        const t0 = performance.now()
        yield* op(i)
        latencies.push(performance.now() - t0)
      }
    })
    const start = performance.now()
    return Effect.all(
      Array.from({ length: concurrency }, () => worker),
      { concurrency: "unbounded", discard: true }
    ).pipe(Effect.map(() => ({ ops: count, seconds: (performance.now() - start) / 1000, latencies })))
  })
