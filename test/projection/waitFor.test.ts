/**
 * Read-your-writes (`Projection.waitFor`): after waiting, a read model shows the write, every time; a
 * projection that cannot catch up in time is a typed `ProjectionBehind`; one that reads none of the write
 * is not waited for. On PostgreSQL the projection runs in another process.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as CheckpointStore from "../../src/CheckpointStore.js"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import * as MemoryEventStore from "../../src/MemoryEventStore.js"
import * as Projection from "../../src/Projection.js"
import * as SqlCheckpointStore from "../../src/sql/SqlCheckpointStore.js"
import * as SqlEventStore from "../../src/sql/SqlEventStore.js"
import { balancesProjection, createTables, readModel } from "../support/balances.js"
import { isolatedPrefix, uniqueCategory } from "../support/ids.js"
import { pgWithSchema } from "../support/sql.js"
import { workerProcess } from "../support/workerProcess.js"

const Noted = Schema.TaggedStruct("Noted", { n: Schema.Number })

/** A projection that takes its time over every batch, and the events it handled. */
const slowProjection = (name: string, categories?: ReadonlyArray<string>) => {
  const handled = new Set<string>()
  const projection = Projection.make({
    name,
    events: Noted,
    ...(categories === undefined ? {} : { categories }),
    handleBatch: (batch) =>
      Effect.zipRight(
        Effect.sleep("20 millis"),
        Effect.sync(() => batch.forEach((d) => handled.add(d.envelope.eventId)))
      )
  })
  return { projection, handled }
}

const note = (n: number) => Event.make({ type: "Noted", data: { n } })

const memory = Layer.mergeAll(MemoryEventStore.layer(), CheckpointStore.layerMemory)

describe("Projection.waitFor", () => {
  it.live("after waiting, the projection has handled the write, every time", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const { handled, projection } = slowProjection("notes")
      const runner = yield* Effect.fork(Projection.run(projection, { pollInterval: "10 millis" }))
      for (let i = 0; i < 10; i++) {
        const event = yield* note(i)
        const result = yield* store.append(`Note-${i % 3}`, [event])
        yield* Projection.waitFor([projection], result)
        assert.isTrue(handled.has(event.eventId), `write ${i} not handled yet`)
      }
      yield* Fiber.interrupt(runner)
    }).pipe(Effect.provide(memory))
  )

  it.live("a projection that does not catch up in time is ProjectionBehind, saying how far behind", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const { projection } = slowProjection("stopped")
      // never registered: no checkpoint at all
      const first = yield* store.append("Note-1", [yield* note(1)])
      const unregistered = yield* Effect.flip(Projection.waitFor([projection], first, { timeout: "100 millis" }))
      assert(unregistered._tag === "ProjectionBehind")
      assert.isTrue(Option.isNone(unregistered.positionsBehind))
      // caught up once, then stopped: behind by what came since
      const runner = yield* Effect.fork(Projection.run(projection, { pollInterval: "10 millis" }))
      yield* Projection.waitFor([projection], first)
      yield* Fiber.interrupt(runner)
      yield* store.append("Note-1", [yield* note(2)])
      const later = yield* store.append("Note-1", [yield* note(3)])
      const behind = yield* Effect.flip(Projection.waitFor([projection], later, { timeout: "100 millis" }))
      assert(behind._tag === "ProjectionBehind")
      assert.deepStrictEqual(behind.positionsBehind, Option.some(2))
      assert.include(behind.message, "Note-1@3")
    }).pipe(Effect.provide(memory))
  )

  it.live("a projection that reads none of the write, and a write of no events, are not waited for", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const { projection } = slowProjection("elsewhere", ["Other"])
      const result = yield* store.append("Note-1", [yield* note(1)])
      // not running, yet nothing to wait for
      yield* Projection.waitFor([projection], result, { timeout: "1 millis" })
      yield* Projection.waitFor(
        [slowProjection("idle").projection],
        { ...result, positions: [] },
        { timeout: "1 millis" }
      )
    }).pipe(Effect.provide(memory))
  )
})

const schema = isolatedPrefix(import.meta.url)

describe("Projection.waitFor on PostgreSQL, the projection in another process", () => {
  it.scopedLive(
    "a deposit, then a read of the balance after waiting: it shows the deposit every time",
    () =>
      Effect.gen(function* () {
        const category = yield* uniqueCategory
        const name = `ryw-${category}`
        const tables = `${schema}.ryw_${category.toLowerCase()}`
        yield* createTables(tables)
        const projection = balancesProjection({ name, category, tables, partitions: 4, batchSize: 5 })
        yield* workerProcess({ schema, name, category, tables, partitions: 4 })
        const store = yield* EventStore.EventStore
        let expected = 0
        for (let amount = 1; amount <= 15; amount++) {
          const streamId = `${category}-${amount % 3}`
          const result = yield* store.append(streamId, [yield* Event.make({ type: "Deposited", data: { amount } })])
          // the worker process starts meanwhile: the first waits may be long
          yield* Projection.waitFor([projection], result, { timeout: "60 seconds" })
          if (amount % 3 === 0) expected += amount
          const balances = new Map((yield* readModel(tables)).balances)
          if (amount % 3 === 0) assert.strictEqual(balances.get(`${category}-0`), expected, `deposit ${amount}`)
          assert.isTrue(
            (yield* readModel(tables)).applied.some((a) => a.streamId === streamId && a.version === result.version),
            `deposit ${amount} not applied`
          )
        }
      }).pipe(
        Effect.provide(
          Layer.mergeAll(SqlEventStore.layer({ schema }), SqlCheckpointStore.layer({ schema })).pipe(
            Layer.provideMerge(pgWithSchema(schema))
          )
        )
      ),
    120_000
  )
})
