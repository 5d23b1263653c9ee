/**
 * The SagaStore conformance suite for operators' listings: `instances` pages through a saga's instances by
 * id, filtered by status, without the placeholder rows of instances whose first input never committed.
 * `suite(name, layer)` registers it against one implementation (the saga behaviour itself is run on every
 * backend by `Saga.test.ts`).
 */
import { assert, describe, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as SagaStore from "../../src/SagaStore.js"
import { uniqueCategory } from "../support/ids.js"

const store = SagaStore.SagaStore

const noTimeouts: SagaStore.TimeoutChanges = { schedule: [], cancel: [] }

/** Saves instance `id` of `saga` once (version 1) with `status`, and returns what it saved. */
const saved = (saga: string, id: string, status: SagaStore.Status) =>
  Effect.gen(function* () {
    const s = yield* store
    const error = status === "running" || status === "completed" ? Option.none() : Option.some(`${id} went wrong ✗`)
    yield* s.save(saga, id, 0, { status, state: { id }, compensations: [], error }, noTimeouts)
    const loaded = Option.getOrThrow(yield* s.load(saga, id))
    return { id, version: 1, status, updatedAt: loaded.updatedAt, error } satisfies SagaStore.InstanceSummary
  })

const ids = (page: ReadonlyArray<SagaStore.InstanceSummary>) => page.map((i) => i.id)

/** Registers the suite against `storeLayer` (one store for the whole suite). */
export const suite = <E>(name: string, storeLayer: Layer.Layer<SagaStore.SagaStore, E>): void => {
  describe(name, () => {
    layer(storeLayer, { excludeTestServices: true, timeout: "60 seconds" })((it) => {
      it.effect("instances: lists a saga's instances by id with their version, status, time and error", () =>
        Effect.gen(function* () {
          const s = yield* store
          const saga = `saga_${yield* uniqueCategory}`
          assert.deepStrictEqual(yield* s.instances(saga), [])
          const c = yield* saved(saga, "i-03", "failed")
          const a = yield* saved(saga, "i-01", "running")
          const b = yield* saved(saga, "i-02", "compensated")
          yield* saved(`${saga}_other`, "i-00", "running")
          // a later save shows its version
          yield* s.save(
            saga,
            "i-01",
            1,
            { status: "completed", state: {}, compensations: [], error: Option.none() },
            noTimeouts
          )
          const updated = Option.getOrThrow(yield* s.load(saga, "i-01"))
          assert.deepStrictEqual(yield* s.instances(saga), [
            { ...a, version: 2, status: "completed", updatedAt: updated.updatedAt },
            b,
            c
          ])
        })
      )

      it.effect("instances: pages by `limit` and `after` (the last id of the previous page)", () =>
        Effect.gen(function* () {
          const s = yield* store
          const saga = `saga_${yield* uniqueCategory}`
          const all = ["i-05", "i-01", "i-04", "i-02", "i-03"]
          for (const id of all) yield* saved(saga, id, "running")
          const first = yield* s.instances(saga, { limit: 2 })
          assert.deepStrictEqual(ids(first), ["i-01", "i-02"])
          const second = yield* s.instances(saga, { limit: 2, after: "i-02" })
          assert.deepStrictEqual(ids(second), ["i-03", "i-04"])
          assert.deepStrictEqual(ids(yield* s.instances(saga, { limit: 2, after: "i-04" })), ["i-05"])
          assert.deepStrictEqual(yield* s.instances(saga, { limit: 2, after: "i-05" }), [])
          // a cursor need not be a stored id
          assert.deepStrictEqual(ids(yield* s.instances(saga, { after: "i-035" })), ["i-04", "i-05"])
          assert.strictEqual((yield* s.instances(saga)).length, 5, "the default limit holds a few")
        })
      )

      it.effect("instances: filtered by status, with paging", () =>
        Effect.gen(function* () {
          const s = yield* store
          const saga = `saga_${yield* uniqueCategory}`
          yield* saved(saga, "i-01", "failed")
          yield* saved(saga, "i-02", "running")
          yield* saved(saga, "i-03", "failed")
          yield* saved(saga, "i-04", "completed")
          yield* saved(saga, "i-05", "failed")
          assert.deepStrictEqual(ids(yield* s.instances(saga, { status: "failed" })), ["i-01", "i-03", "i-05"])
          assert.deepStrictEqual(ids(yield* s.instances(saga, { status: "failed", limit: 1, after: "i-01" })), ["i-03"])
          assert.deepStrictEqual(ids(yield* s.instances(saga, { status: "running" })), ["i-02"])
          assert.deepStrictEqual(yield* s.instances(saga, { status: "compensated" }), [])
        })
      )

      it.scoped("instances: an instance whose first input did not commit is not listed", () =>
        Effect.gen(function* () {
          const s = yield* store
          const saga = `saga_${yield* uniqueCategory}`
          yield* saved(saga, "i-01", "running")
          // the input locked its new instance (a placeholder row on SQL), then failed
          yield* Effect.flip(
            s.transaction(Effect.scoped(Effect.zipRight(s.lock(saga, "i-02"), Effect.fail("the input failed"))))
          )
          yield* Effect.scoped(s.transaction(s.lock(saga, "i-03")))
          assert.deepStrictEqual(ids(yield* s.instances(saga)), ["i-01"])
        })
      )

      it.effect("instances: a limit that is not a positive integer is a permanent SagaStoreError", () =>
        Effect.gen(function* () {
          const s = yield* store
          for (const limit of [0, -1, 1.5]) {
            const error = yield* Effect.flip(s.instances("any", { limit }))
            assert.strictEqual(error._tag, "SagaStoreError", `limit ${limit}`)
            assert.isFalse(error.transient, `limit ${limit}`)
          }
        })
      )
    })
  })
}
