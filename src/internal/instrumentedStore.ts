/**
 * The observability every event store implementation shares, applied once around the service: the
 * `EventStore.append` span, the append, appended-events and conflict counters, and the events-read counter
 * (see `Metrics`). Metric updates only: no span per statement or per page.
 *
 * An append is on the hottest path there is, so its span is left out under Effect's built-in tracer, which
 * would keep nothing of it (see `tracing`), and its counters are updated in one step.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Metric from "effect/Metric"
import * as Stream from "effect/Stream"
import type * as Event from "../Event.js"
import type * as EventStore from "../EventStore.js"
import * as Metrics from "../Metrics.js"
import { withSpanIfRecorded } from "./tracing.js"

const appendedOk = Metric.tagged(Metrics.appendsTotal, "outcome", "ok")
const readStreamEvents = Metric.tagged(Metrics.eventsReadTotal, "read", "stream")
const readAllEvents = Metric.tagged(Metrics.eventsReadTotal, "read", "all")

/** The store with its span and metrics. */
export const instrument = (store: EventStore.EventStore["Type"]): EventStore.EventStore["Type"] => ({
  ...store,
  append: (streamId, events, options) =>
    store.append(streamId, events, options).pipe(
      Effect.onExit(recordAppend),
      withSpanIfRecorded("EventStore.append", {
        attributes: { streamId, events: Array.isArray(events) ? events.length : 0 },
        captureStackTrace: false
      })
    ),
  readStream: (streamId, options) => counted(store.readStream(streamId, options), readStreamEvents),
  readStreamPage: (streamId, options) =>
    Effect.tap(store.readStreamPage(streamId, options), (page) =>
      Metric.incrementBy(readStreamEvents, page.events.length)
    ),
  readAll: (options) => counted(store.readAll(options), readAllEvents),
  readAllPage: (options) =>
    Effect.tap(store.readAllPage(options), (page) => Metric.incrementBy(readAllEvents, page.events.length))
})

/** Counts an append's outcome: one step for all its counters, with the fiber's metric labels. */
const recordAppend = <E>(exit: Exit.Exit<EventStore.AppendResult, E>): Effect.Effect<void> =>
  Effect.withFiberRuntime((fiber) => {
    const labels = fiber.getFiberRef(FiberRef.currentMetricLabels)
    if (Exit.isSuccess(exit)) {
      appendedOk.unsafeUpdate(1, labels)
      Metrics.eventsAppendedTotal.unsafeUpdate(exit.value.positions.length, labels)
      return Effect.void
    }
    const outcome = Metrics.outcomeOf(exit)
    if (outcome === "interrupted") return Effect.void
    Metric.tagged(Metrics.appendsTotal, "outcome", outcome).unsafeUpdate(1, labels)
    if (outcome === "ConcurrencyConflict") Metrics.conflictsTotal.unsafeUpdate(1, labels)
    return Effect.void
  })

/** Counts the events a read emits, a chunk (a page) at a time. */
const counted = <E>(
  events: Stream.Stream<Event.RecordedEvent, E>,
  counter: Metric.Metric.Counter<number>
): Stream.Stream<Event.RecordedEvent, E> =>
  Stream.mapChunksEffect(events, (chunk) => Effect.as(Metric.incrementBy(counter, chunk.length), chunk))
