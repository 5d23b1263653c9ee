// PostgreSQL with a streaming replica: the application writes to whichever server accepts writes (the
// primary, or the standby once promoted), and a projection reads the log from the standby, so that its
// rebuilds do not load the primary, while its checkpoints and read model stay on the primary.
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { Projection } from "effect-eventsourcing"
import { Postgres } from "effect-eventsourcing/pg"
import { SqlCheckpointStore, SqlEventStore } from "effect-eventsourcing/sql"

// each new connection goes to the first host that accepts writes: after a failover, the promoted standby
const Primary = Postgres.layer({ url: "postgres://app@db1:5432,db2:5432/bank?target_session_attrs=read-write" })

// the hot standby, read-only
const Standby = Postgres.layer({ url: "postgres://app@db2:5432/bank" })

// appends (and every other SQL service) on the primary
export const Writes = SqlEventStore.layer().pipe(Layer.provide(Primary))

const Deposits = Projection.make({
  name: "deposits",
  events: Schema.TaggedStruct("Deposited", { account: Schema.String, amount: Schema.Number }),
  handle: (event) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.asVoid(sql`update totals set amount = amount + ${event.amount} where account = ${event.account}`)
    )
})

// the runner reads the standby; its checkpoints and the handler's writes go to the primary, in one transaction
export const DepositsOnStandby = Projection.layer(Deposits).pipe(
  Layer.provide(SqlEventStore.layerStandby().pipe(Layer.provide(Standby))),
  Layer.provide(SqlCheckpointStore.layer()),
  Layer.provide(Primary)
)
