// A pool of workers in one process: one projection with 6 partitions, run by 3 runners with their own
// worker ids. They share the partitions through the checkpoint store's leases (each takes a fair share,
// never the same one), and every event is handled exactly once: its row commits with the checkpoint.
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Aggregate, Event, Projection, Wakeup } from "effect-eventsourcing"
import { SqlCheckpointStore, SqlEventStore } from "effect-eventsourcing/sql"
import { Sqlite } from "effect-eventsourcing/sqlite"
import { Account } from "../bank/Account.js"
import { waitFor } from "./waitFor.js"

const partitions = 6

// a stream's events all go to one partition (a hash of its stream id), so they are handled in order
export const Handled = Projection.make({
  name: "handled",
  events: Account.codec,
  partitions,
  handle: (_event, envelope) =>
    Effect.flatMap(
      SqlClient.SqlClient,
      // no unique key on purpose: an event handled twice would show as two rows
      (sql) =>
        sql`insert into handled ${sql.insert({
          event_id: envelope.eventId,
          stream_id: envelope.streamId,
          partition: Event.partitionOf(envelope.streamId, partitions)
        })}`
    )
})

const handle = Aggregate.handler(Account)

const statuses = Effect.flatMap(Projection.Registry, (registry) => registry.statuses)

const counts = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<{ readonly rows: number; readonly events: number }>`
    select count(*) as rows, count(distinct event_id) as events from handled`
).pipe(Effect.map(([row]) => ({ rows: Number(row!.rows), events: Number(row!.events) })))

export const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`create table handled (event_id text not null, stream_id text not null, partition integer not null)`

  // the pool: three runners of the same projection, each a fiber with its own worker id
  const workers = ["worker-1", "worker-2", "worker-3"]
  for (const workerId of workers) {
    // a short lease: the runners rebalance (and take a stopped worker's share) within seconds
    yield* Effect.forkScoped(Projection.run(Handled, { workerId, leaseTtl: "5 seconds" }))
  }
  // each runner heartbeats, counts the workers present and keeps at most ceil(6 / 3) = 2 partitions
  const pool = yield* waitFor("every worker holds a share of the partitions", statuses, (all) => {
    const owned = all.flatMap((s) => s.owned.map((p) => p.partition))
    return all.length === 3 && all.every((s) => s.owned.length === 2) && new Set(owned).size === partitions
  })
  const shares = Object.fromEntries(pool.map((s) => [s.worker, s.owned.map((p) => p.partition)] as const))

  // 20 accounts, 5 events each, appended while the pool runs
  for (let id = 1; id <= 20; id++) {
    yield* handle(String(id), { _tag: "OpenAccount", owner: `owner ${id}` })
    for (let n = 1; n <= 4; n++) yield* handle(String(id), { _tag: "Deposit", amount: n })
  }
  const handled = yield* waitFor("every event is handled", counts, (c) => c.rows >= 100)
  const perPartition = yield* sql<{ readonly partition: number; readonly rows: number }>`
    select partition, count(*) as rows from handled group by partition order by partition`
  return {
    shares,
    handled,
    perPartition: perPartition.map((p) => Number(p.rows))
  }
})

// one SQLite database for the events, the checkpoints (with their leases) and the read model
export const AppLive = Layer.mergeAll(SqlEventStore.layer(), SqlCheckpointStore.layer(), Projection.layerRegistry).pipe(
  Layer.provideMerge(Wakeup.layer),
  Layer.provideMerge(Sqlite.layer({ filename: ":memory:" }))
)

export const main = program.pipe(Effect.scoped, Effect.provide(AppLive))

if (import.meta.url === `file://${process.argv[1]}`) Effect.runPromise(main).then(console.log)
