/**
 * Retention per category: how long (`maxAge`) and how many (`maxCount`) events each stream of a category
 * keeps, with KurrentDB's `$maxAge` / `$maxCount` meaning, applied by a job forked in the scope of a Layer
 * ({@link layer}) on a `Schedule`, or at once ({@link apply}). Applying a policy truncates the category's
 * live streams (`EventStore` `applyRetention`): the events are removed, as by `truncateStream`, and the
 * numbering is kept. What each run removed is logged and counted (see {@link Report}).
 *
 * Not here: archiving (`EventStore` `archiveStream`: moving events out of the log without removing them),
 * and snapshots (a handler whose snapshot covers the removed part loads as before; take snapshots).
 */
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import { EventStore, type EventStoreError, type RetentionCut } from "./EventStore.js"
import * as Metrics from "./Metrics.js"

/**
 * A category's retention rule: each of its streams keeps its events of the last `maxAge` and at most its
 * last `maxCount` events; the rest are removed. At least one of the two is set (see {@link policy}).
 */
export interface Policy {
  readonly category: string
  /** Events recorded longer ago than this are removed (KurrentDB's `$maxAge`). */
  readonly maxAge?: Duration.Duration
  /** Each stream keeps at most this many of its last events (KurrentDB's `$maxCount`); at least 1. */
  readonly maxCount?: number
}

/**
 * A retention policy for a category, e.g. `Retention.policy({ category: "Session", maxAge: "30 days" })`.
 * A policy with neither rule, a `maxCount` below 1 or a `maxAge` of zero is a wiring mistake: applying it
 * dies (a defect), naming the category.
 *
 * **Gotchas**: the age is measured from the event's `recordedAt` (on PostgreSQL the server's clock) to
 * the applying process's `Clock`; clocks apart by a few seconds move the cut by as much. A stream whose
 * every event is older than `maxAge` is emptied, not removed: its version stays, and appends continue it.
 */
export const policy = (options: {
  readonly category: string
  readonly maxAge?: Duration.DurationInput
  readonly maxCount?: number
}): Policy => ({
  category: options.category,
  ...(options.maxAge === undefined ? {} : { maxAge: Duration.decode(options.maxAge) }),
  ...(options.maxCount === undefined ? {} : { maxCount: options.maxCount })
})

/** What applying a policy removed: events, from how many streams of its category. */
export interface Report {
  readonly category: string
  /** Streams truncated. */
  readonly streams: number
  /** Events removed. */
  readonly events: number
}

/** The store's cut of a policy at `now`: the events older than `now - maxAge`, and beyond the last `maxCount`. */
export const cutOf = (p: Policy, now: DateTime.Utc): RetentionCut => ({
  category: p.category,
  ...(p.maxCount === undefined ? {} : { maxCount: p.maxCount }),
  ...(p.maxAge === undefined ? {} : { recordedBefore: DateTime.subtractDuration(now, p.maxAge) })
})

const invalid = (p: Policy): string | undefined =>
  p.maxAge === undefined && p.maxCount === undefined
    ? "sets neither maxAge nor maxCount"
    : p.maxCount !== undefined && !(Number.isInteger(p.maxCount) && p.maxCount >= 1)
      ? `has maxCount ${p.maxCount}: use a whole number of at least 1`
      : p.maxAge !== undefined && !Duration.greaterThan(p.maxAge, Duration.zero)
        ? "has a maxAge of zero"
        : undefined

/**
 * Applies the policies now, one after another (a `Retention.apply` span): each truncates its category's
 * live streams, then is logged (`Effect.log` annotated with `category`, `streams` and `events`, when it
 * removed anything) and counted (`eventsourcing_retention_events_removed_total` and
 * `eventsourcing_retention_streams_truncated_total`, by `category`). Returns what each removed.
 *
 * **Gotchas**: through `Tenancy` it applies to the streams of the tenant in context: run it inside
 * `Tenancy.withTenant`, once per tenant. Readers keep their guarantee (the events are removed as by a
 * truncation: no later event moves), but a projection that has not reached the removed events yet never
 * will, and a rebuild no longer sees them.
 */
export const apply = (
  policies: ReadonlyArray<Policy>
): Effect.Effect<ReadonlyArray<Report>, EventStoreError, EventStore> =>
  Effect.gen(function* () {
    const store = yield* EventStore
    return yield* Effect.forEach(policies, (p) =>
      Effect.gen(function* () {
        const problem = invalid(p)
        if (problem !== undefined) {
          return yield* Effect.dieMessage(`retention policy of ${JSON.stringify(p.category)} ${problem}`)
        }
        const result = yield* store.applyRetention(cutOf(p, yield* DateTime.now))
        const report: Report = { category: p.category, ...result }
        yield* Metric.incrementBy(
          Metric.tagged(Metrics.retentionEventsRemovedTotal, "category", p.category),
          report.events
        )
        yield* Metric.incrementBy(
          Metric.tagged(Metrics.retentionStreamsTruncatedTotal, "category", p.category),
          report.streams
        )
        if (report.events > 0) {
          yield* Effect.annotateLogs(Effect.log("retention applied"), {
            category: report.category,
            streams: report.streams,
            events: report.events
          })
        }
        return report
      })
    )
  }).pipe(Effect.withSpan("Retention.apply", { attributes: { policies: policies.length } }))

/** Options of {@link layer}. */
export interface LayerOptions {
  /** When to apply the policies again after a run; default every hour (`Schedule.spaced("1 hour")`). */
  readonly schedule?: Schedule.Schedule<unknown>
}

/**
 * Applies the policies in the Layer's scope: once when it is built, then on `schedule` (every hour by
 * default), until the scope closes. A failed run (the database unreachable...) is logged as a warning and
 * the job goes on at the next run; an invalid policy is a defect, which ends the job (and is logged).
 *
 * **Gotchas**: every process with this Layer applies the policies; that is safe (a second run finds
 * nothing left to remove) but wasted work: run it in one. Through `Tenancy` every run needs a tenant:
 * there, repeat {@link apply} inside `Tenancy.withTenant` for each tenant instead.
 */
export const layer = (
  policies: ReadonlyArray<Policy>,
  options: LayerOptions = {}
): Layer.Layer<never, never, EventStore> =>
  Layer.scopedDiscard(
    Effect.forkScoped(
      apply(policies).pipe(
        Effect.catchAll((error) =>
          Effect.annotateLogs(Effect.logWarning("retention failed, retried at the next run"), { error: error.message })
        ),
        Effect.repeat(options.schedule ?? Schedule.spaced("1 hour")),
        Effect.tapDefect((defect) => Effect.logError("retention stopped", defect))
      )
    )
  )
