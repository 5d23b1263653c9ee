/**
 * The EventStore conformance suite: guarantees 1-5 of DESIGN.md section 4, the bad-input contract and
 * the stream lifecycle (`eventStoreLifecycle`),
 * as a list of checks that `suite(name, layer)` registers against one implementation. The checks are
 * plain Effects so that `EventStoreSuite.test.ts` can also run them against deliberately broken stores
 * and prove that each guarantee's checks catch its violation.
 *
 * Checks share one store per suite run: each works in its own fresh stream category.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Option from "effect/Option"
import type * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import { uniqueCategory } from "../support/ids.js"
import { lifecycle } from "./eventStoreLifecycle.js"
import { retention } from "./eventStoreRetention.js"
import { settle } from "../support/settle.js"

export type Guarantee =
  | "1 atomic append"
  | "2 optimistic concurrency"
  | "3 per-stream order"
  | "4 global order"
  | "5 idempotent append"
  | "9 bad input"
  | "unique values"
  | "command dedup"
  | "stream lifecycle"
  | "retention and archiving"

export interface Check {
  readonly guarantee: Guarantee
  readonly name: string
  readonly run: Effect.Effect<void, unknown, EventStore.EventStore>
}

/**
 * Registers every check against `layer` (one store, built once for the whole suite), but those `exclude`
 * names (check name -> why it does not apply to this store: a documented difference, never a failure).
 */
export const suite = <E>(
  name: string,
  storeLayer: Layer.Layer<EventStore.EventStore, E>,
  exclude: Readonly<Record<string, string>> = {}
): void => {
  const unknown = Object.keys(exclude).filter((n) => !checks.some((check) => check.name === n))
  if (unknown.length > 0) throw new Error(`no such checks to exclude: ${unknown.join("; ")}`)
  describe(name, () => {
    layer(storeLayer, { excludeTestServices: true, timeout: "60 seconds" })((it) => {
      for (const check of checks) {
        if (exclude[check.name] !== undefined) continue
        it.effect(`${check.guarantee}: ${check.name}`, () => check.run, 60_000)
      }
    })
  })
}

// ---------------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------------

const store = EventStore.EventStore

const newEvents = (n: number, type = "Deposited") =>
  Effect.all(Array.from({ length: n }, (_, i) => Event.make({ type, data: { amount: 100 + i, note: `n${i}` } })))

const collect = <A, E, R>(stream: Stream.Stream<A, E, R>) => Effect.map(Stream.runCollect(stream), Chunk.toArray)

const readStream = (streamId: string, options?: EventStore.ReadStreamOptions) =>
  Effect.flatMap(store, (s) => collect(s.readStream(streamId, options)))

/** The category's events, once everything committed so far is visible. */
const readCategory = (category: string, options?: EventStore.ReadAllOptions) =>
  Effect.zipRight(
    settle,
    Effect.flatMap(store, (s) => collect(s.readAll({ ...options, categories: [category] })))
  )

const append = (streamId: string, events: ReadonlyArray<Event.EventData>, expectedVersion?: Event.ExpectedVersion) =>
  Effect.flatMap(store, (s) =>
    s.append(streamId, events, expectedVersion === undefined ? undefined : { expectedVersion })
  )

const versionOf = (streamId: string) => Effect.flatMap(store, (s) => s.streamVersion(streamId))

const ids = (events: ReadonlyArray<{ readonly eventId: string }>) => events.map((e) => e.eventId)

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

/** Asserts that `streamId` holds exactly `expected` (by event id), with versions 1..n. */
const assertStream = (streamId: string, expected: ReadonlyArray<Event.EventData>) =>
  Effect.gen(function* () {
    const version = yield* versionOf(streamId)
    assert.strictEqual(version, expected.length, `version of ${streamId}`)
    if (expected.length === 0) {
      const error = yield* Effect.flip(readStream(streamId))
      assert.strictEqual(error._tag, "StreamNotFound")
      return
    }
    const stored = yield* readStream(streamId)
    assert.deepStrictEqual(ids(stored), ids(expected))
    assert.deepStrictEqual(
      stored.map((e) => e.version),
      range(expected.length).map((i) => i + 1)
    )
  })

const assertConflict = (error: unknown, streamId: string, expected: Event.ExpectedVersion, actual: number) => {
  assert.instanceOf(error, EventStore.ConcurrencyConflict)
  assert.strictEqual(error.streamId, streamId)
  assert.deepStrictEqual(error.expected, expected)
  assert.strictEqual(error.actual, actual)
}

const assertInvalid = (error: unknown, reason: EventStore.InvalidAppendReason, index?: number) => {
  assert.instanceOf(error, EventStore.InvalidAppend, String(error))
  assert.strictEqual(error.reason, reason)
  if (index !== undefined) assert.strictEqual(error.index, index)
}

const check = (guarantee: Guarantee, name: string, run: Check["run"]): Check => ({ guarantee, name, run })

// ---------------------------------------------------------------------------------------------------
// 1. atomic append
// ---------------------------------------------------------------------------------------------------

const atomic: ReadonlyArray<Check> = [
  check(
    "1 atomic append",
    "an append with an invalid last event writes none of its events",
    Effect.gen(function* () {
      const id = `${yield* uniqueCategory}-1`
      const good = yield* newEvents(3)
      const bad = yield* Event.make({ type: "Deposited", data: { amount: 10n } })
      assertInvalid(yield* Effect.flip(append(id, [...good, bad])), "InvalidJson", 3)
      yield* assertStream(id, [])
    })
  ),
  check(
    "1 atomic append",
    "an append with an oversized last event writes none of its events",
    Effect.gen(function* () {
      const id = `${yield* uniqueCategory}-1`
      const first = yield* newEvents(2)
      yield* append(id, first)
      const good = yield* newEvents(2)
      const huge = yield* Event.make({
        type: "Deposited",
        data: { blob: "x".repeat(EventStore.defaultLimits.maxEventBytes) }
      })
      assertInvalid(yield* Effect.flip(append(id, [...good, huge])), "EventTooLarge", 2)
      yield* assertStream(id, first)
    })
  ),
  check(
    "1 atomic append",
    "concurrent multi-event appends to one stream never interleave",
    Effect.gen(function* () {
      const id = `${yield* uniqueCategory}-1`
      const batches = yield* Effect.all(range(12).map(() => newEvents(5)))
      yield* Effect.forEach(batches, (batch) => append(id, batch), { concurrency: "unbounded" })
      const stored = ids(yield* readStream(id))
      assert.strictEqual(stored.length, 60)
      for (const batch of batches) {
        const at = stored.indexOf(batch[0]!.eventId)
        assert.deepStrictEqual(stored.slice(at, at + 5), ids(batch), "a batch is stored contiguously")
      }
    })
  )
]

// ---------------------------------------------------------------------------------------------------
// 2. optimistic concurrency
// ---------------------------------------------------------------------------------------------------

const concurrency: ReadonlyArray<Check> = [
  check(
    "2 optimistic concurrency",
    "NoStream, StreamExists and Exact mismatches fail with ConcurrencyConflict and write nothing",
    Effect.gen(function* () {
      const id = `${yield* uniqueCategory}-1`
      assertConflict(yield* Effect.flip(append(id, yield* newEvents(1), Event.StreamExists)), id, Event.StreamExists, 0)
      assertConflict(yield* Effect.flip(append(id, yield* newEvents(1), Event.Exact(1))), id, Event.Exact(1), 0)
      const first = yield* newEvents(2)
      yield* append(id, first, Event.NoStream)
      assertConflict(yield* Effect.flip(append(id, yield* newEvents(2), Event.NoStream)), id, Event.NoStream, 2)
      assertConflict(yield* Effect.flip(append(id, yield* newEvents(2), Event.Exact(1))), id, Event.Exact(1), 2)
      assertConflict(yield* Effect.flip(append(id, yield* newEvents(2), Event.Exact(0))), id, Event.Exact(0), 2)
      yield* assertStream(id, first)
    })
  ),
  check(
    "2 optimistic concurrency",
    "matching expected versions append",
    Effect.gen(function* () {
      const id = `${yield* uniqueCategory}-1`
      const a = yield* newEvents(1)
      const b = yield* newEvents(2)
      const c = yield* newEvents(1)
      const d = yield* newEvents(1)
      assert.strictEqual((yield* append(id, a, Event.Exact(0))).version, 1)
      assert.strictEqual((yield* append(id, b, Event.Exact(1))).version, 3)
      assert.strictEqual((yield* append(id, c, Event.StreamExists)).version, 4)
      assert.strictEqual((yield* append(id, d, Event.Any)).version, 5)
      const empty = yield* append(id, [], Event.Exact(5))
      assert.deepStrictEqual([empty.version, empty.positions.length], [5, 0])
      assertConflict(yield* Effect.flip(append(id, [], Event.Exact(4))), id, Event.Exact(4), 5)
      yield* assertStream(id, [...a, ...b, ...c, ...d])
    })
  ),
  check(
    "2 optimistic concurrency",
    "of concurrent appends at the same expected version exactly one wins",
    Effect.gen(function* () {
      const id = `${yield* uniqueCategory}-1`
      const first = yield* newEvents(1)
      yield* append(id, first)
      const contenders = yield* Effect.all(range(10).map(() => newEvents(2)))
      const exits = yield* Effect.forEach(contenders, (events) => Effect.exit(append(id, events, Event.Exact(1))), {
        concurrency: "unbounded"
      })
      const winners = exits.flatMap((exit, i) => (Exit.isSuccess(exit) ? [i] : []))
      assert.strictEqual(winners.length, 1, "exactly one winner")
      for (const exit of exits) {
        if (Exit.isFailure(exit)) {
          const error = yield* Effect.flip(exit)
          assertConflict(error, id, Event.Exact(1), 3)
        }
      }
      yield* assertStream(id, [...first, ...contenders[winners[0]!]!])
    })
  )
]

// ---------------------------------------------------------------------------------------------------
// 3. per-stream order
// ---------------------------------------------------------------------------------------------------

const perStreamOrder: ReadonlyArray<Check> = [
  check(
    "3 per-stream order",
    "versions are contiguous from 1 and append results match the stored events",
    Effect.gen(function* () {
      const id = `${yield* uniqueCategory}-1`
      const batches = yield* Effect.all(range(8).map((i) => newEvents((i % 3) + 1)))
      const results = yield* Effect.forEach(batches, (batch) => append(id, batch), { concurrency: 4 })
      const stored = yield* readStream(id)
      assert.deepStrictEqual(
        stored.map((e) => e.version),
        range(stored.length).map((i) => i + 1)
      )
      results.forEach((result, i) => {
        const batch = batches[i]!
        assert.strictEqual(result.positions.length, batch.length)
        batch.forEach((event, j) => {
          const recorded = stored[result.version - batch.length + j]!
          assert.strictEqual(recorded.eventId, event.eventId)
          assert.strictEqual(recorded.position, result.positions[j])
          assert.strictEqual(recorded.streamId, id)
        })
      })
      assert.strictEqual(yield* versionOf(id), stored.length)
    })
  ),
  check(
    "3 per-stream order",
    "an event is recorded at its append's time: the same for the events of one append, later for a later append",
    Effect.gen(function* () {
      const id = `${yield* uniqueCategory}-1`
      yield* append(id, yield* newEvents(2))
      yield* Effect.sleep("20 millis")
      yield* append(id, yield* newEvents(2))
      const millis = (yield* readStream(id)).map((e) => e.recordedAt.epochMillis)
      assert.strictEqual(millis.length, 4)
      assert.strictEqual(millis[0], millis[1])
      assert.strictEqual(millis[2], millis[3])
      assert.isAbove(millis[2]!, millis[1]!)
    })
  ),
  check(
    "3 per-stream order",
    "reads forward and backward from a version, with a max count",
    Effect.gen(function* () {
      const id = `${yield* uniqueCategory}-1`
      yield* append(id, yield* newEvents(10))
      const versions = (events: ReadonlyArray<Event.RecordedEvent>) => events.map((e) => e.version)
      assert.deepStrictEqual(versions(yield* readStream(id, { fromVersion: 4, maxCount: 3 })), [4, 5, 6])
      assert.deepStrictEqual(
        versions(yield* readStream(id, { direction: "backward" })),
        [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]
      )
      assert.deepStrictEqual(versions(yield* readStream(id, { direction: "backward", fromVersion: 3 })), [3, 2, 1])
      assert.deepStrictEqual(versions(yield* readStream(id, { direction: "backward", maxCount: 2 })), [10, 9])
      assert.deepStrictEqual(versions(yield* readStream(id, { fromVersion: 11 })), [])
    })
  ),
  check(
    "3 per-stream order",
    "a read a page at a time (readStreamPage) gives readStream's events, forward and backward, and its failures",
    Effect.gen(function* () {
      const id = `${yield* uniqueCategory}-1`
      yield* append(id, yield* newEvents(10))
      const s = yield* store
      /**
       * The versions a read a page at a time returns, checking each page: within `maxCount` (and the store's
       * page size), not empty while `next` says there is more, and `next` the version the following starts at.
       */
      const pages = (options: EventStore.ReadStreamOptions & { readonly maxCount: number }) =>
        Effect.gen(function* () {
          const read: Array<number> = []
          let page = yield* s.readStreamPage(id, options)
          for (;;) {
            assert.isAtMost(page.events.length, options.maxCount)
            read.push(...page.events.map((e) => e.version))
            if (page.next === undefined) return read
            assert.isAbove(page.events.length, 0)
            const next: number = page.next
            page = yield* s.readStreamPage(id, { ...options, fromVersion: next })
            assert.strictEqual(page.events[0]?.version, next)
          }
        })
      assert.deepStrictEqual(yield* pages({ maxCount: 3 }), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
      assert.deepStrictEqual(yield* pages({ maxCount: 4, direction: "backward" }), [10, 9, 8, 7, 6, 5, 4, 3, 2, 1])
      assert.deepStrictEqual(yield* pages({ maxCount: 1000, fromVersion: 2 }), [2, 3, 4, 5, 6, 7, 8, 9, 10])
      const [first] = (yield* s.readStreamPage(id, { maxCount: 3 })).events
      assert.strictEqual(first?.version, 1)
      // a page holds what readStream returns, as it returns it
      const { events } = yield* s.readStreamPage(id)
      assert.isAbove(events.length, 0)
      assert.deepStrictEqual(events, (yield* readStream(id)).slice(0, events.length))
      assert.deepStrictEqual(yield* s.readStreamPage(id, { fromVersion: 11 }), { events: [], next: undefined })
      const missing = `${yield* uniqueCategory}-missing`
      assert.strictEqual((yield* Effect.flip(s.readStreamPage(missing)))._tag, "StreamNotFound")
      assert.strictEqual((yield* Effect.flip(s.readStreamPage("tab\there")))._tag, "InvalidStreamId")
    })
  ),
  check(
    "3 per-stream order",
    "recorded events carry what was appended",
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const id = `${category}-42`
      const data = { amount: 1.5, note: "ünïcödé ✓ 🚀", nested: { list: [1, null, true, "x"], empty: {} } }
      const metadata = { correlationId: "c-1", causationId: "k-1", principal: "alice", custom: { a: [1] } }
      const event = yield* Event.make({ type: "Opened", data, metadata, schemaVersion: 3 })
      yield* append(id, [event])
      const [stored] = yield* readStream(id)
      assert.deepStrictEqual(
        [stored!.eventId, stored!.type, stored!.schemaVersion, stored!.streamId, stored!.category],
        [event.eventId, "Opened", 3, id, category]
      )
      assert.deepStrictEqual(stored!.data, data)
      assert.deepStrictEqual(stored!.metadata, metadata)
    })
  )
]

// ---------------------------------------------------------------------------------------------------
// 4. global order
// ---------------------------------------------------------------------------------------------------

/**
 * A follower that polls `readAll` from its checkpoint while writers append, asserting that no event
 * arrives twice or sorts before the checkpoint; returns every event id it saw, in order.
 */
const follow = (category: string, writing: Ref.Ref<boolean>, batchSize: number) =>
  Effect.gen(function* () {
    const s = yield* store
    const seen: Array<string> = []
    let checkpoint = Event.start
    const poll = () =>
      s.readAll({ after: checkpoint, categories: [category], batchSize }).pipe(
        Stream.runForEach((event) =>
          Effect.sync(() => {
            const next = Event.checkpointOf(event)
            assert.isTrue(Event.checkpointOrder(next, checkpoint) > 0, "an event sorted before the checkpoint")
            checkpoint = next
            seen.push(event.eventId)
          })
        )
      )
    while (yield* Ref.get(writing)) {
      yield* poll()
      yield* Effect.sleep("1 millis")
    }
    yield* settle
    yield* poll()
    return seen
  })

const globalOrder: ReadonlyArray<Check> = [
  check(
    "4 global order",
    "readAll after a checkpoint returns exactly the later events, in order, for every batch size",
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const written = yield* Effect.forEach(range(6), (i) =>
        Effect.flatMap(newEvents((i % 3) + 1), (events) => Effect.as(append(`${category}-${i % 2}`, events), events))
      )
      const all = ids(written.flat())
      for (const batchSize of [1, 2, 5, 1000]) {
        const read = yield* readCategory(category, { batchSize })
        assert.deepStrictEqual(ids(read), all, `batch size ${batchSize}`)
        for (let i = 1; i < read.length; i++) {
          assert.isTrue(Event.checkpointOrder(Event.checkpointOf(read[i]!), Event.checkpointOf(read[i - 1]!)) > 0)
        }
        const after = yield* readCategory(category, { batchSize, after: Event.checkpointOf(read[3]!) })
        assert.deepStrictEqual(ids(after), all.slice(4))
      }
      assert.deepStrictEqual(ids(yield* readCategory(category, { maxCount: 3 })), all.slice(0, 3))
    })
  ),
  check(
    "4 global order",
    "category and type filters select exactly the matching events",
    Effect.gen(function* () {
      const [a, b] = [yield* uniqueCategory, yield* uniqueCategory]
      const opened = yield* newEvents(2, "Opened")
      const deposited = yield* newEvents(3, "Deposited")
      const other = yield* newEvents(2, "Opened")
      yield* append(`${a}-1`, [...opened, ...deposited])
      yield* append(`${b}-1`, other)
      const s = yield* store
      yield* settle
      const both = yield* collect(s.readAll({ categories: [a, b], types: ["Opened"], batchSize: 2 }))
      assert.deepStrictEqual(ids(both), ids([...opened, ...other]))
      assert.deepStrictEqual(ids(yield* readCategory(a, { types: ["Deposited"] })), ids(deposited))
      assert.deepStrictEqual(ids(yield* readCategory(a, { types: ["Nothing"] })), [])
    })
  ),
  check(
    "4 global order",
    "a tenant selects exactly the streams scoped to it, in global order, with the other filters",
    Effect.gen(function* () {
      const c = (yield* uniqueCategory).toLowerCase()
      const [t1, t2] = [`${c}_a`, `${c}_ab`]
      const mine = yield* newEvents(3, "Opened")
      const others = yield* newEvents(3, "Opened")
      yield* append(`${t1}~Account-1`, [mine[0]!])
      yield* append(`${t2}~Account-1`, [others[0]!])
      yield* append(`${t1}~Other`, [mine[1]!])
      // not scoped, or scoped to a tenant that only starts like it
      yield* append(`${t1}Account-1`, [others[1]!])
      yield* append(`X${t1}~Account-2`, [others[2]!])
      yield* append(`${t1}~Account-2`, [mine[2]!])
      const s = yield* store
      yield* settle
      assert.deepStrictEqual(ids(yield* collect(s.readAll({ tenant: t1, batchSize: 1 }))), ids(mine))
      assert.deepStrictEqual(
        ids(yield* collect(s.readAll({ tenant: t1, categories: [`${t1}~Account`] }))),
        ids([mine[0]!, mine[2]!])
      )
      assert.deepStrictEqual(ids(yield* collect(s.readAll({ tenant: `${c}_` }))), [])
    })
  ),
  check(
    "4 global order",
    "partitions split the log by stream: every event in exactly one partition, in global order",
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const count = 3
      // streams until every partition has two
      const streams: Array<string> = []
      const perPartition = range(count).map(() => 0)
      for (let i = 0; perPartition.some((n) => n < 2); i++) {
        const streamId = `${category}-${i}`
        const partition = Event.partitionOf(streamId, count)
        if (perPartition[partition]! < 2) {
          perPartition[partition]!++
          streams.push(streamId)
        }
      }
      for (const round of range(2)) {
        for (const streamId of streams) yield* append(streamId, yield* newEvents(1 + (round % 2)))
      }
      const all = yield* readCategory(category)
      const parts = yield* Effect.forEach(range(count), (index) =>
        readCategory(category, { partition: { count, index }, batchSize: 2 })
      )
      parts.forEach((events, index) => {
        for (const e of events) assert.strictEqual(Event.partitionOf(e.streamId, count), index)
      })
      const merged = parts.flat().sort((a, b) => Event.checkpointOrder(Event.checkpointOf(a), Event.checkpointOf(b)))
      assert.deepStrictEqual(ids(merged), ids(all))
      assert.isTrue(parts.every((events) => events.length > 0))
      const s = yield* store
      for (const partition of [
        { count: 0, index: 0 },
        { count: 2, index: 2 },
        { count: 2, index: -1 },
        { count: 1.5, index: 0 }
      ]) {
        const error = yield* Effect.flip(collect(s.readAll({ partition })))
        assert.strictEqual(error._tag, "EventStoreError")
      }
    })
  ),
  check(
    "4 global order",
    "a read a page at a time (readAllPage) gives readAll's events, with its filters and failures",
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      for (const i of range(4)) {
        yield* append(`${category}-${i % 2}`, [...(yield* newEvents(1, "Opened")), ...(yield* newEvents(2))])
      }
      yield* settle
      const s = yield* store
      /** Every page of a read, checking each: within its size, and `next` where a full page ended. */
      const pages = (options: EventStore.ReadAllOptions & { readonly batchSize: number }) =>
        Effect.gen(function* () {
          const read: Array<Event.RecordedEvent> = []
          let page = yield* s.readAllPage(options)
          for (;;) {
            assert.isAtMost(page.events.length, options.batchSize)
            read.push(...page.events)
            if (page.next === undefined) return read
            assert.strictEqual(page.events.length, options.batchSize)
            assert.deepStrictEqual(page.next, Event.checkpointOf(page.events[page.events.length - 1]!))
            page = yield* s.readAllPage({ ...options, after: page.next })
          }
        })
      // both partitions: which one a stream falls in is the store's (a tenant view hashes the stored id)
      const selections: ReadonlyArray<EventStore.ReadAllOptions> = [
        { categories: [category] },
        { categories: [category], types: ["Opened"] },
        { categories: [category], partition: { count: 2, index: 0 } },
        { categories: [category], partition: { count: 2, index: 1 } }
      ]
      let inPartitions = 0
      for (const selection of selections) {
        const all = yield* collect(s.readAll(selection))
        if (selection.partition === undefined) assert.isAbove(all.length, 0)
        else inPartitions += all.length
        for (const batchSize of [1, 5, 1000]) {
          // the same events as readAll's, as readAll returns them
          assert.deepStrictEqual(
            yield* pages({ ...selection, batchSize }),
            all,
            JSON.stringify({ selection, batchSize })
          )
        }
        if (all.length > 0) {
          const after = Event.checkpointOf(all[0]!)
          assert.deepStrictEqual(ids((yield* s.readAllPage({ ...selection, after })).events), ids(all.slice(1)))
        }
      }
      assert.strictEqual(inPartitions, 12)
      const first = yield* s.readAllPage({ categories: [category], maxCount: 3 })
      assert.deepStrictEqual(ids(first.events), ids((yield* readCategory(category)).slice(0, 3)))
      assert.deepStrictEqual(yield* s.readAllPage({ categories: [category], maxCount: 0 }), {
        events: [],
        next: undefined
      })
      const error = yield* Effect.flip(s.readAllPage({ partition: { count: 2, index: 2 } }))
      assert.strictEqual(error._tag, "EventStoreError")
    })
  ),
  check(
    "4 global order",
    "head is the checkpoint of the last event readAll returns",
    Effect.gen(function* () {
      const s = yield* store
      yield* append(`${yield* uniqueCategory}-1`, yield* newEvents(2))
      const head = yield* s.head
      const after = yield* collect(s.readAll({ after: head }))
      const last = (yield* collect(s.readAll({ after: { ...head, position: head.position - 1n }, maxCount: 1 })))[0]
      assert.isDefined(last)
      assert.deepStrictEqual(Event.checkpointOf(last!), head)
      // events appended concurrently by other checks may follow; none sorts before the head
      for (const e of after) assert.isTrue(Event.checkpointOrder(Event.checkpointOf(e), head) > 0)
    })
  ),
  check(
    "4 global order",
    "heldBack counts no event readers can already see",
    Effect.gen(function* () {
      const s = yield* store
      const category = yield* uniqueCategory
      yield* append(`${category}-1`, yield* newEvents(2))
      // once visible to readAll (see `settle`), an event is below the read horizon for good
      yield* settle
      assert.strictEqual((yield* collect(s.readAll({ categories: [category] }))).length, 2)
      assert.isTrue(Option.isNone(yield* s.heldBack({ categories: [category] })))
    })
  ),
  check(
    "4 global order",
    "a follower polling during concurrent writes sees every event exactly once and never goes back",
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const writing = yield* Ref.make(true)
      const writer = (w: number) =>
        Effect.forEach(range(12), () =>
          Effect.gen(function* () {
            yield* Effect.sleep(`${yield* Random.nextIntBetween(0, 3)} millis`)
            const events = yield* newEvents(yield* Random.nextIntBetween(1, 3))
            yield* append(`${category}-${w}`, events)
            return ids(events)
          })
        )
      const follower = yield* Effect.fork(follow(category, writing, 7))
      const written = yield* Effect.forEach(range(16), writer, { concurrency: "unbounded" })
      yield* Ref.set(writing, false)
      const seen = yield* follower
      const expected = written.flat(2)
      assert.strictEqual(new Set(seen).size, seen.length, "no event seen twice")
      assert.strictEqual(seen.length, expected.length, "every event seen")
      assert.deepStrictEqual([...seen].sort(), [...expected].sort())
    })
  )
]

// ---------------------------------------------------------------------------------------------------
// 5. idempotent append
// ---------------------------------------------------------------------------------------------------

const idempotent: ReadonlyArray<Check> = [
  check(
    "5 idempotent append",
    "re-appending the same events returns the original result, for every expected version mode",
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const id = `${category}-1`
      const first = yield* newEvents(2)
      const second = yield* newEvents(3)
      const r1 = yield* append(id, first, Event.NoStream)
      const r2 = yield* append(id, second, Event.Exact(2))
      yield* append(id, yield* newEvents(1))
      assert.deepStrictEqual(yield* append(id, first, Event.NoStream), r1)
      assert.deepStrictEqual(yield* append(id, first, Event.Any), r1)
      assert.deepStrictEqual(yield* append(id, first, Event.Exact(0)), r1)
      assert.deepStrictEqual(yield* append(id, second, Event.Exact(2)), r2)
      assert.deepStrictEqual(yield* append(id, second, Event.StreamExists), r2)
      assert.deepStrictEqual(yield* append(id, second, Event.Any), r2)
      assert.strictEqual(yield* versionOf(id), 6)
      assert.strictEqual((yield* readCategory(category)).length, 6)
    })
  ),
  check(
    "5 idempotent append",
    "a retry whose expected version could not have held is a conflict naming the stream's version now",
    Effect.gen(function* () {
      const id = `${yield* uniqueCategory}-1`
      const first = yield* newEvents(2)
      const later = yield* newEvents(3)
      yield* append(id, first)
      yield* append(id, later)
      assertConflict(yield* Effect.flip(append(id, first, Event.StreamExists)), id, Event.StreamExists, 5)
      assertConflict(yield* Effect.flip(append(id, first, Event.Exact(1))), id, Event.Exact(1), 5)
      yield* assertStream(id, [...first, ...later])
    })
  ),
  check(
    "5 idempotent append",
    "a partial overlap with stored event ids is refused and writes nothing",
    Effect.gen(function* () {
      const id = `${yield* uniqueCategory}-1`
      const first = yield* newEvents(3)
      yield* append(id, first)
      const fresh = yield* newEvents(1)
      assertInvalid(yield* Effect.flip(append(id, [first[1]!, first[0]!])), "EventIdConflict", 0)
      assertInvalid(yield* Effect.flip(append(id, [...fresh, first[2]!])), "EventIdConflict", 1)
      assertInvalid(yield* Effect.flip(append(id, [...first, ...fresh])), "EventIdConflict", 0)
      yield* assertStream(id, first)
    })
  ),
  check(
    "5 idempotent append",
    "concurrent retries of one append write it once; the same ids may be used in another stream",
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const events = yield* newEvents(3)
      const results = yield* Effect.forEach(range(8), () => append(`${category}-1`, events), {
        concurrency: "unbounded"
      })
      for (const result of results) assert.deepStrictEqual(result, results[0])
      yield* append(`${category}-2`, events)
      yield* assertStream(`${category}-1`, events)
      yield* assertStream(`${category}-2`, events)
    })
  )
]

// ---------------------------------------------------------------------------------------------------
// bad input
// ---------------------------------------------------------------------------------------------------

const hostileStreamIds = [
  "",
  " padded",
  "tab\there",
  "nul\u0000",
  "bell\u0007",
  "c1\u0085",
  "lone\uD800",
  "x".repeat(256)
]

const badInput: ReadonlyArray<Check> = [
  check(
    "9 bad input",
    "hostile stream ids fail with InvalidStreamId on every operation",
    Effect.gen(function* () {
      const s = yield* store
      const events = yield* newEvents(1)
      for (const id of hostileStreamIds) {
        assert.strictEqual((yield* Effect.flip(s.append(id, events)))._tag, "InvalidStreamId", JSON.stringify(id))
        assert.strictEqual((yield* Effect.flip(collect(s.readStream(id))))._tag, "InvalidStreamId")
        assert.strictEqual((yield* Effect.flip(s.streamVersion(id)))._tag, "InvalidStreamId")
      }
    })
  ),
  check(
    "9 bad input",
    "a stream id at the length limit round-trips",
    Effect.gen(function* () {
      const longest = `${yield* uniqueCategory}-${"é".repeat(Event.maxStreamIdLength - 14)}`
      assert.strictEqual(longest.length, Event.maxStreamIdLength)
      yield* append(longest, yield* newEvents(1))
      assert.strictEqual((yield* readStream(longest))[0]!.streamId, longest)
    })
  ),
  check(
    "9 bad input",
    "values JSON cannot hold faithfully are refused with InvalidJson",
    Effect.gen(function* () {
      const id = `${yield* uniqueCategory}-1`
      const cyclic: Record<string, unknown> = {}
      cyclic.self = cyclic
      const hostile: ReadonlyArray<unknown> = [
        { big: 1n },
        { gone: undefined },
        [1, undefined],
        cyclic,
        { n: Number.NaN },
        { n: Number.POSITIVE_INFINITY },
        { when: new Date(0) },
        { map: new Map() },
        { nul: "a\u0000b" },
        { ["k\u0000"]: 1 },
        { s: "\uDC00" },
        { f: () => 1 },
        undefined,
        JSON.parse("[".repeat(100) + "]".repeat(100))
      ]
      for (const data of hostile) {
        const event = yield* Event.make({ type: "Deposited", data })
        assertInvalid(yield* Effect.flip(append(id, [event])), "InvalidJson", 0)
      }
      const withBadMetadata = yield* Event.make({ type: "Deposited", data: {}, metadata: { at: 1n } })
      assertInvalid(yield* Effect.flip(append(id, [withBadMetadata])), "InvalidJson", 0)
      yield* assertStream(id, [])
    })
  ),
  check(
    "9 bad input",
    "values whose getters throw are refused as bad input, not a defect",
    Effect.gen(function* () {
      const id = `${yield* uniqueCategory}-1`
      const throwing = (): object =>
        Object.defineProperty({}, "amount", {
          enumerable: true,
          get: () => {
            throw new Error("no amount today")
          }
        })
      const badData = yield* Event.make({ type: "Deposited", data: { nested: throwing() } })
      const badDataError = yield* Effect.flip(append(id, [badData]))
      assertInvalid(badDataError, "InvalidJson", 0)
      assert.include(badDataError.message, "no amount today")
      const badMetadata = yield* Event.make({ type: "Deposited", data: {}, metadata: throwing() as Event.Metadata })
      // InvalidEvent where a wrapper (Tenancy) reads the metadata before the store
      const badMetadataError = yield* Effect.flip(append(id, [badMetadata]))
      assert.instanceOf(badMetadataError, EventStore.InvalidAppend)
      assert.oneOf(badMetadataError.reason, ["InvalidJson", "InvalidEvent"])
      const [good] = yield* newEvents(1)
      const badEvent = Object.defineProperty({ ...good! }, "eventId", {
        get: () => {
          throw new Error("no id")
        }
      })
      assertInvalid(yield* Effect.flip(append(id, [good!, badEvent])), "InvalidEvent")
      const badOptions = Object.defineProperty({}, "commandId", {
        get: () => {
          throw "not even an Error"
        }
      }) as EventStore.AppendOptions
      assertInvalid(yield* Effect.flip(Effect.flatMap(store, (s) => s.append(id, [good!], badOptions))), "InvalidEvent")
      yield* assertStream(id, [])
    })
  ),
  check(
    "9 bad input",
    "malformed events, bad expected versions, duplicates within an append and too many events are refused",
    Effect.gen(function* () {
      const id = `${yield* uniqueCategory}-1`
      const [good] = yield* newEvents(1)
      const malformed: ReadonlyArray<unknown> = [
        { ...good, eventId: "not-a-uuid" },
        { ...good, eventId: good!.eventId.toUpperCase() },
        { ...good, type: "" },
        { ...good, type: "bad\ntype" },
        { ...good, schemaVersion: 0 },
        { ...good, schemaVersion: 1.5 },
        { ...good, metadata: "text" },
        null
      ]
      for (const event of malformed) {
        assertInvalid(yield* Effect.flip(append(id, [good!, event as Event.EventData])), "InvalidEvent", 1)
      }
      assertInvalid(yield* Effect.flip(append(id, [good!, good!])), "DuplicateEventId", 1)
      for (const expected of [
        { _tag: "Exact", version: -1 },
        { _tag: "Exact", version: 1.5 },
        { _tag: "Exact", version: 2 ** 31 },
        { _tag: "Later" },
        null
      ]) {
        assertInvalid(
          yield* Effect.flip(append(id, [good!], expected as Event.ExpectedVersion)),
          "InvalidExpectedVersion"
        )
      }
      assertInvalid(yield* Effect.flip(append(id, [{ ...good!, schemaVersion: 2 ** 31 }])), "InvalidEvent", 0)
      const tooMany = yield* newEvents(EventStore.defaultLimits.maxEventsPerAppend + 1)
      assertInvalid(yield* Effect.flip(append(id, tooMany)), "TooManyEvents")
      yield* assertStream(id, [])
    })
  ),
  check(
    "9 bad input",
    "arbitrary JSON data and metadata round-trip intact (property)",
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const json = FastCheck.jsonValue({ noUnicodeString: false }).filter(
        (v) => !JSON.stringify(v).includes("\\u0000") && !JSON.stringify(v).includes("__proto__")
      )
      const s = yield* store
      let n = 0
      yield* Effect.promise(() =>
        FastCheck.assert(
          FastCheck.asyncProperty(json, json, (data, extra) =>
            Effect.runPromise(
              Effect.gen(function* () {
                const id = `${category}-${n++}`
                const event = yield* Event.make({ type: "Any", data, metadata: { extra } })
                yield* s.append(id, [event])
                const [stored] = yield* collect(s.readStream(id))
                // JSON has one zero: -0 is stored as 0; key order is kept (compared as text)
                assert.deepStrictEqual(stored!.data, JSON.parse(JSON.stringify(data)))
                assert.strictEqual(JSON.stringify(stored!.data), JSON.stringify(data))
                assert.strictEqual(JSON.stringify(stored!.metadata), JSON.stringify({ extra }))
              })
            )
          ),
          { numRuns: 40 }
        )
      )
    })
  ),
  check(
    "9 bad input",
    "data and metadata come back as appended, key order included (guarantee 11)",
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const id = `${category}-1`
      const data = { z: 1, a: { y: [{ k: 1, b: 2 }], c: "x" }, m: null, "10": true, "2": false, é: 1.5 }
      const metadata = { zeta: "z", alpha: "a", nested: { b: 1, a: 2 } }
      yield* append(id, [yield* Event.make({ type: "Ordered", data, metadata })])
      for (const stored of [...(yield* readStream(id)), ...(yield* readCategory(category))]) {
        assert.strictEqual(JSON.stringify(stored.data), JSON.stringify(data))
        // the tenant-scoped store adds the tenant, last
        const { tenantId: _, ...given } = stored.metadata
        assert.strictEqual(JSON.stringify(given), JSON.stringify(metadata))
      }
    })
  ),
  check(
    "9 bad input",
    "global reads filtered by names no stream can have (NUL, lone surrogates) read nothing, without an error",
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      yield* append(`${category}-1`, yield* newEvents(1))
      const s = yield* store
      for (const name of ["\u0000", `${category}\u0000`, "\uD800", ""]) {
        assert.deepStrictEqual(yield* collect(s.readAll({ categories: [name] })), [], JSON.stringify(name))
        assert.deepStrictEqual(yield* collect(s.readAll({ types: [name] })), [], JSON.stringify(name))
        assert.isTrue(Option.isNone(yield* s.heldBack({ categories: [name], types: [name] })))
      }
      // the one event of the category, once everything committed is visible (PostgreSQL's read horizon)
      yield* settle
      assert.strictEqual((yield* collect(s.readAll({ categories: ["\u0000", category] }))).length, 1)
    })
  ),
  check(
    "9 bad input",
    "global reads of a tenant no stream can have (NUL) read nothing, without an error",
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      yield* append(`${category}-1`, yield* newEvents(1))
      const s = yield* store
      for (const tenant of ["\u0000", "acme\u0000", ""]) {
        assert.deepStrictEqual(
          yield* collect(s.readAll({ tenant, categories: [category] })),
          [],
          JSON.stringify(tenant)
        )
      }
    })
  ),
  check(
    "9 bad input",
    "reading a missing stream fails with StreamNotFound and its version is 0",
    Effect.gen(function* () {
      const id = `${yield* uniqueCategory}-missing`
      assert.strictEqual((yield* Effect.flip(readStream(id)))._tag, "StreamNotFound")
      assert.strictEqual(yield* versionOf(id), 0)
    })
  )
]

// ---------------------------------------------------------------------------------------------------
// unique values
// ---------------------------------------------------------------------------------------------------

const claim = (
  streamId: string,
  claims: ReadonlyArray<EventStore.UniqueValue>,
  releases: ReadonlyArray<EventStore.UniqueValue> = []
) =>
  Effect.flatMap(store, (s) =>
    Effect.flatMap(newEvents(1), (events) => s.append(streamId, events, { claims, releases }))
  )

const uniqueValues: ReadonlyArray<Check> = [
  check(
    "unique values",
    "a value claimed by one stream is refused to another, which then writes nothing and claims nothing",
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const email = { constraint: `email-${category}`, value: "ada@example.com" }
      const other = { constraint: `email-${category}`, value: "bob@example.com" }
      yield* claim(`${category}-1`, [email])
      yield* claim(`${category}-1`, [email]) // the owner claiming again is fine
      const error = yield* Effect.flip(claim(`${category}-2`, [other, email]))
      assert.instanceOf(error, EventStore.UniqueConstraintViolation)
      assert.deepStrictEqual(
        [error.constraint, error.value, error.owner],
        [email.constraint, email.value, `${category}-1`]
      )
      yield* assertStream(`${category}-2`, [])
      yield* claim(`${category}-3`, [other]) // the refused append's other claim was not kept
    })
  ),
  check(
    "unique values",
    "a released value can be claimed again; a refused append neither claims nor releases",
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const name = { constraint: `name-${category}`, value: "ada" }
      const renamed = { constraint: `name-${category}`, value: "ada2" }
      yield* claim(`${category}-1`, [name])
      const s = yield* store
      const conflictEvents = yield* newEvents(1)
      const conflict = yield* Effect.flip(
        s.append(`${category}-1`, conflictEvents, {
          expectedVersion: Event.NoStream,
          claims: [renamed],
          releases: [name]
        })
      )
      assert.strictEqual(conflict._tag, "ConcurrencyConflict")
      assert.strictEqual((yield* Effect.flip(claim(`${category}-2`, [name])))._tag, "UniqueConstraintViolation")
      yield* claim(`${category}-3`, [renamed]) // not claimed by the conflicting append
      yield* claim(`${category}-1`, [], [name])
      yield* claim(`${category}-2`, [name])
    })
  ),
  check(
    "unique values",
    "of concurrent claimants of one value exactly one wins",
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const value = { constraint: `seat-${category}`, value: "12A" }
      const exits = yield* Effect.forEach(range(8), (i) => Effect.exit(claim(`${category}-${i}`, [value])), {
        concurrency: "unbounded"
      })
      assert.strictEqual(exits.filter(Exit.isSuccess).length, 1)
      for (const exit of exits) {
        if (Exit.isFailure(exit)) assert.strictEqual((yield* Effect.flip(exit))._tag, "UniqueConstraintViolation")
      }
      assert.strictEqual((yield* readCategory(category)).length, 1)
    })
  ),
  check(
    "unique values",
    "malformed unique values and command ids are refused as bad input",
    Effect.gen(function* () {
      const id = `${yield* uniqueCategory}-1`
      for (const bad of [
        { constraint: "", value: "x" },
        { constraint: "c", value: "" },
        { constraint: "c", value: "a\u0000b" },
        { constraint: "c", value: "x".repeat(513) },
        { constraint: "c" }
      ]) {
        assertInvalid(yield* Effect.flip(claim(id, [bad as EventStore.UniqueValue])), "InvalidUniqueValue")
      }
      assertInvalid(
        yield* Effect.flip(Effect.flatMap(store, (st) => st.append(id, [], { commandId: "" }))),
        "InvalidCommandId"
      )
      yield* assertStream(id, [])
    })
  )
]

// ---------------------------------------------------------------------------------------------------
// command dedup
// ---------------------------------------------------------------------------------------------------

const commandDedup: ReadonlyArray<Check> = [
  check(
    "command dedup",
    "an append records its command; another append of the same command fails with the first result",
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const s = yield* store
      const commandId = `cmd-${category}`
      assert.isTrue(Option.isNone(yield* s.findCommand(commandId)))
      const first = yield* s.append(`${category}-1`, yield* newEvents(2), { commandId })
      const record = Option.getOrThrow(yield* s.findCommand(commandId))
      assert.deepStrictEqual(
        [record.streamId, record.version, record.positions],
        [first.streamId, first.version, first.positions]
      )
      for (const streamId of [`${category}-1`, `${category}-2`]) {
        const duplicate = yield* Effect.flip(s.append(streamId, yield* newEvents(1), { commandId }))
        assert.instanceOf(duplicate, EventStore.DuplicateCommand)
        assert.deepStrictEqual(
          [duplicate.streamId, duplicate.version, duplicate.positions],
          [first.streamId, 2, first.positions]
        )
      }
      assert.strictEqual((yield* readCategory(category)).length, 2)
    })
  ),
  check(
    "command dedup",
    "of concurrent appends of one command exactly one writes",
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const s = yield* store
      const exits = yield* Effect.forEach(
        range(6),
        (i) =>
          Effect.flatMap(newEvents(1), (events) =>
            Effect.exit(s.append(`${category}-${i}`, events, { commandId: `c-${category}` }))
          ),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(exits.filter(Exit.isSuccess).length, 1)
      for (const exit of exits) {
        if (Exit.isFailure(exit)) assert.strictEqual((yield* Effect.flip(exit))._tag, "DuplicateCommand")
      }
      assert.strictEqual((yield* readCategory(category)).length, 1)
    })
  ),
  check(
    "command dedup",
    "a replay of an append with its command id is a duplicate command, also concurrently: one succeeds",
    Effect.gen(function* () {
      const category = yield* uniqueCategory
      const s = yield* store
      const events = yield* newEvents(2)
      const commandId = `replayed-${category}`
      // a stream that exists, and one created by the append: both paths of the stores
      yield* append(`${category}-1`, yield* newEvents(1))
      for (const [streamId, expectedVersion] of [
        [`${category}-1`, Event.Exact(1)],
        [`${category}-2`, Event.NoStream]
      ] as const) {
        const id = `${commandId}-${streamId}`
        const exits = yield* Effect.forEach(
          range(8),
          () => Effect.exit(s.append(streamId, events, { commandId: id, expectedVersion })),
          { concurrency: "unbounded" }
        )
        const successes = exits.filter(Exit.isSuccess)
        assert.strictEqual(successes.length, 1, `exactly one append of ${id} succeeds`)
        for (const exit of exits) {
          if (Exit.isFailure(exit)) {
            const error = yield* Effect.flip(exit)
            assert.instanceOf(error, EventStore.DuplicateCommand)
            assert.deepStrictEqual(
              [error.version, error.positions],
              [successes[0]!.value.version, successes[0]!.value.positions]
            )
          }
        }
        const replay = yield* Effect.flip(s.append(streamId, events, { commandId: id, expectedVersion }))
        assert.strictEqual(replay._tag, "DuplicateCommand")
      }
    })
  )
]

// ---------------------------------------------------------------------------------------------------
// property: random interleavings
// ---------------------------------------------------------------------------------------------------

interface Op {
  readonly stream: number
  readonly expected: Event.ExpectedVersion
  readonly count: number
  readonly poisoned: boolean
  readonly delay: number
}

const opArbitrary: FastCheck.Arbitrary<Op> = FastCheck.record({
  stream: FastCheck.integer({ min: 0, max: 2 }),
  expected: FastCheck.oneof(
    FastCheck.constant(Event.Any),
    FastCheck.constant(Event.NoStream),
    FastCheck.constant(Event.StreamExists),
    FastCheck.integer({ min: 0, max: 6 }).map(Event.Exact)
  ),
  count: FastCheck.integer({ min: 0, max: 3 }),
  poisoned: FastCheck.boolean(),
  delay: FastCheck.integer({ min: 0, max: 3 })
})

/**
 * Runs random appends concurrently (random expected versions, some carrying an invalid last event) and
 * checks the outcome against the contract: streams contiguous, each success stored exactly at its
 * reported versions and positions, each failure stored nowhere, nothing else stored.
 */
const interleavings = (s: EventStore.EventStore["Type"], ops: ReadonlyArray<Op>) =>
  Effect.gen(function* () {
    const category = yield* uniqueCategory
    const planned = yield* Effect.forEach(ops, (op) =>
      Effect.gen(function* () {
        const events = yield* newEvents(op.count)
        return op.poisoned ? [...events, yield* Event.make({ type: "Poison", data: 1n })] : events
      })
    )
    const exits = yield* Effect.forEach(
      ops,
      (op, i) =>
        Effect.exit(
          Effect.repeatN(Effect.yieldNow(), op.delay).pipe(
            Effect.zipRight(s.append(`${category}-${op.stream}`, planned[i]!, { expectedVersion: op.expected }))
          )
        ),
      { concurrency: "unbounded" }
    )
    const byId = new Map<string, Event.RecordedEvent>()
    for (const event of yield* readCategory(category)) byId.set(event.eventId, event)
    let expectedTotal = 0
    for (const [i, exit] of exits.entries()) {
      const op = ops[i]!
      const events = planned[i]!
      if (Exit.isSuccess(exit)) {
        assert.isFalse(op.poisoned, "a poisoned append succeeded")
        const result = exit.value
        expectedTotal += events.length
        if (op.expected._tag === "Exact") assert.strictEqual(result.version - events.length, op.expected.version)
        if (op.expected._tag === "NoStream") assert.strictEqual(result.version, events.length)
        events.forEach((event, j) => {
          const stored = byId.get(event.eventId)
          assert.isDefined(stored, "a successful append's event is missing")
          assert.strictEqual(stored!.streamId, `${category}-${op.stream}`)
          assert.strictEqual(stored!.version, result.version - events.length + 1 + j)
          assert.strictEqual(stored!.position, result.positions[j])
        })
      } else {
        const error = yield* Effect.flip(exit)
        if (op.poisoned) assertInvalid(error, "InvalidJson")
        else {
          assertConflict(
            error,
            `${category}-${op.stream}`,
            op.expected,
            (error as EventStore.ConcurrencyConflict).actual
          )
        }
        if (error instanceof EventStore.ConcurrencyConflict) {
          assert.isFalse(Event.satisfies(op.expected, error.actual), "a conflict whose expectation held")
        }
        for (const event of events) assert.isFalse(byId.has(event.eventId), "a failed append left an event")
      }
    }
    assert.strictEqual(byId.size, expectedTotal, "events stored that no successful append reported")
    for (const stream of [0, 1, 2]) {
      const id = `${category}-${stream}`
      const versions = [...byId.values()].filter((e) => e.streamId === id).map((e) => e.version)
      assert.deepStrictEqual(
        versions.sort((a, b) => a - b),
        range(versions.length).map((v) => v + 1),
        `versions of ${id}`
      )
      assert.strictEqual(yield* s.streamVersion(id), versions.length)
    }
  })

const properties: ReadonlyArray<Check> = [
  check(
    "1 atomic append",
    "random concurrent appends never break contiguity or leave a partial append (property)",
    Effect.gen(function* () {
      const s = yield* store
      yield* Effect.promise(() =>
        FastCheck.assert(
          FastCheck.asyncProperty(FastCheck.array(opArbitrary, { minLength: 1, maxLength: 24 }), (ops) =>
            Effect.runPromise(interleavings(s, ops).pipe(Effect.provideService(EventStore.EventStore, s)))
          ),
          { numRuns: 40 }
        )
      )
    })
  )
]

/** Every check of the suite. */
export const checks: ReadonlyArray<Check> = [
  ...atomic,
  ...concurrency,
  ...perStreamOrder,
  ...globalOrder,
  ...idempotent,
  ...badInput,
  ...uniqueValues,
  ...commandDedup,
  ...lifecycle,
  ...retention,
  ...properties
]
