// npm install effect-eventsourcing effect @effect/sql @effect/experimental @effect/sql-pg pg @types/pg
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Postgres } from "effect-eventsourcing/pg"
import { SqlEventStore } from "effect-eventsourcing/sql"
import { openAndDeposit } from "./account.js"

const url = process.env.PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
// the store's tables go to a schema of their own, created if missing
const Store = SqlEventStore.layer({ schema: "quickstart" }).pipe(Layer.provide(Postgres.layer({ url })))

export const main = openAndDeposit(crypto.randomUUID()).pipe(Effect.provide(Store))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(main).then((result) => console.log(`Account at version ${result.version}`))
}
