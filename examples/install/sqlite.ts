// npm install effect-eventsourcing effect @effect/sql @effect/experimental @effect/sql-sqlite-node better-sqlite3
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { SqlEventStore } from "effect-eventsourcing/sql"
import { Sqlite } from "effect-eventsourcing/sqlite"
import { openAndDeposit } from "./account.js"

const Store = SqlEventStore.layer().pipe(Layer.provide(Sqlite.layer({ filename: "events.db" })))

export const main = openAndDeposit(crypto.randomUUID()).pipe(Effect.provide(Store))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(main).then((result) => console.log(`Account at version ${result.version}`))
}
