/**
 * The conformance suite must fail when a guarantee is broken. Each variant below wraps the memory store
 * to break exactly one guarantee, the way a buggy implementation would; the suite's checks for that
 * guarantee must catch it.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as Stream from "effect/Stream"
import * as Event from "../src/Event.js"
import * as EventStore from "../src/EventStore.js"
import * as MemoryEventStore from "../src/MemoryEventStore.js"
import { checks, type Guarantee } from "./suites/EventStoreSuite.js"

type Store = EventStore.EventStore["Type"]

interface BrokenVariant {
  readonly breaks: Guarantee
  readonly name: string
  readonly wrap: (store: Store) => Store
}

/** An append that drops every option but the expected version (claims, releases, command id). */
const appendIgnoringAllButExpectedVersion =
  (store: Store): Store["append"] =>
  (streamId, events, options) =>
    store.append(
      streamId,
      events,
      options?.expectedVersion === undefined ? {} : { expectedVersion: options.expectedVersion }
    )

const variants: ReadonlyArray<BrokenVariant> = [
  {
    breaks: "stream lifecycle",
    name: "forgets soft deletions",
    wrap: (store) => ({ ...store, deleteStream: (streamId) => Effect.asVoid(store.streamVersion(streamId)) })
  },
  {
    breaks: "retention and archiving",
    name: "archives by removing",
    wrap: (store) => ({
      ...store,
      archiveStream: (streamId, options) =>
        Effect.flatMap(store.streamVersion(streamId), (version) =>
          store.truncateStream(streamId, options?.before ?? version + 1)
        )
    })
  },
  {
    breaks: "1 atomic append",
    name: "appends events one by one",
    wrap: (store) => ({
      ...store,
      append: (streamId, events, options) =>
        Effect.gen(function* () {
          let result = yield* store.append(streamId, [], options)
          for (const event of events) result = yield* store.append(streamId, [event])
          return result
        })
    })
  },
  {
    breaks: "2 optimistic concurrency",
    name: "ignores the expected version",
    wrap: (store) => ({ ...store, append: (streamId, events) => store.append(streamId, events) })
  },
  {
    breaks: "3 per-stream order",
    name: "numbers versions with a gap after version 2",
    wrap: (store) => ({
      ...store,
      readStream: (streamId, options) =>
        Stream.map(store.readStream(streamId, options), (e) => (e.version > 2 ? { ...e, version: e.version + 1 } : e))
    })
  },
  {
    breaks: "4 global order",
    name: "makes appends visible out of position order (commits of different lengths, read by position)",
    wrap: (store) => {
      const uncommitted = new Set<string>()
      return {
        ...store,
        append: (streamId, events, options) =>
          Effect.tap(store.append(streamId, events, options), () => {
            for (const e of events) uncommitted.add(e.eventId)
            return Random.nextIntBetween(0, 5).pipe(
              Effect.flatMap((ms) => Effect.sleep(`${ms} millis`)),
              Effect.ensuring(Effect.sync(() => events.forEach((e) => uncommitted.delete(e.eventId))))
            )
          }),
        readAll: (options) => Stream.filter(store.readAll(options), (e) => !uncommitted.has(e.eventId))
      }
    }
  },
  {
    breaks: "unique values",
    name: "ignores unique claims",
    wrap: (store) => ({
      ...store,
      append: appendIgnoringAllButExpectedVersion(store)
    })
  },
  {
    breaks: "command dedup",
    name: "forgets commands",
    wrap: (store) => ({
      ...store,
      append: appendIgnoringAllButExpectedVersion(store),
      findCommand: () => Effect.succeedNone
    })
  },
  {
    breaks: "5 idempotent append",
    name: "stores a retried append again under fresh event ids",
    wrap: (store) => {
      const stored = new Set<string>()
      return {
        ...store,
        append: (streamId, events, options) =>
          Effect.gen(function* () {
            const fresh = yield* Effect.forEach(events, (e) =>
              stored.has(`${streamId}/${e.eventId}`) ? Event.make({ type: e.type, data: e.data }) : Effect.succeed(e)
            )
            const result = yield* store.append(streamId, fresh, options)
            for (const e of events) stored.add(`${streamId}/${e.eventId}`)
            return result
          })
      }
    }
  }
]

describe("EventStoreSuite", () => {
  for (const variant of variants) {
    it.live(`catches a store that ${variant.name} (guarantee ${variant.breaks})`, () =>
      Effect.gen(function* () {
        const layer = Layer.effect(EventStore.EventStore, Effect.map(MemoryEventStore.make(), variant.wrap))
        const relevant = checks.filter((check) => check.guarantee === variant.breaks)
        const failed: Array<string> = []
        for (const check of relevant) {
          const exit = yield* Effect.exit(Effect.provide(check.run, layer).pipe(Effect.timeout("30 seconds")))
          if (Exit.isFailure(exit)) failed.push(check.name)
        }
        assert.isAbove(failed.length, 0, `no check of guarantee ${variant.breaks} failed`)
      })
    )
  }

  it.live("every guarantee has checks and a broken variant", () =>
    Effect.sync(() => {
      const guarantees = new Set(checks.map((check) => check.guarantee))
      for (const variant of variants) assert.isTrue(guarantees.has(variant.breaks))
      assert.deepStrictEqual(
        [...guarantees].filter((g) => g !== "9 bad input").sort(),
        variants.map((v) => v.breaks).sort()
      )
    })
  )
})
