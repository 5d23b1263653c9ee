// One projection partitioned across processes: this program starts 2 worker processes (this same file,
// run with `worker`) on one PostgreSQL database; each claims a share of the 4 partitions by lease. The
// parent appends events and waits until each is handled exactly once, then stops the workers (SIGTERM).
// Run it from the repository root (the workers load `tsx`); `PG_URL` names the server.
import { type ChildProcess, spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { fileURLToPath } from "node:url"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { Aggregate, CheckpointStore, Projection } from "effect-eventsourcing"
import { Postgres } from "effect-eventsourcing/pg"
import { SqlCheckpointStore, SqlEventStore } from "effect-eventsourcing/sql"
import { Account } from "../bank/Account.js"

const pgUrl = process.env.PG_URL ?? "postgres://root@127.0.0.1:5432/test"

/** The projection, as each worker runs it: a row per event handled, naming the worker. */
const Handled = (schema: string, worker: string) =>
  Projection.make({
    name: "handled",
    events: Account.codec,
    partitions: 4,
    handle: (_event, envelope) =>
      Effect.flatMap(
        SqlClient.SqlClient,
        // no unique key on purpose: an event handled twice would show as two rows
        (sql) => sql`insert into ${sql(`${schema}.handled`)} ${sql.insert({ event_id: envelope.eventId, worker })}`
      )
  })

// every process: the stores in the run's own schema, woken across processes by LISTEN/NOTIFY
const stores = (schema: string) =>
  Layer.mergeAll(SqlEventStore.layer({ schema }), SqlCheckpointStore.layer({ schema })).pipe(
    Layer.provideMerge(Postgres.layerWakeup({ channel: schema })),
    Layer.provideMerge(Postgres.layer({ url: pgUrl, maxConnections: 4 }))
  )

// ---------------------------------------------------------------------------------------------------
// a worker process: runs the projection until SIGTERM (or until its parent is gone)
// ---------------------------------------------------------------------------------------------------

const runWorker = (schema: string, workerId: string) => {
  process.on("disconnect", () => process.kill(process.pid, "SIGTERM"))
  Projection.layer(Handled(schema, workerId), { workerId }).pipe(
    Layer.provide(stores(schema)),
    Layer.launch,
    NodeRuntime.runMain
  )
}

// ---------------------------------------------------------------------------------------------------
// the parent
// ---------------------------------------------------------------------------------------------------

/** Starts a worker process; stopping it (SIGTERM, then SIGKILL after 15 s) is part of the scope. */
const startWorker = (schema: string, workerId: string) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "worker", schema, workerId], {
        stdio: ["ignore", "inherit", "inherit", "ipc"]
      })
    ),
    (child) =>
      Effect.sync(() => child.kill("SIGTERM")).pipe(
        Effect.zipRight(Effect.timeoutOption(exited(child), "15 seconds")),
        Effect.flatMap(
          Option.match({ onNone: () => Effect.sync(() => child.kill("SIGKILL")), onSome: () => Effect.void })
        )
      )
  )

const exited = (child: ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
  })

/** Fails if a worker process is gone (so that waiting for it ends at once, saying why). */
const alive = (workers: ReadonlyArray<ChildProcess>) =>
  Effect.forEach(workers, (child, i) =>
    child.exitCode === null && child.signalCode === null
      ? Effect.void
      : Effect.fail(new Error(`worker-${i + 1} exited (${child.exitCode ?? child.signalCode})`))
  )

/** Polls `check` until `done` while the workers live, and returns what it saw then (bounded: 2 minutes). */
const waitFor = <A, E, R>(
  what: string,
  workers: ReadonlyArray<ChildProcess>,
  check: Effect.Effect<A, E, R>,
  done: (a: A) => boolean
) => {
  const poll: Effect.Effect<A, E | Error, R> = Effect.flatMap(Effect.zipRight(alive(workers), check), (a) =>
    done(a) ? Effect.succeed(a) : Effect.zipRight(Effect.sleep("50 millis"), poll)
  )
  return Effect.timeoutFail(poll, {
    duration: "2 minutes",
    onTimeout: () => new Error(`gave up waiting until ${what}`)
  })
}

const parent = (schema: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`create table ${sql(`${schema}.handled`)} (event_id text not null, worker text not null)`
    const workers = [yield* startWorker(schema, "worker-1"), yield* startWorker(schema, "worker-2")]

    // the workers find each other through the checkpoint store (heartbeats) and share the partitions
    const owners = Effect.flatMap(CheckpointStore.CheckpointStore, (store) =>
      store.partitions({ name: "handled", version: 1 })
    ).pipe(Effect.map((partitions) => partitions.map((p) => Option.getOrElse(p.owner, () => "nobody"))))
    const shares = yield* waitFor("the workers share the partitions", workers, owners, (o) =>
      ["worker-1", "worker-2"].every((w) => o.filter((owner) => owner === w).length === 2)
    )

    // 12 accounts, 5 events each
    const handle = Aggregate.handler(Account)
    for (let id = 1; id <= 12; id++) {
      yield* handle(String(id), { _tag: "OpenAccount", owner: `owner ${id}` })
      for (let n = 1; n <= 4; n++) yield* handle(String(id), { _tag: "Deposit", amount: n })
    }
    const counts = sql<{ readonly rows: string; readonly events: string }>`
      select count(*) as rows, count(distinct event_id) as events from ${sql(`${schema}.handled`)}`.pipe(
      Effect.map(([row]) => ({ rows: Number(row!.rows), events: Number(row!.events) }))
    )
    const handled = yield* waitFor("every event is handled", workers, counts, (c) => c.rows >= 60)
    const byWorker = yield* sql<{ readonly worker: string; readonly rows: string }>`
      select worker, count(*) as rows from ${sql(`${schema}.handled`)} group by worker order by worker`
    return {
      schema,
      workerPids: workers.map((child) => child.pid),
      appended: 60,
      handled,
      partitionOwners: shares,
      byWorker: Object.fromEntries(byWorker.map((w) => [w.worker, Number(w.rows)]))
    }
  })

/** Drops the run's schema, through a connection of its own. */
const dropSchema = (schema: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`drop schema if exists ${sql(schema)} cascade`).pipe(
    Effect.provide(Postgres.layer({ url: pgUrl, maxConnections: 1 })),
    Effect.orDie
  )

export const main = Effect.gen(function* () {
  const schema = `features_${randomUUID().replaceAll("-", "").slice(0, 12)}`
  // finalizers run in reverse: the workers are stopped first, then the schema dropped
  yield* Effect.addFinalizer(() => dropSchema(schema))
  return yield* parent(schema).pipe(Effect.provide(stores(schema)))
}).pipe(Effect.scoped)

if (import.meta.url === `file://${process.argv[1]}`) {
  const [mode, schema, workerId] = process.argv.slice(2)
  if (mode === "worker") runWorker(schema!, workerId!)
  // runMain: on Ctrl-C the scope closes too (the workers stopped, the schema dropped)
  else NodeRuntime.runMain(Effect.tap(main, (result) => Effect.sync(() => console.log(result))))
}
