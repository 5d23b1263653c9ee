// Retention per category and archiving: a scheduled job removes old Session events; an Order stream's old
// events are moved to the archive, out of readAll and plain reads, and read back with includeArchived.
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { EventStore, Retention } from "effect-eventsourcing"

const policies = [
  Retention.policy({ category: "Session", maxAge: "30 days" }),
  Retention.policy({ category: "Audit", maxAge: "365 days", maxCount: 10_000 })
]

// a job in the Layer's scope: once at start, then on the schedule (every hour by default)
export const RetentionLive = Retention.layer(policies, { schedule: Schedule.spaced("6 hours") })

export const program = Effect.gen(function* () {
  // or now, from a job runner of your own (the CLI: `retention apply`)
  const reports = yield* Retention.apply(policies)
  const store = yield* EventStore.EventStore
  // Order-42's events below version 100 leave the log for the archive table; appends continue at its version
  const archived = yield* store.archiveStream("Order-42", { before: 100 })
  const history = yield* Stream.runCollect(store.readStream("Order-42", { includeArchived: true }))
  return { reports, archived, history }
})
