/**
 * What the lifecycle and retention checks of the store suite share: reads collected into arrays, event
 * ids, and the follower's verdict (each event seen once, in checkpoint order).
 */
import { assert } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import { settle } from "../support/settle.js"

export const collect = <A, E, R>(stream: Stream.Stream<A, E, R>) => Effect.map(Stream.runCollect(stream), Chunk.toArray)

export const readStream = (streamId: string, options?: EventStore.ReadStreamOptions) =>
  Effect.flatMap(EventStore.EventStore, (s) => collect(s.readStream(streamId, options)))

/** `readAll` of the categories, once the read horizon has passed what was written. */
export const readCategories = (categories: ReadonlyArray<string>, options?: EventStore.ReadAllOptions) =>
  Effect.zipRight(
    settle,
    Effect.flatMap(EventStore.EventStore, (s) => collect(s.readAll({ ...options, categories })))
  )

export const ids = (events: ReadonlyArray<{ readonly eventId: string }>) => events.map((e) => e.eventId)

/** A follower saw no event twice, and saw them in checkpoint order. */
export const assertSeenOnceInOrder = (seen: ReadonlyArray<Event.RecordedEvent>) => {
  const seenIds = ids(seen)
  assert.strictEqual(new Set(seenIds).size, seenIds.length, "no event seen twice")
  for (let i = 1; i < seen.length; i++) {
    assert.isTrue(
      Event.checkpointOrder(Event.checkpointOf(seen[i - 1]!), Event.checkpointOf(seen[i]!)) < 0,
      "in checkpoint order"
    )
  }
}
