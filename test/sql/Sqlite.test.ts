import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { sqliteFile } from "../support/sql.js"

/**
 * The SQLite client hands its one connection out first come, first served and lets the event loop turn
 * while writers keep it busy: a reader that sleeps between reads (as a projection runner polls) is served
 * during a stream of writes, not after it. With `SqliteClient` alone the same reader waits for the writers
 * to stop (its timer never fires while the synchronous driver runs from one microtask to the next).
 */
describe("Sqlite.layer", () => {
  it.live("a reader that sleeps between reads is served while eight writers keep writing", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`create table fair_rows (id integer primary key autoincrement, writer integer not null)`
      const wanted = 20
      const cap = 5_000
      let written = 0
      const seen: Array<number> = []
      const enough = yield* Deferred.make<void>()
      const reader = yield* Effect.fork(
        Effect.gen(function* () {
          while (seen.length < wanted) {
            yield* Effect.sleep("1 millis")
            const [row] = yield* sql<{ readonly n: number }>`select count(*) as n from fair_rows`
            seen.push(row!.n)
          }
          yield* Deferred.succeed(enough, undefined)
        })
      )
      const writer = (id: number) =>
        Effect.gen(function* () {
          while (written < cap && !(yield* Deferred.isDone(enough))) {
            yield* sql.withTransaction(sql`insert into fair_rows (writer) values (${id})`)
            written++
          }
        })
      yield* Effect.all(
        Array.from({ length: 8 }, (_, id) => writer(id)),
        { concurrency: "unbounded" }
      )
      yield* Fiber.join(reader)
      // every read but the last happened while the writers were still going, well before their cap
      assert.strictEqual(seen.length, wanted)
      assert.isBelow(seen[wanted - 2]!, cap)
      assert.isBelow(written, cap)
    }).pipe(Effect.provide(sqliteFile))
  )
})
