/**
 * A projection worker process for P1's multi-process variants: runs the balances projection (16
 * partitions) on PostgreSQL until it is stopped. Arguments: PostgreSQL URL, schema, read-model table,
 * projection name, worker id, lease TTL. It prints `handled N` for every batch it handles, before the batch
 * commits, so that the parent counts the events handled again after a batch was rolled back.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import type * as Duration from "effect/Duration"
import * as Layer from "effect/Layer"
import * as Projection from "../src/Projection.js"
import * as Postgres from "../src/pg/Postgres.js"
import * as SqlCheckpointStore from "../src/sql/SqlCheckpointStore.js"
import * as SqlEventStore from "../src/sql/SqlEventStore.js"
import { balances, processPartitions } from "./workloads/projection.js"

const [url, schema, table, name, workerId, leaseTtl] = process.argv.slice(2)

const stores = Layer.mergeAll(
  SqlEventStore.layer({ schema: schema!, migrate: false }),
  SqlCheckpointStore.layer({ schema: schema!, migrate: false })
)

Projection.layer(
  {
    ...balances(table!, processPartitions, (events) => process.stdout.write(`handled ${events.length}\n`)),
    name: name!
  },
  { workerId: workerId!, leaseTtl: leaseTtl! as Duration.DurationInput, pollInterval: "100 millis" }
).pipe(
  Layer.provide(stores),
  Layer.provide(Postgres.layerWakeup({ channel: schema! })),
  Layer.provide(Postgres.layer({ url: url!, maxConnections: 4 })),
  Layer.launch,
  NodeRuntime.runMain
)
