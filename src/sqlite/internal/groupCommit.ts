/**
 * Group commit on SQLite: appends made concurrently outside a caller's transaction share one transaction,
 * each in a savepoint of its own, so that each is checked and refused on its own while the group pays for
 * one commit (with `synchronous = FULL`, one sync of the write-ahead log) instead of one per append.
 *
 * An append arriving while no group is written gathers (see `Batcher` `gather`): its caller yields once, so
 * that the callers ready beside it join it (the driver is synchronous: run at once, it would commit before
 * they could), then writes the group in its own fiber. Appends arriving while a group is written go to the
 * one writer fiber and form the next group. An append inside a
 * caller's transaction joins that transaction. With `Sqlite.layer`'s hot path, a group of common appends is
 * one synchronous transaction, and any other group is first written without savepoints (see `fastAppend`).
 *
 * @internal
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { EventStoreError } from "../../EventStore.js"
import type { PreparedAppend } from "../../internal/appendPreparation.js"
import * as Metrics from "../../Metrics.js"
import * as Batcher from "../../sql/internal/batcher.js"
import type { EventsDialect, EventsOptions } from "../../sql/internal/dialect.js"
import * as FastAppendModule from "./fastAppend.js"

/** The fast append (see `fastAppend`), given the append it hands what it does not do to. */
type FastAppend = ReturnType<typeof FastAppendModule.make>

type AppendExit = Exit.Exit<
  Effect.Effect.Success<ReturnType<EventsDialect["append"]>>,
  Effect.Effect.Error<ReturnType<EventsDialect["append"]>>
>

/** Appends per group, by default: enough to amortize a commit, few enough to keep a group's latency short. */
const defaultMaxBatch = 64

/** `events` with its appends grouped, unless `groupCommit` is `false`. */
export const make = (
  events: EventsDialect,
  { groupCommit, transaction }: EventsOptions,
  fast: FastAppend | undefined
): Effect.Effect<EventsDialect, never, Scope.Scope> =>
  Effect.gen(function* () {
    if (groupCommit === false) return events
    /**
     * A group's appends in one transaction, with the fast append if there is one, first without savepoints;
     * if an append needs them (see `fastAppend`), the group is rolled back and written again with them.
     */
    const group = (appends: ReadonlyArray<PreparedAppend>) => {
      if (fast === undefined)
        return transaction(Effect.forEach(appends, (append) => Effect.exit(events.append(append))))
      const attempt = (savepoints: boolean) =>
        transaction(
          Effect.flatMap(
            Effect.forEach(appends, (append) => Effect.exit(fast.append(append, events.append, savepoints))),
            (exits) =>
              exits.some(FastAppendModule.isNeedsSavepointsExit)
                ? Effect.fail(new FastAppendModule.NeedsSavepoints())
                : // none needs them: their failures are the appends' own
                  Effect.succeed(exits as ReadonlyArray<AppendExit>)
          )
        )
      return attempt(false).pipe(
        Effect.catchIf(FastAppendModule.isNeedsSavepoints, () => attempt(true)),
        // written with savepoints, no append asks for them
        Effect.catchIf(FastAppendModule.isNeedsSavepoints, (error) => Effect.die(error))
      )
    }
    const grouped = yield* Batcher.make({
      maxBatch: Math.max(1, groupCommit?.maxBatch ?? defaultMaxBatch),
      // one connection: one transaction at a time
      writers: 1,
      gather: true,
      // the group's appends share a transaction (see `group`); without the fast append, one alone is its
      // own transaction
      run: (appends: ReadonlyArray<PreparedAppend>) =>
        Effect.zipRight(
          Metric.update(Metrics.appendBatchSize, appends.length),
          fast === undefined
            ? appends.length === 1
              ? Effect.exit(events.append(appends[0]!)).pipe(Effect.map((exit) => [exit]))
              : group(appends)
            : // the common group in one synchronous step, else the Effect way
              Effect.flatMap(fast.group(appends), (exits): ReturnType<typeof group> =>
                exits === undefined ? group(appends) : Effect.succeed(exits)
              )
        ),
      closed: () => new EventStoreError({ operation: "append", cause: new Error("the event store was closed") })
    })
    return {
      ...events,
      append: (append) =>
        Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (transaction) =>
          Option.isSome(transaction) ? events.append(append) : grouped(append)
        )
    }
  })
