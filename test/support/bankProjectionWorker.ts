/**
 * The bank's projections (`examples/bank/readModels.ts`: balances and history) in a process of their own,
 * until killed: what a deployment runs apart from its web processes. Argument: a PostgreSQL URL
 * (`postgres://...`) or a SQLite file.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Layer from "effect/Layer"
import * as ReadModels from "../../examples/bank/readModels.js"
import * as Postgres from "../../src/pg/Postgres.js"
import * as Projection from "../../src/Projection.js"
import * as SqlCheckpointStore from "../../src/sql/SqlCheckpointStore.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import * as Sqlite from "../../src/sqlite/Sqlite.js"
import * as Wakeup from "../../src/Wakeup.js"

const [target] = process.argv.slice(2)
const isPg = target!.startsWith("postgres")

const database = isPg
  ? Layer.provideMerge(Postgres.layerWakeup(), Postgres.layer({ url: target!, maxConnections: 4 }))
  : Layer.provideMerge(Wakeup.layer, Sqlite.layer({ filename: target! }))

Layer.mergeAll(
  Projection.layer(ReadModels.Balances, { pollInterval: "20 millis" }),
  Projection.layer(ReadModels.History, { pollInterval: "20 millis" })
).pipe(
  Layer.provide(Layer.mergeAll(SqlEventStore.layer(), SqlCheckpointStore.layer())),
  Layer.provide(database),
  Layer.launch,
  NodeRuntime.runMain
)
