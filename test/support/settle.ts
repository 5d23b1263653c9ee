/**
 * Waiting for visibility in tests. On PostgreSQL any transaction open in the cluster (other test files
 * run alongside) holds `readAll` readers back for a while (see `SqlEventStore`): a check that reads right
 * after writing must first wait until its writes are visible.
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Event from "../../src/Event.js"
import * as EventStore from "../../src/EventStore.js"
import { uniqueCategory } from "./ids.js"

/**
 * Returns once everything committed before it is visible to `readAll`: a barrier event appended now
 * only becomes visible once every earlier commit is (its transaction id is larger than theirs).
 */
export const settle: Effect.Effect<void, unknown, EventStore.EventStore> = Effect.gen(function* () {
  const store = yield* EventStore.EventStore
  const category = yield* uniqueCategory
  yield* store.append(`${category}-barrier`, [yield* Event.make({ type: "Barrier", data: {} })])
  yield* Stream.runCollect(store.readAll({ categories: [category] })).pipe(
    Effect.filterOrFail((events) => Chunk.isNonEmpty(events)),
    Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo("30 seconds")))
  )
})
