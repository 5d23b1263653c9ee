/**
 * The stream lifecycle checks of the EventStore conformance suite (see `EventStoreSuite`): soft delete and
 * undo, hard delete, truncation, and a writer and a follower running during deletions.
 */
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import { uniqueCategory } from "../support/ids.js"
import { settle } from "../support/settle.js"
import type { Check } from "./EventStoreSuite.js"
import { assertSeenOnceInOrder, collect, ids, readCategories, readStream } from "./lifecycleSupport.js"

const store = EventStore.EventStore

const newEvents = (n: number) =>
  Effect.all(Array.from({ length: n }, (_, i) => Event.make({ type: "Deposited", data: { amount: i } })))

const readCategory = (category: string, options?: EventStore.ReadAllOptions) => readCategories([category], options)

const assertDeleted = (error: unknown, streamId: string, hard: boolean) => {
  assert.instanceOf(error, EventStore.StreamDeleted, String(error))
  assert.strictEqual(error.streamId, streamId)
  assert.strictEqual(error.hard, hard)
}

const check = (name: string, run: Check["run"]): Check => ({ guarantee: "stream lifecycle", name, run })

export const lifecycle: ReadonlyArray<Check> = [
  check(
    "a soft-deleted stream refuses appends and reads, stays in readAll, and undelete restores it",
    Effect.gen(function* () {
      const s = yield* store
      const category = yield* uniqueCategory
      const id = `${category}-1`
      const events = yield* newEvents(3)
      yield* s.append(id, events)
      yield* s.deleteStream(id, { expectedVersion: Event.Exact(3) })
      assertDeleted(yield* Effect.flip(readStream(id)), id, false)
      assertDeleted(yield* Effect.flip(readStream(id, { direction: "backward" })), id, false)
      assertDeleted(yield* Effect.flip(s.append(id, yield* newEvents(1))), id, false)
      assertDeleted(yield* Effect.flip(s.truncateStream(id, 2)), id, false)
      assert.strictEqual(yield* s.streamVersion(id), 3)
      assert.deepStrictEqual(ids(yield* readCategory(category)), ids(events), "readAll keeps its events")
      yield* s.deleteStream(id)
      yield* s.undeleteStream(id)
      yield* s.undeleteStream(id)
      assert.deepStrictEqual(ids(yield* readStream(id)), ids(events))
      const more = yield* newEvents(1)
      const result = yield* s.append(id, more, { expectedVersion: Event.Exact(3) })
      assert.strictEqual(result.version, 4)
      assert.deepStrictEqual(ids(yield* readStream(id)), ids([...events, ...more]))
    })
  ),
  check(
    "lifecycle operations on a missing stream fail with StreamNotFound; a wrong expected version deletes nothing",
    Effect.gen(function* () {
      const s = yield* store
      const id = `${yield* uniqueCategory}-1`
      assert.strictEqual((yield* Effect.flip(s.deleteStream(id)))._tag, "StreamNotFound")
      assert.strictEqual((yield* Effect.flip(s.undeleteStream(id)))._tag, "StreamNotFound")
      assert.strictEqual((yield* Effect.flip(s.hardDeleteStream(id)))._tag, "StreamNotFound")
      assert.strictEqual((yield* Effect.flip(s.truncateStream(id, 2)))._tag, "StreamNotFound")
      const events = yield* newEvents(2)
      yield* s.append(id, events)
      const soft = yield* Effect.flip(s.deleteStream(id, { expectedVersion: Event.Exact(1) }))
      assert.instanceOf(soft, EventStore.ConcurrencyConflict)
      assert.strictEqual(soft.actual, 2)
      const hard = yield* Effect.flip(s.hardDeleteStream(id, { expectedVersion: Event.NoStream }))
      assert.instanceOf(hard, EventStore.ConcurrencyConflict)
      assert.deepStrictEqual(ids(yield* readStream(id)), ids(events))
    })
  ),
  check(
    "a hard delete removes the events, unique values and command records, leaves later positions, and is final",
    Effect.gen(function* () {
      const s = yield* store
      const category = yield* uniqueCategory
      const [deleted, kept, other] = [`${category}-1`, `${category}-2`, `${category}-3`]
      const value = { constraint: "email", value: `${category}@example.com` }
      const commandId = `${category}-command`
      yield* s.append(deleted, yield* newEvents(2), { claims: [value], commandId })
      yield* s.append(kept, yield* newEvents(1))
      const before = yield* readCategory(category)
      const checkpoint = Event.checkpointOf(before[0]!)
      yield* s.deleteStream(deleted)
      yield* s.hardDeleteStream(deleted)
      yield* s.hardDeleteStream(deleted)
      const after = yield* readCategory(category)
      assert.deepStrictEqual(
        after.map((e) => [e.eventId, e.position]),
        before.filter((e) => e.streamId === kept).map((e) => [e.eventId, e.position]),
        "later events keep their positions"
      )
      assert.deepStrictEqual(ids(yield* readCategory(category, { after: checkpoint })), ids(after))
      assertDeleted(yield* Effect.flip(readStream(deleted)), deleted, true)
      assertDeleted(yield* Effect.flip(s.append(deleted, yield* newEvents(1))), deleted, true)
      assertDeleted(
        yield* Effect.flip(s.append(deleted, yield* newEvents(1), { expectedVersion: Event.NoStream })),
        deleted,
        true
      )
      assertDeleted(yield* Effect.flip(s.undeleteStream(deleted)), deleted, true)
      assertDeleted(yield* Effect.flip(s.deleteStream(deleted)), deleted, true)
      assertDeleted(yield* Effect.flip(s.truncateStream(deleted, 1)), deleted, true)
      assert.strictEqual(yield* s.streamVersion(deleted), 2)
      assert.isTrue(Option.isNone(yield* s.findCommand(commandId)), "the command record is gone")
      // the value and the command id are free again
      yield* s.append(other, yield* newEvents(1), { claims: [value], commandId })
      assert.deepStrictEqual(ids(yield* readStream(kept)), ids(before.filter((e) => e.streamId === kept)))
    })
  ),
  check(
    "a truncated stream reads from the version kept, keeps its numbering and goes on",
    Effect.gen(function* () {
      const s = yield* store
      const category = yield* uniqueCategory
      const id = `${category}-1`
      const events = yield* newEvents(5)
      yield* s.append(id, events)
      assert.strictEqual(yield* s.truncateStream(id, 3), 2)
      assert.strictEqual(yield* s.truncateStream(id, 2), 0)
      const kept = events.slice(2)
      assert.deepStrictEqual(ids(yield* readStream(id)), ids(kept))
      assert.deepStrictEqual(
        (yield* readStream(id)).map((e) => e.version),
        [3, 4, 5]
      )
      assert.deepStrictEqual(ids(yield* readStream(id, { fromVersion: 1, maxCount: 2 })), ids(kept.slice(0, 2)))
      assert.deepStrictEqual(ids(yield* readStream(id, { direction: "backward" })), ids(kept).reverse())
      assert.deepStrictEqual(ids(yield* readStream(id, { direction: "backward", fromVersion: 2 })), [])
      assert.deepStrictEqual(ids(yield* readCategory(category)), ids(kept), "readAll no longer returns them")
      assert.strictEqual(yield* s.streamVersion(id), 5)
      const sixth = yield* newEvents(1)
      assert.strictEqual((yield* s.append(id, sixth, { expectedVersion: Event.Exact(5) })).version, 6)
      assert.strictEqual(yield* s.truncateStream(id, 100), 4)
      assert.deepStrictEqual(yield* readStream(id), [], "an emptied stream reads as empty, not missing")
      assert.strictEqual(yield* s.streamVersion(id), 6)
      const seventh = yield* newEvents(1)
      assert.strictEqual((yield* s.append(id, seventh, { expectedVersion: Event.Exact(6) })).version, 7)
      assert.deepStrictEqual(
        (yield* readStream(id)).map((e) => [e.eventId, e.version]),
        [[seventh[0]!.eventId, 7]]
      )
    })
  ),
  check(
    "writers and a follower running during deletions: no skip, no duplicate, no resurrected event",
    Effect.gen(function* () {
      const s = yield* store
      const category = yield* uniqueCategory
      const streams = ["k0", "k1", "k2", "d0", "d1", "t0"].map((n) => `${category}-${n}`)
      const appended = yield* Ref.make<ReadonlyArray<Event.EventData & { readonly streamId: string }>>([])
      const writer = (streamId: string) =>
        Effect.forEach(
          Array.from({ length: 15 }),
          () =>
            Effect.flatMap(Effect.zipRight(Effect.sleep("1 millis"), newEvents(1)), (events) =>
              s.append(streamId, events).pipe(
                Effect.zipRight(Ref.update(appended, (all) => [...all, { ...events[0]!, streamId }])),
                Effect.catchTag("StreamDeleted", () => Effect.void)
              )
            ),
          { discard: true }
        )
      const seen: Array<Event.RecordedEvent> = []
      const follow = Effect.gen(function* () {
        const after = seen.length === 0 ? Event.start : Event.checkpointOf(seen[seen.length - 1]!)
        const page = yield* collect(s.readAll({ after, categories: [category], batchSize: 7 }))
        seen.push(...page)
      })
      const follower = yield* Effect.fork(Effect.forever(Effect.zipRight(follow, Effect.sleep("1 millis"))))
      const writers = yield* Effect.fork(Effect.forEach(streams, writer, { concurrency: "unbounded", discard: true }))
      const deleter = Effect.gen(function* () {
        // once each stream to delete has a few events
        yield* Effect.repeat(
          Effect.forEach(streams.slice(3), (id) => s.streamVersion(id)),
          { schedule: Schedule.spaced("2 millis"), until: (versions) => versions.every((v) => v >= 3) }
        )
        yield* s.hardDeleteStream(streams[3]!)
        yield* s.deleteStream(streams[4]!)
        yield* s.hardDeleteStream(streams[4]!)
        yield* s.truncateStream(streams[5]!, 3)
      })
      yield* deleter
      yield* Fiber.join(writers)
      yield* Fiber.interrupt(follower)
      yield* settle
      yield* follow
      assertSeenOnceInOrder(seen)
      const seenIds = ids(seen)
      const written = yield* Ref.get(appended)
      const kept = written.filter((e) => !streams.slice(3, 5).includes(e.streamId))
      const seenSet = new Set(seenIds)
      for (const e of kept) {
        if (e.streamId !== streams[5]) assert.isTrue(seenSet.has(e.eventId), `${e.streamId} event skipped`)
      }
      const final = yield* readCategory(category)
      const finalIds = new Set(ids(final))
      assert.isFalse(
        final.some((e) => e.streamId === streams[3] || e.streamId === streams[4]),
        "no event of a hard-deleted stream is read after the deletion"
      )
      for (const e of final) assert.isTrue(seenSet.has(e.eventId), "every event left was followed")
      assert.deepStrictEqual(
        ids(yield* readStream(streams[5]!)),
        ids(written.filter((e) => e.streamId === streams[5]).slice(2)),
        "the truncated stream keeps its later events"
      )
      for (const e of kept) {
        if (e.streamId !== streams[5]) assert.isTrue(finalIds.has(e.eventId), "an event of a kept stream lost")
      }
    })
  )
]
