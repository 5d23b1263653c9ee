/**
 * The retention and archiving checks of the EventStore conformance suite (see `EventStoreSuite`):
 * `applyRetention` by count and by age, `archiveStream` and `readStream`'s `includeArchived`, and writers
 * and a follower running during both.
 */
import { assert } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
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
  Effect.all(Array.from({ length: n }, (_, i) => Event.make({ type: "Visited", data: { page: i } })))

const versions = (events: ReadonlyArray<Event.RecordedEvent>) => events.map((e) => e.version)

/** Waits until the clock is past `instant` by more than a millisecond (times are stored to the millisecond). */
const clockPast = (instant: DateTime.Utc) =>
  Effect.repeat(DateTime.now, {
    schedule: Schedule.spaced("1 millis").pipe(Schedule.upTo("10 seconds")),
    until: (now) => now.epochMillis > instant.epochMillis + 1
  })

const check = (name: string, run: Check["run"]): Check => ({ guarantee: "retention and archiving", name, run })

export const retention: ReadonlyArray<Check> = [
  check(
    "retention by count keeps each live stream's last events; deleted streams and other categories untouched",
    Effect.gen(function* () {
      const s = yield* store
      const category = yield* uniqueCategory
      const other = `${category}x`
      const [long, short, deleted, elsewhere] = [`${category}-1`, `${category}-2`, `${category}-3`, `${other}-1`]
      const events = yield* newEvents(5)
      yield* s.append(long, events)
      yield* s.append(short, yield* newEvents(2))
      yield* s.append(deleted, yield* newEvents(4))
      yield* s.append(elsewhere, yield* newEvents(5))
      yield* s.deleteStream(deleted)
      assert.deepStrictEqual(yield* s.applyRetention({ category, maxCount: 3 }), { streams: 1, events: 2 })
      assert.deepStrictEqual(ids(yield* readStream(long)), ids(events.slice(2)))
      assert.deepStrictEqual(versions(yield* readStream(long)), [3, 4, 5])
      assert.strictEqual((yield* readStream(short)).length, 2)
      assert.strictEqual((yield* readStream(elsewhere)).length, 5)
      assert.deepStrictEqual(yield* s.applyRetention({ category, maxCount: 3 }), { streams: 0, events: 0 })
      const all = yield* readCategories([category, other])
      assert.isFalse(
        all.some((e) => ids(events.slice(0, 2)).includes(e.eventId)),
        "readAll no longer returns them"
      )
      assert.strictEqual(all.filter((e) => e.streamId === deleted).length, 4, "the soft-deleted stream is kept")
      yield* s.undeleteStream(deleted)
      assert.strictEqual((yield* readStream(deleted)).length, 4)
      assert.strictEqual(yield* s.streamVersion(long), 5)
      assert.strictEqual((yield* s.append(long, yield* newEvents(1), { expectedVersion: Event.Exact(5) })).version, 6)
      assert.deepStrictEqual(yield* s.applyRetention({ category, maxCount: 1 }), { streams: 3, events: 3 + 1 + 3 })
      assert.deepStrictEqual(versions(yield* readStream(long)), [6])
    })
  ),
  check(
    "retention by age removes the events recorded before the cut (and any before them), emptying old streams",
    Effect.gen(function* () {
      const s = yield* store
      const category = yield* uniqueCategory
      const [mixed, old] = [`${category}-1`, `${category}-2`]
      yield* s.append(mixed, yield* newEvents(2))
      yield* s.append(old, yield* newEvents(2))
      const oldest = yield* readStream(old)
      yield* clockPast(oldest[1]!.recordedAt)
      const young = yield* newEvents(2)
      yield* s.append(mixed, young)
      const [third] = yield* readStream(mixed, { fromVersion: 3 })
      assert.isAbove(third!.recordedAt.epochMillis, oldest[1]!.recordedAt.epochMillis, "recorded later")
      // nothing was recorded before the first event
      const [first] = yield* readStream(mixed)
      assert.deepStrictEqual(yield* s.applyRetention({ category, recordedBefore: first!.recordedAt }), {
        streams: 0,
        events: 0
      })
      assert.deepStrictEqual(yield* s.applyRetention({ category, recordedBefore: third!.recordedAt }), {
        streams: 2,
        events: 4
      })
      assert.deepStrictEqual(ids(yield* readStream(mixed)), ids(young))
      assert.deepStrictEqual(yield* readStream(old), [], "emptied, not missing")
      assert.strictEqual(yield* s.streamVersion(old), 2)
      // both rules: the one cutting more wins
      assert.deepStrictEqual(yield* s.applyRetention({ category, recordedBefore: third!.recordedAt, maxCount: 1 }), {
        streams: 1,
        events: 1
      })
      assert.deepStrictEqual(versions(yield* readStream(mixed)), [4])
    })
  ),
  check(
    "an archived stream reads its live events; with includeArchived every event in version order; appends go on",
    Effect.gen(function* () {
      const s = yield* store
      const category = yield* uniqueCategory
      const id = `${category}-1`
      const events = yield* newEvents(5)
      yield* s.append(id, events)
      const before = yield* readStream(id)
      assert.strictEqual(yield* s.archiveStream(id, { before: 3 }), 2)
      assert.strictEqual(yield* s.archiveStream(id, { before: 2 }), 0)
      assert.deepStrictEqual(versions(yield* readStream(id)), [3, 4, 5])
      const withArchived = yield* readStream(id, { includeArchived: true })
      assert.deepStrictEqual(
        withArchived.map((e) => [e.eventId, e.version, e.position]),
        before.map((e) => [e.eventId, e.version, e.position]),
        "archived events keep their version and position"
      )
      assert.deepStrictEqual(withArchived[0]!.data, before[0]!.data)
      assert.deepStrictEqual(
        versions(yield* readStream(id, { includeArchived: true, direction: "backward" })),
        [5, 4, 3, 2, 1]
      )
      assert.deepStrictEqual(
        versions(yield* readStream(id, { includeArchived: true, fromVersion: 2, maxCount: 2 })),
        [2, 3]
      )
      assert.deepStrictEqual(ids(yield* readCategories([category])), ids(events.slice(2)), "gone from readAll")
      assert.strictEqual(yield* s.archiveStream(id), 3)
      assert.deepStrictEqual(yield* readStream(id), [])
      assert.strictEqual(yield* s.streamVersion(id), 5)
      const sixth = yield* newEvents(1)
      assert.strictEqual((yield* s.append(id, sixth, { expectedVersion: Event.Exact(5) })).version, 6)
      assert.deepStrictEqual(ids(yield* readStream(id)), ids(sixth))
      assert.deepStrictEqual(ids(yield* readStream(id, { includeArchived: true })), ids([...events, ...sixth]))
      assert.strictEqual(yield* s.truncateStream(id, 3), 2, "a truncation removes archived events too")
      assert.deepStrictEqual(versions(yield* readStream(id, { includeArchived: true })), [3, 4, 5, 6])
      yield* s.deleteStream(id)
      assert.strictEqual((yield* Effect.flip(s.archiveStream(id)))._tag, "StreamDeleted")
      assert.strictEqual((yield* Effect.flip(readStream(id, { includeArchived: true })))._tag, "StreamDeleted")
      yield* s.hardDeleteStream(id)
      assert.strictEqual((yield* Effect.flip(s.archiveStream(id)))._tag, "StreamDeleted")
      assert.strictEqual((yield* Effect.flip(s.archiveStream(`${category}-2`)))._tag, "StreamNotFound")
    })
  ),
  check(
    "a hard delete removes archived events: a stream id reused by no one, nothing resurrected",
    Effect.gen(function* () {
      const s = yield* store
      const category = yield* uniqueCategory
      const id = `${category}-1`
      yield* s.append(id, yield* newEvents(3))
      yield* s.archiveStream(id, { before: 3 })
      yield* s.hardDeleteStream(id)
      const error = yield* Effect.flip(readStream(id, { includeArchived: true }))
      assert.strictEqual(error._tag, "StreamDeleted")
      assert.deepStrictEqual(yield* readCategories([category]), [])
    })
  ),
  check(
    "writers and a follower running during retention and archiving: no skip, no duplicate, no resurrected event",
    Effect.gen(function* () {
      const s = yield* store
      const kept = yield* uniqueCategory
      const cut = `${kept}r`
      const keptStreams = ["k0", "k1", "a0"].map((n) => `${kept}-${n}`)
      const archived = keptStreams[2]!
      const cutStreams = ["r0", "r1"].map((n) => `${cut}-${n}`)
      const appended = yield* Ref.make<ReadonlyArray<Event.EventData & { readonly streamId: string }>>([])
      const writer = (streamId: string) =>
        Effect.forEach(
          Array.from({ length: 15 }),
          () =>
            Effect.flatMap(Effect.zipRight(Effect.sleep("1 millis"), newEvents(1)), (events) =>
              Effect.zipRight(
                s.append(streamId, events),
                Ref.update(appended, (all) => [...all, { ...events[0]!, streamId }])
              )
            ),
          { discard: true }
        )
      const seen: Array<Event.RecordedEvent> = []
      const follow = Effect.gen(function* () {
        const after = seen.length === 0 ? Event.start : Event.checkpointOf(seen[seen.length - 1]!)
        const page = yield* collect(s.readAll({ after, categories: [kept, cut], batchSize: 7 }))
        seen.push(...page)
      })
      const follower = yield* Effect.fork(Effect.forever(Effect.zipRight(follow, Effect.sleep("1 millis"))))
      const writers = yield* Effect.fork(
        Effect.forEach([...keptStreams, ...cutStreams], writer, { concurrency: "unbounded", discard: true })
      )
      // cut and archive (below version 10 at most) while the writers write, until they are done
      const maintenance = Effect.gen(function* () {
        yield* s.applyRetention({ category: cut, maxCount: 3 })
        const version = yield* s.streamVersion(archived)
        if (version > 0) yield* s.archiveStream(archived, { before: Math.min(10, version - 1) })
        yield* Effect.sleep("2 millis")
        return yield* Fiber.poll(writers)
      })
      yield* Effect.repeat(maintenance, { until: Option.isSome })
      yield* Fiber.join(writers)
      yield* s.applyRetention({ category: cut, maxCount: 3 })
      yield* s.archiveStream(archived, { before: 10 })
      yield* Fiber.interrupt(follower)
      yield* settle
      yield* follow
      assertSeenOnceInOrder(seen)
      const seenIds = ids(seen)
      const written = yield* Ref.get(appended)
      const writtenTo = (streamId: string) => ids(written.filter((e) => e.streamId === streamId))
      const seenSet = new Set(seenIds)
      for (const streamId of keptStreams.slice(0, 2)) {
        for (const id of writtenTo(streamId)) assert.isTrue(seenSet.has(id), `${streamId} event skipped`)
      }
      for (const streamId of cutStreams) {
        assert.deepStrictEqual(ids(yield* readStream(streamId)), writtenTo(streamId).slice(-3), "the last 3 kept")
      }
      assert.deepStrictEqual(ids(yield* readStream(archived)), writtenTo(archived).slice(9))
      assert.deepStrictEqual(
        ids(yield* readStream(archived, { includeArchived: true })),
        writtenTo(archived),
        "archived and live: every event once, in order"
      )
      const final = yield* readCategories([kept, cut])
      const expected = new Set([
        ...keptStreams.slice(0, 2).flatMap(writtenTo),
        ...writtenTo(archived).slice(9),
        ...cutStreams.flatMap((streamId) => writtenTo(streamId).slice(-3))
      ])
      assert.deepStrictEqual(new Set(ids(final)), expected, "readAll returns what is left, nothing removed")
      for (const e of final) assert.isTrue(seenSet.has(e.eventId), "every event left was followed")
    })
  )
]
