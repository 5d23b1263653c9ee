/**
 * The observability every event store implementation shares, applied once around the service: the
 * `EventStore.append` span, the append, appended-events and conflict counters, and the events-read counter
 * (see `Metrics`). Metric updates only: no span per statement or per page.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Stream from "effect/Stream"
import type * as Event from "../Event.js"
import type * as EventStore from "../EventStore.js"
import * as Metrics from "../Metrics.js"

const appendedOk = Metric.tagged(Metrics.appendsTotal, "outcome", "ok")
const readStreamEvents = Metric.tagged(Metrics.eventsReadTotal, "read", "stream")
const readAllEvents = Metric.tagged(Metrics.eventsReadTotal, "read", "all")

/** The store with its span and metrics. */
export const instrument = (store: EventStore.EventStore["Type"]): EventStore.EventStore["Type"] => ({
  ...store,
  append: (streamId, events, options) =>
    store.append(streamId, events, options).pipe(
      Effect.onExit(recordAppend),
      Effect.withSpan("EventStore.append", {
        attributes: { streamId, events: Array.isArray(events) ? events.length : 0 },
        captureStackTrace: false
      })
    ),
  readStream: (streamId, options) => counted(store.readStream(streamId, options), readStreamEvents),
  readAll: (options) => counted(store.readAll(options), readAllEvents)
})

const recordAppend = <E>(exit: Exit.Exit<EventStore.AppendResult, E>): Effect.Effect<void> => {
  if (Exit.isSuccess(exit)) {
    return Effect.zipRight(
      Metric.increment(appendedOk),
      Metric.incrementBy(Metrics.eventsAppendedTotal, exit.value.positions.length)
    )
  }
  const outcome = Metrics.outcomeOf(exit)
  if (outcome === "interrupted") return Effect.void
  return Effect.zipRight(
    Metric.increment(Metric.tagged(Metrics.appendsTotal, "outcome", outcome)),
    outcome === "ConcurrencyConflict" ? Metric.increment(Metrics.conflictsTotal) : Effect.void
  )
}

/** Counts the events a read emits, a chunk (a page) at a time. */
const counted = <E>(
  events: Stream.Stream<Event.RecordedEvent, E>,
  counter: Metric.Metric.Counter<number>
): Stream.Stream<Event.RecordedEvent, E> =>
  Stream.mapChunksEffect(events, (chunk) => Effect.as(Metric.incrementBy(counter, chunk.length), chunk))
