import * as Layer from "effect/Layer"
import { Mysql } from "effect-eventsourcing/mysql"
import { Postgres } from "effect-eventsourcing/pg"
import { Sqlite } from "effect-eventsourcing/sqlite"
import { SqlEventStore } from "effect-eventsourcing/sql"

// embedded: an SQLite file (or ":memory:")
export const Embedded = SqlEventStore.layer().pipe(Layer.provide(Sqlite.layer({ filename: "events.db" })))

// production: PostgreSQL; `schema` and `tablePrefix` let several stores share a database
export const Production = SqlEventStore.layer({ schema: "bank" }).pipe(
  Layer.provide(Postgres.layer({ url: "postgres://app@db:5432/bank" }))
)

// MySQL/MariaDB: stores in one database are told apart by `tablePrefix`
export const OnMariaDb = SqlEventStore.layer({ tablePrefix: "bank_" }).pipe(
  Layer.provide(Mysql.layer({ url: "mysql://app@db:3306/bank" }))
)
