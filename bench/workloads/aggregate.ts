/**
 * Command handling workloads on the bank's `Account` decider.
 * - W4: one hot account, 16 workers x 50 deposit commands with conflict retry: commands/s, conflicts,
 *   failed commands, and stale decisions (events whose recorded balance disagrees with the replay).
 * - C1: 10,000 accounts, 8 clients, 20,000 deposits spread uniformly: commands/s and latency, next to
 *   the raw single-insert rate (W1's baseline).
 * - C2: loading a 1,000-event account without and with snapshots (every 100 events): ms per load
 *   (a command that decides nothing), next to a raw read of the 1,000 rows.
 */
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import type pg from "pg"
import * as Aggregate from "../../src/Aggregate.js"
import * as EventStore from "../../src/EventStore.js"
import * as Snapshot from "../../src/Snapshot.js"
import * as Upcaster from "../../src/Upcaster.js"
import { Account, AccountEvent, AccountState } from "../../examples/bank/Account.js"
import {
  type Measurement,
  measure,
  measureEffect,
  median,
  type Options,
  percentile,
  perSecond,
  type Result,
  result,
  scaled
} from "../harness.js"
import { events as rawEvents, singleInserts } from "../raw.js"
import { type Target, withFreshStore } from "../targets.js"

const patient = Schedule.spaced("1 millis").pipe(Schedule.jittered, Schedule.intersect(Schedule.recurs(1000)))

/** The store with its conflicts counted. */
const countingConflicts = (store: EventStore.EventStore["Type"]) => {
  const counts = { conflicts: 0 }
  const counted = EventStore.EventStore.of({
    ...store,
    append: (...args) =>
      Effect.tapErrorTag(store.append(...args), "ConcurrencyConflict", () => Effect.sync(() => counts.conflicts++))
  })
  return { counted, counts }
}

/** Events of an account whose recorded balance disagrees with the replay of the events before them. */
const staleDecisions = (streamId: string) =>
  Upcaster.readStream(Account.codec, streamId).pipe(
    Stream.runFold({ balance: 0, stale: 0 }, (acc, { event }) => {
      const balance =
        acc.balance +
        (event._tag === "MoneyDeposited" ? event.amount : event._tag === "MoneyWithdrawn" ? -event.amount : 0)
      return { balance, stale: acc.stale + ("balance" in event && event.balance !== balance ? 1 : 0) }
    }),
    Effect.map((acc) => acc.stale)
  )

export const W4 = async (options: Options, targets: ReadonlyArray<Target>): Promise<ReadonlyArray<Result>> => {
  const perWorker = scaled(options, 50, 5)
  const handle = Aggregate.handler(Account, { retry: patient })
  const results: Array<Result> = []
  for (const target of targets) {
    const run = await median(
      options.repetitions,
      () =>
        withFreshStore(target, (store) =>
          Effect.gen(function* () {
            const { counted, counts } = countingConflicts(store)
            const withStore = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
              Effect.provideService(effect, EventStore.EventStore, counted)
            yield* withStore(handle("hot", { _tag: "OpenAccount", owner: "bench" }))
            let failed = 0
            const m = yield* measureEffect(16 * perWorker, 16, () =>
              withStore(handle("hot", { _tag: "Deposit", amount: 1 })).pipe(
                Effect.catchAll(() => Effect.sync(() => failed++))
              )
            )
            const stale = yield* withStore(staleDecisions("Account-hot"))
            return { m, conflicts: counts.conflicts, failed, stale }
          })
        ),
      (r) => perSecond(r.m)
    )
    results.push(
      result({
        id: "W4",
        store: target.name,
        value: perSecond(run.m),
        unit: "commands/s",
        measurement: run.m,
        notes: "one hot stream, 16 workers",
        extra: { conflicts: run.conflicts, failed: run.failed, stale: run.stale }
      })
    )
  }
  return results
}

export const C1 = async (
  options: Options,
  pool: pg.Pool,
  targets: ReadonlyArray<Target>
): Promise<ReadonlyArray<Result>> => {
  const accounts = scaled(options, 10_000, 100)
  const commands = scaled(options, 20_000, 200)
  const handle = Aggregate.handler(Account)
  const raw = await median(
    options.repetitions,
    () => singleInserts(pool, scaled(options, 2000, 200), 1),
    (m) => perSecond(m)
  )
  const results: Array<Result> = []
  for (const target of targets) {
    const m = await median(
      options.repetitions,
      () =>
        withFreshStore(target, () =>
          Effect.gen(function* () {
            yield* Effect.forEach(
              Array.from({ length: accounts }, (_, i) => i),
              (i) => handle(`c${i}`, { _tag: "OpenAccount", owner: "bench" }),
              { concurrency: 8, discard: true }
            )
            return yield* measureEffect(commands, 8, (i) =>
              handle(`c${(i * 7919) % accounts}`, { _tag: "Deposit", amount: 1 })
            )
          })
        ),
      (m) => perSecond(m)
    )
    results.push(
      result({
        id: "C1",
        store: target.name,
        value: perSecond(m),
        unit: "commands/s",
        measurement: m,
        baseline: perSecond(raw),
        notes: `${accounts} accounts, 8 clients; baseline: raw single-row inserts per second`
      })
    )
  }
  return results
}

export const C2 = async (
  options: Options,
  pool: pg.Pool,
  targets: ReadonlyArray<Target>
): Promise<ReadonlyArray<Result>> => {
  const length = 1000
  const loads = scaled(options, 50, 10)
  // loads measured without the handler's cache of folded states (a cold load, as after a restart)
  const uncached = { cacheCapacity: 0 }
  const SnapshottedAccount = Aggregate.make({
    category: Account.category,
    events: AccountEvent,
    initialState: Account.initialState,
    evolve: Account.evolve,
    decide: Account.decide,
    snapshot: { state: AccountState, strategy: Snapshot.everyNEvents(100) }
  })
  const handlers = {
    "no-snapshot": { fill: Aggregate.handler(Account), load: Aggregate.handler(Account, uncached) },
    snapshot: { fill: Aggregate.handler(SnapshottedAccount), load: Aggregate.handler(SnapshottedAccount, uncached) }
  }
  // raw: the 1,000 rows of one stream, JSON-parsed by the driver
  await pool.query(`truncate ${rawEvents}`)
  await pool.query(
    `insert into ${rawEvents} (stream_id, category, stream_hash, version, event_id, type, schema_version, data, metadata)
     select 'C2-1', 'C2', 0, g, gen_random_uuid(), 'MoneyDeposited', 1, '{"amount":1,"balance":1}', '{}' from generate_series(1, ${length}) g`
  )
  const raw = await median(
    options.repetitions,
    () => measure(loads, 1, () => pool.query(`select * from ${rawEvents} where stream_id = 'C2-1' order by version`)),
    (m) => -percentile(m.latencies, 50)!
  )
  const results: Array<Result> = []
  for (const target of targets) {
    const byVariant = await withFreshStore(target, () =>
      Effect.gen(function* () {
        const out: Record<string, Measurement> = {}
        for (const variant of ["no-snapshot", "snapshot"] as const) {
          const { fill, load } = handlers[variant]
          const id = `load-${variant}`
          yield* fill(id, { _tag: "OpenAccount", owner: "bench" })
          for (let i = 1; i < length; i++) yield* fill(id, { _tag: "Deposit", amount: 1 })
          // a command the account refuses (it is open already) measures the load alone
          out[variant] = yield* measureEffect(loads, 1, () =>
            Effect.ignore(load(id, { _tag: "OpenAccount", owner: "again" }))
          )
          // the handler that filled the stream has its state cached: it reads the last event only
          if (variant === "no-snapshot") {
            out.cached = yield* measureEffect(loads, 1, () =>
              Effect.ignore(fill(id, { _tag: "OpenAccount", owner: "again" }))
            )
          }
        }
        return out
      })
    )
    const p50 = (m: Measurement) => percentile(m.latencies, 50)!
    for (const variant of ["no-snapshot", "snapshot", "cached"] as const) {
      const m = byVariant[variant]!
      results.push(
        result({
          id: "C2",
          store: target.name,
          variant,
          value: p50(m),
          unit: "ms p50",
          measurement: m,
          baseline: p50(raw),
          lowerIsBetter: true,
          notes: "load of a 1,000-event aggregate; baseline: raw select + parse of its rows",
          ...(variant !== "no-snapshot"
            ? { extra: { vs_no_snapshot: Number((p50(m) / p50(byVariant["no-snapshot"]!)).toFixed(3)) } }
            : {})
        })
      )
    }
  }
  return results
}
