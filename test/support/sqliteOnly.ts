/**
 * A SQLite-only program, as a user who installed no other driver writes it: the core, the SQL services and
 * the SQLite entry point. Run by `test/entryPoints.test.ts` with the other backends' packages unresolvable;
 * `ENTRY=pg` imports the PostgreSQL entry point too (which must then fail).
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Stream from "effect/Stream"
import { Event, EventStore } from "../../src/index.js"
import { SqlEventStore } from "../../src/sql/index.js"
import { Sqlite } from "../../src/sqlite/index.js"

const program = Effect.gen(function* () {
  if (process.env.ENTRY === "pg") yield* Effect.promise(() => import("../../src/pg/index.js"))
  const store = yield* EventStore.EventStore
  yield* store.append("Account-1", [yield* Event.make({ type: "Opened", data: {} })])
  return yield* Stream.runCount(store.readAll())
})

// logs (the store's migrations log what they apply) to stderr: stdout is the program's answer
const logsToStderr = Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger))

Effect.runPromise(
  program.pipe(
    Effect.provide(SqlEventStore.layer().pipe(Layer.provide(Sqlite.layer({ filename: ":memory:" })))),
    Effect.provide(logsToStderr)
  )
).then(
  (count) => process.stdout.write(`read ${count}\n`),
  (error) => {
    process.stderr.write(`${String(error)}\n`)
    process.exit(1)
  }
)
