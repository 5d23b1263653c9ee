/**
 * The SnapshotStore conformance suite: keeping the newest snapshots, loading (latest, or below a version),
 * stats per category, pruning, and the command handler's use of snapshots (the latest usable one: a
 * corrupt, unreadable or outdated snapshot is ignored and the next older one tried). `suite(name, layer)`
 * registers it against one implementation, with the event store the handler needs.
 *
 * Checks share one store per run: each uses streams of its own fresh category, and prunes only that
 * category.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Aggregate from "../../src/Aggregate.js"
import * as EventStore from "../../src/EventStore.js"
import * as Snapshot from "../../src/Snapshot.js"
import { uniqueCategory } from "../support/ids.js"

/** Snapshots are what these handlers load from, not their cache of folded states. */
const uncached = { cacheCapacity: 0 }

const Added = Schema.TaggedStruct("Added", { n: Schema.Int })
const Tally = Schema.Struct({ total: Schema.Int, count: Schema.Int })

/** A counter whose snapshots are taken every 10 events, in category `Tally` or the one given. */
export const counter = (snapshotVersion = 1, category = "Tally") =>
  Aggregate.make({
    category,
    events: Added,
    initialState: { total: 0, count: 0 } as typeof Tally.Type,
    evolve: (s, e) => ({ total: s.total + e.n, count: s.count + 1 }),
    decide: (command: { readonly add: number }) => [Added.make({ n: command.add })],
    snapshot: { state: Tally, version: snapshotVersion, strategy: Snapshot.everyNEvents(10) }
  })

const at = (streamId: string, version: number, state: unknown, stateVersion = 1): Snapshot.SnapshotRecord => ({
  streamId,
  version,
  stateVersion,
  state,
  takenAt: DateTime.unsafeMake(0)
})

/** Runs `effect` and returns the warnings it logged. */
const warningsOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const warnings: Array<string> = []
    const capture = Logger.make(({ logLevel, message }) => {
      if (logLevel._tag === "Warning") warnings.push([message].flat().map(String).join(" "))
    })
    yield* effect.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
    return warnings
  })

export interface Options<R> {
  /** Stores an unreadable (not JSON) state for a stream's snapshot at `version`, where the store can hold one. */
  readonly unreadable?: (streamId: string, version: number) => Effect.Effect<void, unknown, R>
}

export const suite = <E, R>(
  name: string,
  storeLayer: Layer.Layer<Snapshot.SnapshotStore | EventStore.EventStore | R, E>,
  options: Options<R> = {}
) =>
  describe(name, () => {
    layer(storeLayer, { timeout: "60 seconds" })((it) => {
      it.effect("keeps the newest snapshots of a stream, reports counts and sizes", () =>
        Effect.gen(function* () {
          const store = yield* Snapshot.SnapshotStore
          const streamId = `${yield* uniqueCategory}-1`
          const before = yield* store.stats
          for (const version of [10, 20, 30, 40]) {
            yield* store.save({
              streamId,
              version,
              stateVersion: 1,
              state: { total: version },
              takenAt: DateTime.unsafeMake(0)
            })
          }
          const latest = Option.getOrThrow(yield* store.load(streamId))
          assert.deepStrictEqual([latest.version, latest.state], [40, { total: 40 }])
          const after = yield* store.stats
          assert.strictEqual(after.count - before.count, 3)
          assert.isAbove(after.bytes, before.bytes)
          assert.isTrue(Option.isNone(yield* store.load(`${streamId}-none`)))
        })
      )

      it.effect("handling loads from the latest snapshot, reads only later events, and saves new ones", () =>
        Effect.gen(function* () {
          const id = yield* uniqueCategory
          const handle = Aggregate.handler(counter(), uncached)
          for (let i = 1; i <= 25; i++) yield* handle(id, { add: i })
          const store = yield* Snapshot.SnapshotStore
          const latest = Option.getOrThrow(yield* store.load(`Tally-${id}`))
          assert.deepStrictEqual([latest.version, latest.state], [20, { total: 210, count: 20 }])
          const result = yield* handle(id, { add: 1 })
          assert.strictEqual(result.version, 26)
        })
      )

      it.effect("a corrupt snapshot or one of another state version is ignored and the state rebuilt", () =>
        Effect.gen(function* () {
          const id = yield* uniqueCategory
          const store = yield* Snapshot.SnapshotStore
          const handle = Aggregate.handler(counter(), uncached)
          for (let i = 1; i <= 5; i++) yield* handle(id, { add: 1 })
          yield* store.save({
            streamId: `Tally-${id}`,
            version: 5,
            stateVersion: 1,
            state: { total: "garbage" },
            takenAt: DateTime.unsafeMake(0)
          })
          const warnings: Array<string> = []
          const capture = Logger.make(({ logLevel, message }) => {
            if (logLevel._tag === "Warning") warnings.push([message].flat().map(String).join(" "))
          })
          yield* handle(id, { add: 1 }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
          // ignored with a warning that names it
          assert.isTrue(
            warnings.some((w) => w.startsWith(`ignoring the snapshot of Tally-${id}@5`)),
            `no warning: ${JSON.stringify(warnings)}`
          )
          for (let i = 2; i <= 5; i++) yield* handle(id, { add: 1 })
          // the strategy saved a fresh, correct snapshot at 10 over the corrupt one
          assert.deepStrictEqual(Option.getOrThrow(yield* store.load(`Tally-${id}`)).state, { total: 10, count: 10 })
          // a new state version ignores snapshots of the old one (this one decodes, but is wrong on purpose)
          yield* store.save({
            streamId: `Tally-${id}`,
            version: 10,
            stateVersion: 1,
            state: { total: 999, count: 10 },
            takenAt: DateTime.unsafeMake(0)
          })
          yield* Aggregate.handler(counter(2), uncached)(id, { add: 1 })
          const latest = Option.getOrThrow(yield* store.load(`Tally-${id}`))
          assert.deepStrictEqual([latest.version, latest.stateVersion, latest.state], [11, 2, { total: 11, count: 11 }])
          const events = yield* Effect.flatMap(EventStore.EventStore, (s) =>
            Stream.runCollect(s.readStream(`Tally-${id}`))
          )
          assert.strictEqual(Chunk.size(events), 11)
        })
      )

      it.effect("load with before: the newest snapshot below that stream version", () =>
        Effect.gen(function* () {
          const store = yield* Snapshot.SnapshotStore
          const streamId = `${yield* uniqueCategory}-1`
          for (const version of [10, 20, 30]) yield* store.save(at(streamId, version, { total: version }))
          const version = (before: number) =>
            Effect.map(
              store.load(streamId, { before }),
              Option.map((s) => s.version)
            )
          assert.deepStrictEqual(yield* version(30), Option.some(20))
          assert.deepStrictEqual(yield* version(21), Option.some(20))
          assert.deepStrictEqual(yield* version(20), Option.some(10))
          assert.deepStrictEqual(yield* version(10), Option.none())
        })
      )

      it.effect("deleteStream deletes every snapshot of that stream only", () =>
        Effect.gen(function* () {
          const store = yield* Snapshot.SnapshotStore
          const category = yield* uniqueCategory
          const [deleted, kept] = [`${category}-1`, `${category}-2`]
          for (const version of [10, 20]) {
            yield* store.save(at(deleted, version, { total: version }))
            yield* store.save(at(kept, version, { total: version }))
          }
          assert.strictEqual(yield* store.deleteStream(deleted), 2)
          assert.strictEqual(yield* store.deleteStream(deleted), 0)
          assert.isTrue(Option.isNone(yield* store.load(deleted)))
          assert.deepStrictEqual(
            Option.map(yield* store.load(kept), (s) => s.version),
            Option.some(20)
          )
        })
      )

      it.effect("stats: snapshots, streams and bytes, in all and per category", () =>
        Effect.gen(function* () {
          const store = yield* Snapshot.SnapshotStore
          const [a, b] = [yield* uniqueCategory, yield* uniqueCategory]
          const before = yield* store.stats
          yield* store.save(at(`${a}-1`, 1, { n: "é" }))
          yield* store.save(at(`${a}-1`, 2, { n: "é" }))
          yield* store.save(at(`${a}-2`, 1, { n: "é" }))
          yield* store.save(at(`${b}-1`, 1, [1, 2, 3]))
          const after = yield* store.stats
          const ofA = after.categories.find((c) => c.category === a)
          // {"n":"é"} is 10 bytes of UTF-8 (é takes two)
          assert.deepStrictEqual(ofA, { category: a, count: 3, streams: 2, bytes: 30 })
          assert.deepStrictEqual(
            after.categories.find((c) => c.category === b),
            { category: b, count: 1, streams: 1, bytes: 7 }
          )
          assert.isAtLeast(after.count - before.count, 4)
          assert.isAtLeast(after.streams - before.streams, 3)
          assert.isAtLeast(after.bytes - before.bytes, 37)
          assert.strictEqual(
            after.count,
            after.categories.reduce((n, c) => n + c.count, 0)
          )
        })
      )

      it.effect("prune keep: all but the newest K of each stream, only in the category given", () =>
        Effect.gen(function* () {
          const store = yield* Snapshot.SnapshotStore
          const [a, b] = [yield* uniqueCategory, yield* uniqueCategory]
          for (const streamId of [`${a}-1`, `${a}-2`, `${b}-1`]) {
            for (const version of [10, 20, 30]) yield* store.save(at(streamId, version, { version }))
          }
          assert.strictEqual(yield* store.prune({ keep: 1, category: a }), 4)
          const versions = (streamId: string) =>
            Effect.gen(function* () {
              const found: Array<number> = []
              let before: number | undefined
              for (;;) {
                const next = yield* store.load(streamId, before === undefined ? undefined : { before })
                if (Option.isNone(next)) return found
                found.push(next.value.version)
                before = next.value.version
              }
            })
          assert.deepStrictEqual(yield* versions(`${a}-1`), [30])
          assert.deepStrictEqual(yield* versions(`${a}-2`), [30])
          assert.deepStrictEqual(yield* versions(`${b}-1`), [30, 20, 10])
          // nothing left to prune, and no condition prunes nothing
          assert.strictEqual(yield* store.prune({ keep: 1, category: a }), 0)
          assert.strictEqual(yield* store.prune({ category: b }), 0)
          assert.deepStrictEqual(yield* versions(`${b}-1`), [30, 20, 10])
        })
      )

      it.effect("prune stateVersionBelow: the snapshots of older state versions", () =>
        Effect.gen(function* () {
          const store = yield* Snapshot.SnapshotStore
          const category = yield* uniqueCategory
          const streamId = `${category}-1`
          yield* store.save(at(streamId, 10, { old: true }, 1))
          yield* store.save(at(streamId, 20, { old: true }, 1))
          yield* store.save(at(streamId, 30, { old: false }, 2))
          assert.strictEqual(yield* store.prune({ stateVersionBelow: 2, category }), 2)
          assert.deepStrictEqual(
            Option.map(yield* store.load(streamId), (s) => s.version),
            Option.some(30)
          )
          assert.deepStrictEqual(yield* store.load(streamId, { before: 30 }), Option.none())
        })
      )

      it.effect("a corrupt latest snapshot: the handler loads the next older usable one", () =>
        Effect.gen(function* () {
          const category = yield* uniqueCategory
          const store = yield* Snapshot.SnapshotStore
          const handle = Aggregate.handler(counter(1, category), uncached)
          const streamId = `${category}-1`
          for (let i = 1; i <= 25; i++) yield* handle("1", { add: 1 })
          // the one at 10 decodes but is wrong on purpose (total 1000 instead of 10): if it is used, it shows
          yield* store.save(at(streamId, 10, { total: 1000, count: 10 }))
          yield* store.save(at(streamId, 20, { total: "garbage" }))
          const warnings = yield* warningsOf(handle("1", { add: 1 }))
          assert.isTrue(
            warnings.some((w) => w.startsWith(`ignoring the snapshot of ${streamId}@20`)),
            `no warning: ${JSON.stringify(warnings)}`
          )
          // the state came from the snapshot at 10 plus the 16 events after it, saved at once (16 since 10)
          const latest = Option.getOrThrow(yield* store.load(streamId))
          assert.deepStrictEqual([latest.version, latest.state], [26, { total: 1016, count: 26 }])
        })
      )

      it.effect("an outdated latest snapshot: the handler loads an older one of the current state version", () =>
        Effect.gen(function* () {
          const category = yield* uniqueCategory
          const store = yield* Snapshot.SnapshotStore
          const handle = Aggregate.handler(counter(2, category), uncached)
          const streamId = `${category}-1`
          for (let i = 1; i <= 15; i++) yield* handle("1", { add: 1 })
          yield* store.save(at(streamId, 10, { total: 1000, count: 10 }, 2))
          yield* store.save(at(streamId, 12, { total: 12, count: 12 }, 1))
          for (let i = 16; i <= 20; i++) yield* handle("1", { add: 1 })
          assert.deepStrictEqual(Option.getOrThrow(yield* store.load(streamId)).state, { total: 1010, count: 20 })
        })
      )

      if (options.unreadable !== undefined) {
        const unreadable = options.unreadable
        it.effect("an unreadable latest snapshot (not JSON) is skipped too, with its version named", () =>
          Effect.gen(function* () {
            const category = yield* uniqueCategory
            const store = yield* Snapshot.SnapshotStore
            const handle = Aggregate.handler(counter(1, category), uncached)
            const streamId = `${category}-1`
            for (let i = 1; i <= 25; i++) yield* handle("1", { add: 1 })
            yield* store.save(at(streamId, 10, { total: 1000, count: 10 }))
            yield* unreadable(streamId, 20)
            const error = yield* Effect.flip(store.load(streamId))
            assert.deepStrictEqual([error._tag, error.version, error.transient], ["SnapshotStoreError", 20, false])
            const warnings = yield* warningsOf(handle("1", { add: 1 }))
            assert.isTrue(
              warnings.some((w) => w.startsWith(`ignoring the snapshot of ${streamId}@20: unreadable`)),
              `no warning: ${JSON.stringify(warnings)}`
            )
            const latest = Option.getOrThrow(yield* store.load(streamId))
            assert.deepStrictEqual([latest.version, latest.state], [26, { total: 1016, count: 26 }])
          })
        )
      }
    })
  })
