/**
 * `streams`: a stream's lifecycle (see `EventStore`'s "Stream lifecycle"). `streams delete ID` puts a
 * tombstone on it, `streams undelete ID` lifts it, `streams hard-delete ID` removes its events for good,
 * `streams truncate ID --before N` removes its events below version N, `streams archive ID [--before N]`
 * moves them to the archive. A hard delete deletes the stream's snapshots too, where the snapshot store's
 * tables exist. `retention apply` applies a category's retention policy once (see `Retention`).
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { EventStore } from "../EventStore.js"
import * as Retention from "../Retention.js"
import { status, tables } from "../sql/migrations.js"
import * as SqlSnapshotStore from "../sql/SqlSnapshotStore.js"
import { storeError, withStore } from "./events.js"
import * as Connection from "./internal/connection.js"
import { CliError, json, print } from "./internal/output.js"

const streamId = Args.text({ name: "stream-id" })
const before = Options.integer("before").pipe(
  Options.withDescription("the first version kept: every event below it is removed")
)

/** Deletes the stream's snapshots, if the snapshot store's tables exist (`null` when they do not). */
const deleteSnapshots = (connection: Connection.Connection, id: string) =>
  Effect.gen(function* () {
    const options = yield* Connection.tableOptions(connection)
    const t = yield* Effect.mapError(tables(options), (error) => new CliError({ message: String(error.cause) }))
    const applied = yield* Effect.mapError(status(t, "snapshots"), (error) => new CliError({ message: error.message }))
    if (applied.applied.length === 0) return null
    const store = yield* Effect.mapError(
      SqlSnapshotStore.make({ ...options, migrate: false }),
      (error) => new CliError({ message: `the snapshot store failed: ${String(error.cause)}` })
    )
    return yield* Effect.mapError(
      store.deleteStream(id),
      (error) => new CliError({ message: `the snapshot store failed: ${error.message}` })
    )
  })

/** A command running `operation` on the stream, then printing what it did. */
const lifecycle = <A>(
  name: string,
  description: string,
  operation: (events: EventStore["Type"], streamId: string) => Effect.Effect<A, { _tag: string; message: string }>,
  done: (streamId: string, result: A) => string
) =>
  Command.make(name, { ...Connection.options, json, streamId }, (options) =>
    withStore(options, (events) =>
      Effect.flatMap(Effect.mapError(operation(events, options.streamId), storeError), (result) =>
        print(options.json, { streamId: options.streamId, result: result ?? null }, () =>
          done(options.streamId, result)
        )
      )
    )
  ).pipe(Command.withDescription(description))

/** `streams archive`: moves a stream's events (below a version, or all) to the archive. */
const archive = Command.make(
  "archive",
  {
    ...Connection.options,
    json,
    streamId,
    before: Options.integer("before").pipe(
      Options.withDescription("archive the events below this version (default: all of them)"),
      Options.optional
    )
  },
  (options) =>
    withStore(options, (events) =>
      Effect.flatMap(
        Effect.mapError(
          events.archiveStream(
            options.streamId,
            Option.match(options.before, { onNone: () => ({}), onSome: (before) => ({ before }) })
          ),
          storeError
        ),
        (archived) =>
          print(
            options.json,
            { streamId: options.streamId, archived },
            (r) => `${r.streamId}: ${r.archived} events archived`
          )
      )
    )
).pipe(Command.withDescription("move a stream's events to the archive table, out of reads unless asked for"))

export const command = Command.make("streams").pipe(
  Command.withDescription("a stream's lifecycle: delete, undelete, hard-delete, truncate, archive"),
  Command.withSubcommands([
    lifecycle(
      "delete",
      "soft-delete a stream: appends and reads refused, events kept (undo with undelete)",
      (events, id) => events.deleteStream(id),
      (id) => `${id} deleted (soft)`
    ),
    lifecycle(
      "undelete",
      "undo a soft delete",
      (events, id) => events.undeleteStream(id),
      (id) => `${id} undeleted`
    ),
    Command.make("hard-delete", { ...Connection.options, json, streamId }, (options) =>
      withStore(options, (events) =>
        Effect.gen(function* () {
          yield* Effect.mapError(events.hardDeleteStream(options.streamId), storeError)
          const snapshots = yield* deleteSnapshots(options, options.streamId)
          yield* print(
            options.json,
            { streamId: options.streamId, snapshots },
            (r) => `${r.streamId} deleted for good` + (r.snapshots === null ? "" : `, with ${r.snapshots} snapshots`)
          )
        })
      )
    ).pipe(
      Command.withDescription(
        "delete a stream for good: its events, unique values, command records and snapshots; the id is never reused"
      )
    ),
    Command.make("truncate", { ...Connection.options, json, streamId, before }, (options) =>
      withStore(options, (events) =>
        Effect.flatMap(
          Effect.mapError(events.truncateStream(options.streamId, options.before), storeError),
          (removed) =>
            print(
              options.json,
              { streamId: options.streamId, removed },
              (r) => `${r.streamId}: ${r.removed} events removed`
            )
        )
      )
    ).pipe(Command.withDescription("remove a stream's events below a version, numbering kept")),
    archive
  ])
)

/** `retention apply`: applies one category's retention policy now (see `Retention.apply`). */
const apply = Command.make(
  "apply",
  {
    ...Connection.options,
    json,
    category: Options.text("category").pipe(Options.withDescription("the streams' category")),
    maxAge: Options.text("max-age").pipe(
      Options.withDescription("remove the events older than this duration, such as '30 days'"),
      Options.optional
    ),
    maxCount: Options.integer("max-count").pipe(
      Options.withDescription("keep at most this many of each stream's last events"),
      Options.optional
    )
  },
  (options) =>
    Effect.gen(function* () {
      const maxAge = Option.map(options.maxAge, (text) => [text, Duration.decodeUnknown(text)] as const)
      if (Option.isSome(maxAge) && Option.isNone(maxAge.value[1])) {
        return yield* new CliError({
          message: `--max-age takes a duration such as '30 days', not ${JSON.stringify(maxAge.value[0])}`
        })
      }
      if (Option.isNone(options.maxAge) && Option.isNone(options.maxCount)) {
        return yield* new CliError({ message: "say what to keep: --max-age DURATION and/or --max-count N" })
      }
      if (Option.isSome(options.maxCount) && options.maxCount.value < 1) {
        return yield* new CliError({ message: "--max-count must be at least 1" })
      }
      const policy = Retention.policy({
        category: options.category,
        ...Option.match(
          Option.flatMap(maxAge, ([, age]) => age),
          {
            onNone: () => ({}),
            onSome: (age) => ({ maxAge: age })
          }
        ),
        ...Option.match(options.maxCount, { onNone: () => ({}), onSome: (maxCount) => ({ maxCount }) })
      })
      yield* withStore(options, (events) =>
        Effect.flatMap(
          Effect.mapError(Effect.provideService(Retention.apply([policy]), EventStore, events), storeError),
          ([report]) =>
            print(options.json, report!, (r) => `${r.category}: ${r.events} events removed from ${r.streams} streams`)
        )
      )
    })
).pipe(Command.withDescription("apply a category's retention policy now: truncate its streams by age and count"))

export const retention = Command.make("retention").pipe(
  Command.withDescription("retention per category: remove old events"),
  Command.withSubcommands([apply])
)
