/**
 * The library's metrics, in one place: Effect `Metric`s, so they show in `Metric.snapshot` (the HTTP
 * API's Prometheus `/metrics`, see `http/EventBrowserApi`) and in any exporter reading Effect's metric
 * registry (OTLP, see `observability/Otel`). Names follow `eventsourcing_<thing>_<unit>`; each export
 * says what updates it and by which labels, and docs/observability.md tables them all. The outbox relay is
 * a projection runner: its backlog and age are its projection lag gauges.
 *
 * **Gotchas**: Effect's metrics are process-global and cumulative; labels come from bounded sets only
 * (command tags the bus knows, error tags, projection and saga names). Counters count what this process
 * did: sum them across processes. Durations are measured with Effect's `Clock`.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"

const secondsBoundaries = MetricBoundaries.fromIterable([
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30
])

// ---------------------------------------------------------------------------------------------------
// commands
// ---------------------------------------------------------------------------------------------------

/** Commands dispatched by a `CommandBus`, by `command` (its tag) and `outcome` (`success` or the error's tag). */
export const commandsTotal = Metric.counter("eventsourcing_commands_total", {
  description: "commands dispatched by the command bus, by command and outcome",
  incremental: true
})

/** How long dispatches took (validation, middleware, handler, retries), by `command`, in seconds. */
export const commandDurationSeconds = Metric.histogram(
  "eventsourcing_command_duration_seconds",
  secondsBoundaries,
  "command dispatch duration in seconds, by command"
)

/**
 * Counts a dispatch in {@link commandsTotal} and {@link commandDurationSeconds} under `command`, whatever
 * its end: `success`, the error's `_tag` (`failure` when it has none), `defect` or `interrupted`.
 */
export const trackCommand =
  (command: string) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.flatMap(Clock.currentTimeNanos, (start) =>
      Effect.onExit(self, (exit) =>
        Effect.flatMap(Clock.currentTimeNanos, (end) =>
          Effect.zipRight(
            Metric.increment(
              Metric.tagged(Metric.tagged(commandsTotal, "command", command), "outcome", outcomeOf(exit))
            ),
            Metric.update(
              Metric.tagged(commandDurationSeconds, "command", command),
              Number(end - start) / 1_000_000_000
            )
          )
        )
      )
    )

/** How an exit is counted: `success`, the failure's `_tag` (or `failure`), `defect` or `interrupted`. */
export const outcomeOf = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "success"
  const cause = exit.cause
  if (cause._tag === "Fail") {
    const tag =
      typeof cause.error === "object" && cause.error !== null ? (cause.error as { _tag?: unknown })._tag : undefined
    return typeof tag === "string" ? tag : "failure"
  }
  return Exit.isInterrupted(exit) ? "interrupted" : "defect"
}

// ---------------------------------------------------------------------------------------------------
// event store
// ---------------------------------------------------------------------------------------------------

/** Appends, by `outcome`: `ok`, or the error's tag (`ConcurrencyConflict`, `InvalidAppend`, `EventStoreError`...). */
export const appendsTotal = Metric.counter("eventsourcing_appends_total", {
  description: "event store appends, by outcome",
  incremental: true
})

/**
 * Events in successful appends. An idempotent re-append (the same event ids again, answered with the
 * original result) counts its events again.
 */
export const eventsAppendedTotal = Metric.counter("eventsourcing_events_appended_total", {
  description: "events in successful appends",
  incremental: true
})

/** Appends refused with `ConcurrencyConflict` (each retry of a command that conflicts counts). */
export const conflictsTotal = Metric.counter("eventsourcing_conflicts_total", {
  description: "appends refused with a concurrency conflict",
  incremental: true
})

/** Events fetched from the store by `readStream` (`read="stream"`) and `readAll` (`read="all"`). */
export const eventsReadTotal = Metric.counter("eventsourcing_events_read_total", {
  description: "events read from the event store, by read (stream, all)",
  incremental: true
})

/** Group commit (PostgreSQL, SQLite): appends committed together in one transaction. */
export const appendBatchSize = Metric.histogram(
  "eventsourcing_append_batch_size",
  MetricBoundaries.fromIterable([1, 2, 4, 8, 16, 32, 64, 128]),
  "appends committed together by group commit"
)

/** Stored events skipped because they could not be decoded, under the `skip` policy (see `Upcaster`). */
export const eventsSkippedTotal = Metric.counter("eventsourcing_events_skipped_total", {
  description: "stored events skipped because they could not be decoded (skip policy)",
  incremental: true
})

/** Events removed by retention policies, by `category` (see `Retention`). */
export const retentionEventsRemovedTotal = Metric.counter("eventsourcing_retention_events_removed_total", {
  description: "events removed by retention policies",
  incremental: true
})

/** Streams truncated by retention policies, by `category` (see `Retention`). */
export const retentionStreamsTruncatedTotal = Metric.counter("eventsourcing_retention_streams_truncated_total", {
  description: "streams truncated by retention policies",
  incremental: true
})

// ---------------------------------------------------------------------------------------------------
// projections, outbox, sagas
// ---------------------------------------------------------------------------------------------------

/** Events handled (or dead-lettered) by projection runners, by `projection`. */
export const projectionEventsTotal = Metric.counter("eventsourcing_projection_events_total", {
  description: "events handled by projection runners",
  incremental: true
})

/**
 * How far behind a runner's partition is, in seconds, by `projection`, `version` and `partition`: the age
 * of the last event handled, after each batch, and the age of the oldest event not handled yet, sampled
 * every third of the lease TTL (about 3 seconds by default), so that a stalled or halted runner shows a
 * growing lag although it commits nothing; 0 once caught up. For the outbox relay, the age of its oldest
 * unpublished event. Sampled by runners started with `Projection.run` or `Projection.layer` (not `catchUp`).
 */
export const projectionLagSeconds = Metric.gauge("eventsourcing_projection_lag_seconds", {
  description: "age of the oldest event a projection partition has not handled yet; 0 once caught up"
})

/**
 * How far behind a runner's partition is, in events, by `projection`, `version` and `partition`, sampled
 * every third of the lease TTL (about 3 seconds by default): the positions between the partition's
 * checkpoint and the store's head while an event of the partition waits, 0 otherwise. An upper bound:
 * events of other categories, types or partitions (and, on PostgreSQL, positions of rolled-back appends)
 * count too. For the outbox relay, its backlog. Sampled by runners started with `Projection.run` or
 * `Projection.layer` (not `catchUp`); a partition handed to another worker reads 0 here.
 */
export const projectionLagEvents = Metric.gauge("eventsourcing_projection_lag_events", {
  description: "positions between a projection partition's checkpoint and the head, while events wait; 0 once caught up"
})

/** How long the outbox relay's publishes of a batch took (acks included, failures too), by `relay`, in seconds. */
export const outboxPublishDurationSeconds = Metric.histogram(
  "eventsourcing_outbox_publish_duration_seconds",
  secondsBoundaries,
  "outbox relay publish duration per batch in seconds"
)

/**
 * Saga instances entering a status, by `saga` and `status`: `started` (the instance's first save), then
 * `completed`, `compensated` or `failed`. Counters of transitions rather than a gauge of instances by
 * status, which no process could keep accurate (instances move in several processes, and a batch rolled
 * back undoes saves): instances running = started - completed - compensated - failed, summed over
 * processes.
 *
 * **Gotchas**: counted when the save succeeds, before the batch commits: a batch rolled back and replayed
 * counts its transitions again (rarely: a lost lease, a failed checkpoint commit).
 */
export const sagaInstancesTotal = Metric.counter("eventsourcing_saga_instances_total", {
  description: "saga instances entering a status (started, completed, compensated, failed)",
  incremental: true
})
