/**
 * What a projection runner reports about itself: the status of its owned partitions and the runner's
 * summary (state, lag, progress), and the in-process registry the HTTP API and health checks read.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import type * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as Event from "../Event.js"
import type * as EventStore from "../EventStore.js"
import type { Cell, Runtime } from "./batch.js"
import * as Progress from "./progress.js"

/** `catching-up` and `live` are healthy; `stalled` retries a store failure; `failed` halted on a poison event. */
export type State = "starting" | "catching-up" | "live" | "stalled" | "failed" | "idle"

/** One owned partition, as this worker sees it. */
export interface PartitionStatus {
  readonly partition: number
  readonly state: State
  readonly checkpoint: Event.Checkpoint
  /** Events handled (or dead-lettered) by this worker. */
  readonly processed: number
  readonly lastError: Option.Option<string>
  /** When the last handled event was recorded. */
  readonly lastEventAt: Option.Option<DateTime.Utc>
  /** When the oldest event of the batch being handled was recorded (none between batches). */
  readonly pendingSince: Option.Option<DateTime.Utc>
  /**
   * Once live: events of this partition committed but not readable yet, held back by an older open
   * transaction (PostgreSQL, see `EventStore.HeldBack`), as the lag sampler last saw them. Held back for
   * longer than `RunOptions.stallAfter`, the partition reports itself `stalled`, naming the blocker.
   */
  readonly heldBack: Option.Option<EventStore.HeldBack>
  /**
   * While the partition catches up (a first run, a rebuild, a restart behind the head, or more than a batch
   * behind once live): log positions done of the total between where the catch-up began and the head
   * (approximately events: positions count every partition, type and category, and have gaps), the rate in
   * positions per second over about the last 30 seconds, and the seconds left at that rate (none while the
   * rate is 0). None once live.
   */
  readonly progress: Option.Option<Progress.Progress>
}

/** A runner's status. */
export interface Status {
  readonly name: string
  readonly version: number
  readonly worker: string
  /** The worst state of the owned partitions (`idle` when it owns none). */
  readonly state: State
  readonly partitions: number
  readonly owned: ReadonlyArray<PartitionStatus>
  /**
   * How far behind the owned partitions are: positions between the farthest behind's checkpoint and the
   * head (events of every partition and type, give or take rolled-back positions), plus the events held
   * back, and, in seconds, the age of the oldest event of a batch being
   * handled (for the outbox relay: of the oldest unpublished event) or else of the last handled event;
   * 0 once caught up. A runner reading a hot standby (`SqlEventStore.layerStandby`) is behind the primary by
   * the standby's lag too: its seconds are at least the `replica`'s.
   */
  readonly lag: { readonly events: number; readonly seconds: number }
  /**
   * When the runner reads a PostgreSQL hot standby: how far behind its primary the standby is (see
   * `EventStore.ReplicationLag`); none otherwise, or when it could not be read.
   */
  readonly replica: Option.Option<EventStore.ReplicationLag>
  /**
   * While owned partitions catch up: the progress of the one expected to finish last (the longest ETA, see
   * `PartitionStatus.progress`), i.e. when the runner will be live. None once they all are.
   */
  readonly progress: Option.Option<Progress.Progress>
  readonly lastError: Option.Option<string>
  /** The tenant the runner runs for (see `Tenancy`), if any. */
  readonly tenant: Option.Option<string>
}

/** The in-process registry of runner statuses (for the HTTP API and health checks). */
export class Registry extends Context.Tag("effect-eventsourcing/ProjectionRegistry")<
  Registry,
  {
    /** Adds a runner's status for the scope's lifetime. */
    readonly add: (status: Effect.Effect<Status>) => Effect.Effect<void, never, Scope.Scope>
    readonly statuses: Effect.Effect<ReadonlyArray<Status>>
  }
>() {}

export const layerRegistry: Layer.Layer<Registry> = Layer.sync(Registry, () => {
  const entries = new Set<Effect.Effect<Status>>()
  return Registry.of({
    add: (status) =>
      Effect.acquireRelease(
        Effect.sync(() => entries.add(status)),
        () => Effect.sync(() => entries.delete(status))
      ),
    statuses: Effect.suspend(() => Effect.all([...entries]))
  })
})

/** A partition cell as its status: what the lag sampler saw behind the horizon counts while it is live (until the next sample). */
export const snapshot = (cell: Cell, now: number): PartitionStatus => ({
  ...cell,
  heldBack: cell.state === "live" ? cell.heldBack : Option.none(),
  progress: Option.map(cell.progress, (tracker) => Progress.view(tracker, now))
})

const severity: ReadonlyArray<State> = ["failed", "stalled", "starting", "catching-up", "live"]

/** A live partition whose events wait behind the read horizon for longer than `stallAfter` is stalled. */
const heldBackTooLong = (p: PartitionStatus, now: number, stallAfter: number): PartitionStatus => {
  if (p.state !== "live" || Option.isNone(p.heldBack)) return p
  const { blocker, events, since } = p.heldBack.value
  const waited = now - since.epochMillis
  if (waited <= stallAfter) return p
  return {
    ...p,
    state: "stalled",
    lastError: Option.some(
      `${events} committed event(s) held back for ${Math.round(waited / 1000)} s by the read horizon` +
        Option.match(blocker, { onNone: () => "", onSome: (b) => `: the oldest open transaction is ${b}` })
    )
  }
}

/** The runner's status from its owned partitions' cells. */
export const status = <A, E, R>(
  rt: Runtime<A, E, R>,
  cells: () => ReadonlyArray<Cell>
): Effect.Effect<Omit<Status, "tenant">> =>
  Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    const owned = cells()
      .map((cell) => heldBackTooLong(snapshot(cell, now), now, rt.stallAfter))
      .sort((a, b) => a.partition - b.partition)
    const head = yield* Effect.option(rt.events.head)
    let events = 0
    // positions count every partition's events: the farthest partition behind is the backlog (summing
    // the distances would count the events between them once per partition)
    let behindInLog = 0
    let seconds = 0
    for (const p of owned) {
      if (Option.isSome(p.heldBack)) {
        events += p.heldBack.value.events
        seconds = Math.max(seconds, (now - p.heldBack.value.since.epochMillis) / 1000)
      }
      if (p.state === "live" || Option.isSome(p.heldBack)) continue
      if (Option.isSome(head)) behindInLog = Math.max(behindInLog, Number(head.value.position - p.checkpoint.position))
      // a batch that cannot be handled (a broker outage) shows the age of its oldest event
      const behind = Option.orElse(p.pendingSince, () => p.lastEventAt)
      if (Option.isSome(behind)) seconds = Math.max(seconds, (now - behind.value.epochMillis) / 1000)
    }
    const state = owned.length === 0 ? "idle" : severity.find((s) => owned.some((p) => p.state === s))!
    const replica =
      rt.events.replication === undefined ? Option.none() : Option.flatten(yield* Effect.option(rt.events.replication))
    if (Option.isSome(replica)) seconds = Math.max(seconds, replica.value.seconds)
    return {
      name: rt.def.name,
      version: rt.def.version,
      worker: rt.worker,
      state,
      partitions: rt.def.partitions,
      owned,
      lag: { events: events + behindInLog, seconds },
      replica,
      progress: Progress.slowest(owned.flatMap((p) => Option.toArray(p.progress))),
      lastError: Option.firstSomeOf(owned.map((p) => p.lastError))
    }
  })
