/**
 * A projection partition's lag gauges (`Metrics.projectionLagSeconds`, `Metrics.projectionLagEvents`) and
 * the sampler that keeps them current between commits, also for partitions that commit nothing.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Metrics from "../Metrics.js"
import { type Cell, readBatch, readFilters, type Runtime } from "./batch.js"
import * as Progress from "./progress.js"
import type { Definition } from "./runner.js"

/** A partition's lag gauges (see `Metrics.projectionLagSeconds`, `Metrics.projectionLagEvents`). */
export const lagGauges = <A, E, R>(def: Definition<A, E, R>, partition: number) => {
  const tagged = (gauge: Metric.Metric.Gauge<number>) =>
    Metric.tagged(
      Metric.tagged(Metric.tagged(gauge, "projection", def.name), "version", String(def.version)),
      "partition",
      String(partition)
    )
  return { seconds: tagged(Metrics.projectionLagSeconds), events: tagged(Metrics.projectionLagEvents) }
}

/**
 * Samples the lag gauges of the owned partitions. A live one has read all it can: its events held back
 * behind the read horizon, if any (`EventStore.heldBack`: how many, and the age of the oldest), else 0.
 * Otherwise, if an event waits, the positions between the checkpoint and the head, and the age of the
 * oldest waiting event (so a stalled or halted partition shows a growing lag even though it commits
 * nothing). One `head` read, then per partition one `heldBack` (live) or a read of one event (not live).
 */
export const sampleLag = <A, E, R>(rt: Runtime<A, E, R>, owned: () => ReadonlyArray<Cell>): Effect.Effect<void> =>
  Effect.gen(function* () {
    if (owned().length === 0) return
    const head = yield* rt.events.head
    for (const cell of owned()) {
      // the log grew meanwhile: a catch-up heads for the new head
      if (Option.isSome(cell.progress)) Progress.extend(cell.progress.value, head)
      const gauges = lagGauges(rt.def, cell.partition)
      const checkpoint = cell.checkpoint
      const live = cell.state === "live"
      const waiting = live ? [] : yield* readBatch(rt, cell, checkpoint, 1)
      // a live partition has read all it can: events may still wait behind the read horizon
      const heldBack = live ? yield* rt.events.heldBack(readFilters(rt, cell)) : Option.none()
      // dropped meanwhile: its gauges were reset, and are another worker's now
      if (!owned().includes(cell)) continue
      const wasHeldBack = Option.isSome(cell.heldBack)
      cell.heldBack = heldBack
      const now = yield* Clock.currentTimeMillis
      if (Option.isSome(heldBack)) {
        yield* Metric.set(gauges.events, heldBack.value.events)
        yield* Metric.set(gauges.seconds, Math.max(0, now - heldBack.value.since.epochMillis) / 1000)
        continue
      }
      if (waiting.length === 0) {
        yield* Metric.set(gauges.events, 0)
        // a live partition's seconds are its own (set as it commits), unless they showed a stall now over
        if (!live || wasHeldBack) yield* Metric.set(gauges.seconds, 0)
        continue
      }
      yield* Metric.set(gauges.events, Math.max(1, Number(head.position - checkpoint.position)))
      yield* Metric.set(gauges.seconds, Math.max(0, now - waiting[0]!.recordedAt.epochMillis) / 1000)
    }
  }).pipe(Effect.catchAllCause((cause) => Effect.logDebug("could not sample the projection lag", cause)))

export const resetLag = <A, E, R>(rt: Runtime<A, E, R>, partition: number) =>
  Effect.suspend(() => {
    const gauges = lagGauges(rt.def, partition)
    return Effect.zipRight(Metric.set(gauges.events, 0), Metric.set(gauges.seconds, 0))
  })
