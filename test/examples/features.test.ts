/**
 * The feature examples (`examples/features/`), each run as a user would and its result checked:
 * exactly-once counts, isolation between tenants, spans and their links, typed refusals over NATS.
 * Waits inside the examples are bounded and fail with a message; nothing here depends on timing.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Postgres from "../../src/pg/Postgres.js"
import * as CryptoShredding from "../../examples/features/cryptoShredding.js"
import * as NatsBus from "../../examples/features/natsBus.js"
import * as OpenTelemetry from "../../examples/features/openTelemetry.js"
import * as PartitionedProcesses from "../../examples/features/partitionedProcesses.js"
import * as SeveralProjections from "../../examples/features/severalProjections.js"
import * as SingleProjection from "../../examples/features/singleProjection.js"
import * as Snapshots from "../../examples/features/snapshots.js"
import * as Tenancy from "../../examples/features/tenancy.js"
import * as WorkerPool from "../../examples/features/workerPool.js"
import { pgUrl } from "../support/config.js"

const isRunning = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe("feature examples", () => {
  it.live("singleProjection: catches up, tails live, resumes from its checkpoint", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* SingleProjection.main, {
        caughtUp: 60,
        live: 7,
        afterRestart: 0,
        // 5 events of history + 1 live; after the restart only the one event appended meanwhile
        handledByFirstRun: 6,
        handledBySecondRun: 1
      })
    })
  )

  it.live("severalProjections: two runners with their own status and checkpoint; one rebuilt alone", () =>
    Effect.gen(function* () {
      const result = yield* SeveralProjections.main
      assert.deepStrictEqual(result.runners, [
        { name: "balances", state: "live" },
        { name: "history", state: "live" }
      ])
      assert.deepStrictEqual(result.balances, [60])
      assert.deepStrictEqual(result.historyRows, ["deposit 100", "withdrawal 40"])
      assert.deepStrictEqual(result.checkpoints, { balances: 3n, history: 3n, head: 3n })
    })
  )

  it.live("workerPool: 3 workers share 6 partitions, each event handled exactly once", () =>
    Effect.gen(function* () {
      const result = yield* WorkerPool.main
      assert.deepStrictEqual(Object.keys(result.shares).sort(), ["worker-1", "worker-2", "worker-3"])
      for (const share of Object.values(result.shares)) assert.strictEqual(share.length, 2)
      const owned = Object.values(result.shares).flat()
      assert.deepStrictEqual([...owned].sort(), [0, 1, 2, 3, 4, 5], "every partition owned by exactly one worker")
      assert.deepStrictEqual(result.handled, { rows: 100, events: 100 })
      assert.strictEqual(
        result.perPartition.reduce((a, b) => a + b, 0),
        100
      )
    })
  )

  it.live(
    "partitionedProcesses: 2 worker processes share the partitions; exactly once; processes and schema cleaned up",
    () =>
      Effect.gen(function* () {
        const result = yield* PartitionedProcesses.main
        assert.deepStrictEqual(result.handled, { rows: result.appended, events: result.appended })
        assert.deepStrictEqual([...result.partitionOwners].sort(), ["worker-1", "worker-1", "worker-2", "worker-2"])
        assert.strictEqual(
          Object.values(result.byWorker).reduce((a, b) => a + b, 0),
          result.appended
        )
        for (const pid of result.workerPids) assert.isFalse(isRunning(pid!), `worker process ${pid} is still running`)
        const left = yield* Effect.flatMap(
          SqlClient.SqlClient,
          (sql) => sql`select nspname from pg_namespace where nspname = ${result.schema}`
        ).pipe(Effect.provide(Postgres.layer({ url: pgUrl, maxConnections: 1 })))
        assert.deepStrictEqual(left, [], `schema ${result.schema} was not dropped`)
      }),
    180_000
  )

  it.live("snapshots: loading starts from the latest snapshot and decides on the same state", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* Snapshots.main, {
        snapshots: 2,
        fromSnapshot: { eventsRead: 2, balance: 110 },
        fromEvents: { eventsRead: 12, balance: 110 },
        fromCache: { eventsRead: 1, balance: 110 }
      })
    })
  )

  it.live("tenancy: two tenants, one stream id, isolated reads, with either strategy", () =>
    Effect.gen(function* () {
      const result = yield* Tenancy.main
      for (const strategy of [result.shared, result.perTenant]) {
        assert.deepStrictEqual(strategy.acme, {
          events: ['AccountOpened {"owner":"Ada"}', 'MoneyDeposited {"amount":100,"balance":100}'],
          tenantInMetadata: "acme",
          eventsInLog: 2
        })
        assert.deepStrictEqual(strategy.globex, {
          events: ['AccountOpened {"owner":"Grace"}'],
          tenantInMetadata: "globex",
          eventsInLog: 1
        })
        assert.strictEqual(strategy.withoutTenant, "EventStoreError")
      }
    })
  )

  it.live("openTelemetry: the command's spans share a trace; the projection batch links back to it", () =>
    Effect.gen(function* () {
      const result = yield* OpenTelemetry.main
      assert.sameMembers(
        [...result.spans],
        ["CommandBus.dispatch", "Aggregate.handle", "EventStore.append", "Projection.batch"]
      )
      assert.isTrue(result.appendInCommandTrace)
      assert.isTrue(result.batchInOwnTrace)
      assert.deepStrictEqual(result.batchLinks, [{ toCommandTrace: true, span: "Aggregate.handle" }])
    })
  )

  it.live("natsBus: results and a typed refusal come back over NATS", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* NatsBus.main, {
        versions: [1, 2],
        refusal: "InsufficientFunds",
        refusedWith: { balance: 50, requested: 80 }
      })
    })
  )

  it.live("cryptoShredding: an erased customer reads as erased everywhere, others in clear, no clear value left", () =>
    Effect.gen(function* () {
      const result = yield* CryptoShredding.main
      assert.deepStrictEqual(result.before, [
        { id: "ada", name: "Ada Lovelace", email: "ada@example.com" },
        { id: "alan", name: "Alan Turing", email: "alan@example.com" }
      ])
      assert.deepStrictEqual(result.after, [
        { id: "ada", name: "(erased)", email: "(erased)" },
        { id: "alan", name: "Alan Turing", email: "alan@example.com" }
      ])
      assert.strictEqual(result.version, 2)
      assert.isTrue(result.sealedInEvents)
      assert.deepStrictEqual(result.clearValuesLeft, [])
      assert.isTrue(result.otherCustomerReadable)
    })
  )
})
