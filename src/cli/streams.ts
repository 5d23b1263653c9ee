/**
 * `streams`: a stream's lifecycle (see `EventStore`'s "Stream lifecycle"). `streams delete ID` puts a
 * tombstone on it, `streams undelete ID` lifts it, `streams hard-delete ID` removes its events for good,
 * `streams truncate ID --before N` removes its events below version N. Snapshots are left to
 * `snapshots prune`.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import type { EventStore } from "../EventStore.js"
import { storeError, withStore } from "./events.js"
import * as Connection from "./internal/connection.js"
import { json, print } from "./internal/output.js"

const streamId = Args.text({ name: "stream-id" })
const before = Options.integer("before").pipe(
  Options.withDescription("the first version kept: every event below it is removed")
)

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

export const command = Command.make("streams").pipe(
  Command.withDescription("a stream's lifecycle: delete, undelete, hard-delete, truncate"),
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
    lifecycle(
      "hard-delete",
      "delete a stream for good: its events, unique values and command records; the id is never reused",
      (events, id) => events.hardDeleteStream(id),
      (id) => `${id} deleted for good`
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
    ).pipe(Command.withDescription("remove a stream's events below a version, numbering kept"))
  ])
)
