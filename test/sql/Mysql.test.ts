/**
 * What is particular to MySQL/MariaDB: InnoDB ends a whole transaction on a deadlock, so an append inside
 * a caller's transaction that deadlocks fails with a typed error (never a defect) and commits nothing;
 * writes that would lock gaps (new snapshots of neighbouring streams) do not deadlock each other. (The
 * outbox relay on MariaDB is checked in `Outbox.test.ts`, with every dialect.)
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as Snapshot from "../../src/Snapshot.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import * as SqlSnapshotStore from "../../src/sql/SqlSnapshotStore.js"
import { isolatedPrefix, uniqueCategory } from "../support/ids.js"
import { mysqlWithPrefix } from "../support/sql.js"

const prefix = `${isolatedPrefix(import.meta.url)}_`
const stores = Layer.mergeAll(
  SqlEventStore.layer({ tablePrefix: prefix }),
  SqlSnapshotStore.layer({ tablePrefix: prefix })
).pipe(Layer.provideMerge(mysqlWithPrefix(prefix)))

describe("SQL stores on MariaDB", () => {
  it.live("an append deadlocked inside the caller's transaction fails typed; the transaction commits nothing", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const sql = yield* SqlClient.SqlClient
      const category = yield* uniqueCategory
      const tick = Event.make({ type: "Tick", data: {} })
      // two transactions taking two streams in opposite orders
      const crossing = (first: string, second: string) =>
        Effect.gen(function* () {
          yield* store.append(`${category}-${first}`, [yield* tick])
          yield* Effect.sleep("200 millis")
          yield* store.append(`${category}-${second}`, [yield* tick])
        }).pipe(sql.withTransaction, Effect.exit)
      const [one, two] = yield* Effect.all([crossing("a", "b"), crossing("b", "a")], { concurrency: 2 })
      const failures = [one, two].filter(Exit.isFailure)
      assert.strictEqual(failures.length, 1, "exactly one transaction is chosen as the deadlock victim")
      const failure = failures[0]!
      assert.isTrue(Exit.isFailure(failure) && failure.cause._tag === "Fail", "a typed failure, not a defect")
      if (Exit.isFailure(failure) && failure.cause._tag === "Fail") {
        assert.strictEqual((failure.cause.error as { _tag: string })._tag, "EventStoreError")
      }
      // the winner's two events and nothing of the loser
      assert.strictEqual(yield* store.streamVersion(`${category}-a`), 1)
      assert.strictEqual(yield* store.streamVersion(`${category}-b`), 1)
    }).pipe(Effect.provide(stores))
  )

  it.live("snapshots of neighbouring streams saved concurrently do not deadlock", () =>
    Effect.gen(function* () {
      const snapshots = yield* Snapshot.SnapshotStore
      const category = yield* uniqueCategory
      const takenAt = yield* DateTime.now
      yield* Effect.forEach(
        Array.from({ length: 40 }, (_, i) => i),
        (i) =>
          snapshots.save({
            streamId: `${category}-${String(i % 10).padStart(2, "0")}`,
            version: 10 + Math.floor(i / 10),
            stateVersion: 1,
            state: { i },
            takenAt
          }),
        { concurrency: "unbounded" }
      )
      const latest = yield* snapshots.load(`${category}-03`)
      assert.strictEqual(latest._tag, "Some")
    }).pipe(Effect.provide(stores))
  )
})
