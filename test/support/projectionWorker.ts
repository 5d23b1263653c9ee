/**
 * A projection worker process for the takeover tests: runs the balances projection on PostgreSQL until
 * it is killed (or stopped with SIGTERM). Arguments: schema, projection name, category, read-model tables,
 * partitions, and optionally the worker id (default `worker-process`) and lease TTL (default `1 second`).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Projection from "../../src/Projection.js"
import * as Postgres from "../../src/pg/Postgres.js"
import * as SqlCheckpointStore from "../../src/sql/SqlCheckpointStore.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import { balancesProjection } from "./balances.js"
import { pgUrl } from "./config.js"

const [schema, name, category, tables, partitions, workerId, leaseTtl] = process.argv.slice(2)

const projection = balancesProjection({
  name: name!,
  category: category!,
  tables: tables!,
  partitions: Number(partitions),
  batchSize: 5,
  // slow batches, so that the kill lands inside one
  beforeEach: () => Effect.sleep("5 millis")
})

const stores = Layer.mergeAll(SqlEventStore.layer({ schema: schema! }), SqlCheckpointStore.layer({ schema: schema! }))

Projection.layer(projection, {
  workerId: workerId ?? "worker-process",
  leaseTtl: (leaseTtl ?? "1 second") as Duration.DurationInput,
  pollInterval: "50 millis"
}).pipe(
  Layer.provide(stores),
  Layer.provide(Postgres.layer({ url: pgUrl, maxConnections: 4 })),
  Layer.launch,
  NodeRuntime.runMain
)
