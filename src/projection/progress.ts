/**
 * The progress of a partition's catch-up (a first run, a rebuild, a restart behind the head, a live
 * partition that fell a batch behind): how far it got, how fast it goes over a recent window, when it
 * should be live; and its log lines, at a bounded rate. Private to the runner (see `runner`).
 *
 * Progress is measured in **log positions**, not counted events: `total` is the head's position when the
 * catch-up began (moved on as the log grows, see {@link extend}) minus the checkpoint's position then,
 * `done` the checkpoint's position since. Positions are cheap (one `head` read per catch-up, no per-event
 * work) and comparable across stores, but approximate: they count the events of every partition, type and
 * category (a filtered or partitioned projection skips those it does not read, so its `done` leaps), they
 * have gaps (appends rolled back), and on PostgreSQL checkpoints are ordered by (transaction, position), so
 * positions are not commit-ordered (`done` is kept from going back). Counting the events with the store
 * would need a new `EventStore` operation and a scan per status read; the fraction `done / total` and the
 * ETA are what matter, and positions give them.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Event from "../Event.js"

/** A catch-up's progress, as a status shows it (see `Projection.PartitionStatus`). */
export interface Progress {
  /** Log positions handled since the catch-up began (approximately events: see the module doc). */
  readonly done: number
  /** Log positions from where the catch-up began to the head it heads for. */
  readonly total: number
  /** Positions handled per second over about the last 30 seconds; 0 when none were. */
  readonly rate: number
  /** Seconds left at that rate; none while the rate is 0. */
  readonly etaSeconds: Option.Option<number>
}

/** A catch-up in progress, written by its partition's fiber (and its head by the lag sampler). */
export interface Tracker {
  /** The checkpoint's position when the catch-up began. */
  readonly from: bigint
  /** The head's position: where the catch-up heads for. */
  to: bigint
  readonly startedAt: number
  /** Positions handled, never going back. */
  done: number
  /** (time, done) samples at least {@link sampleSpacing} apart over the last {@link window}: the rate's base. */
  readonly samples: Array<{ readonly at: number; readonly done: number }>
  /** When the last progress line was logged (or the catch-up began). */
  loggedAt: number
  /** Whether the end of the catch-up gets a log line (see {@link begin}). */
  announce: boolean
}

/** The window of the rate, in milliseconds. */
const window = 30_000
/** The least time between two samples, in milliseconds (so the samples are about 30). */
const sampleSpacing = 1_000

/**
 * A catch-up from `checkpoint` towards `head`; none if there is nothing to catch up. `announce` says whether
 * its end is logged even though no progress line was (a first catch-up, a rebuild, a restart: not a live
 * partition that fell a batch behind under load, which would log at every such flap).
 */
export const begin = (
  head: Event.Checkpoint,
  checkpoint: Event.Checkpoint,
  now: number,
  announce: boolean
): Option.Option<Tracker> =>
  Event.checkpointOrder(head, checkpoint) <= 0
    ? Option.none()
    : Option.some({
        from: checkpoint.position,
        // on PostgreSQL a head after the checkpoint may have a lower position: at least one position to go
        to: head.position > checkpoint.position ? head.position : checkpoint.position + 1n,
        startedAt: now,
        done: 0,
        samples: [{ at: now, done: 0 }],
        loggedAt: now,
        announce
      })

/** Bookkeeping after a committed batch: O(1), no I/O. */
export const advance = (tracker: Tracker, checkpoint: Event.Checkpoint, now: number): void => {
  const total = Number(tracker.to - tracker.from)
  tracker.done = Math.max(tracker.done, Math.min(total, Number(checkpoint.position - tracker.from)))
  if (now - tracker.samples[tracker.samples.length - 1]!.at < sampleSpacing) return
  tracker.samples.push({ at: now, done: tracker.done })
  while (tracker.samples.length > 1 && tracker.samples[0]!.at < now - window) tracker.samples.shift()
}

/** Moves the target on to a newer head (the log grew during the catch-up). */
export const extend = (tracker: Tracker, head: Event.Checkpoint): void => {
  if (head.position > tracker.to) tracker.to = head.position
}

/** The progress at `now`: the rate since the oldest sample of the window, so a stuck catch-up's rate decays. */
export const view = (tracker: Tracker, now: number): Progress => {
  const total = Number(tracker.to - tracker.from)
  const done = Math.min(total, tracker.done)
  const base = tracker.samples[0]!
  const rate = now > base.at ? (done - base.done) / ((now - base.at) / 1000) : 0
  return {
    done,
    total,
    rate: Math.round(rate * 10) / 10,
    etaSeconds: rate > 0 ? Option.some(Math.ceil((total - done) / rate)) : Option.none()
  }
}

/**
 * Of several partitions' progress, the one expected to finish last (no ETA counts as never; then the most
 * positions left): when the runner will be live.
 */
export const slowest = (all: ReadonlyArray<Progress>): Option.Option<Progress> => {
  const eta = (p: Progress) => Option.getOrElse(p.etaSeconds, () => Infinity)
  let last: Progress | undefined
  for (const p of all) {
    if (last === undefined || eta(p) > eta(last) || (eta(p) === eta(last) && p.total - p.done > last.total - last.done))
      last = p
  }
  return Option.fromNullable(last)
}

/**
 * Logs the progress if the last line is at least `interval` milliseconds old (then the end of the catch-up
 * is logged too). Called after each committed batch: a stuck catch-up logs nothing more.
 */
export const logIfDue = (
  tracker: Tracker,
  now: number,
  interval: number,
  where: { readonly projection: string; readonly partition: number }
): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (now - tracker.loggedAt < interval) return Effect.void
    tracker.loggedAt = now
    tracker.announce = true
    const { done, etaSeconds, rate, total } = view(tracker, now)
    return Effect.log("catching up").pipe(
      Effect.annotateLogs({
        ...where,
        done,
        total,
        rate,
        eta: Option.getOrNull(etaSeconds)
      })
    )
  })

/** Logs the end of the catch-up, if it is to be announced (see {@link begin}). */
export const logLive = (
  tracker: Tracker,
  now: number,
  where: { readonly projection: string; readonly partition: number }
): Effect.Effect<void> =>
  tracker.announce
    ? Effect.log("caught up; live").pipe(
        Effect.annotateLogs({
          ...where,
          done: tracker.done,
          total: Number(tracker.to - tracker.from),
          seconds: Math.round((now - tracker.startedAt) / 100) / 10
        })
      )
    : Effect.void
