/**
 * The stores under benchmark. Each repetition gets a fresh, empty store: a new PostgreSQL schema
 * (dropped afterwards), a new SQLite file, a new memory store.
 */
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as EventStore from "../src/EventStore.js"
import * as MemoryEventStore from "../src/MemoryEventStore.js"
import * as Snapshot from "../src/Snapshot.js"
import * as Postgres from "../src/pg/Postgres.js"
import * as Sqlite from "../src/sqlite/Sqlite.js"
import * as SqlEventStore from "../src/sql/SqlEventStore.js"
import * as SqlSnapshotStore from "../src/sql/SqlSnapshotStore.js"

/** A store under benchmark (events and snapshots): `layer()` builds a fresh one. */
export interface Target {
  readonly name: string
  readonly layer: () => Layer.Layer<EventStore.EventStore | Snapshot.SnapshotStore>
}

const postgres = (url: string): Target => ({
  name: "postgres",
  layer: () => {
    const schema = `bench_es_${randomBytes(4).toString("hex")}`
    const dropSchema = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`drop schema if exists ${sql(schema)} cascade`)
    return Layer.merge(SqlEventStore.layer({ schema }), SqlSnapshotStore.layer({ schema })).pipe(
      Layer.provideMerge(Layer.scopedDiscard(Effect.addFinalizer(() => Effect.orDie(dropSchema)))),
      Layer.provide(Postgres.layer({ url, maxConnections: 16 })),
      Layer.orDie
    )
  }
})

const sqlite: Target = {
  name: "sqlite",
  layer: () =>
    Layer.unwrapScoped(
      Effect.map(
        Effect.acquireRelease(
          Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "ees-bench-"))),
          (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
        ),
        (dir) =>
          Layer.merge(SqlEventStore.layer(), SqlSnapshotStore.layer()).pipe(
            Layer.provide(Sqlite.layer({ filename: path.join(dir, "events.db") }))
          )
      )
    ).pipe(Layer.orDie)
}

const memory: Target = { name: "memory", layer: () => Layer.merge(MemoryEventStore.layer(), Snapshot.layerMemory()) }

export const targets = (pgUrl: string): ReadonlyArray<Target> => [postgres(pgUrl), sqlite, memory]

/** Runs `f` on a fresh store of `target`, released afterwards. */
export const withFreshStore = <A>(
  target: Target,
  f: (store: EventStore.EventStore["Type"]) => Effect.Effect<A, unknown, EventStore.EventStore | Snapshot.SnapshotStore>
): Promise<A> =>
  Effect.runPromise(Effect.flatMap(EventStore.EventStore, f).pipe(Effect.provide(target.layer()), Effect.orDie))

/** A fresh store of `target`, open until `close` (for measurements taken in slices, see `interleaved`). */
export const openFreshStore = async (
  target: Target
): Promise<{ readonly store: EventStore.EventStore["Type"]; readonly close: () => Promise<void> }> => {
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(Layer.buildWithScope(target.layer(), scope)).catch(async (error) => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    throw error
  })
  return {
    store: Context.get(context, EventStore.EventStore),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}
