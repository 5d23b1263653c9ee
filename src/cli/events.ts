/**
 * `events`: the log as the store returns it. `events tail` follows the global log live (one line per
 * event, each with the checkpoint to resume from), `events stream ID` prints one stream.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import * as Event from "../Event.js"
import type { EventStore } from "../EventStore.js"
import * as SqlEventStore from "../sql/SqlEventStore.js"
import * as Connection from "./internal/connection.js"
import { CliError, json, print } from "./internal/output.js"

const category = Options.text("category").pipe(
  Options.withDescription("only events of this stream category (repeatable)"),
  Options.repeated
)
const type = Options.text("type").pipe(
  Options.withDescription("only events of this type (repeatable)"),
  Options.repeated
)
const from = Options.text("from").pipe(
  Options.withDescription(
    "where to start: end (new events only), start, or a checkpoint TRANSACTION:POSITION as printed"
  ),
  Options.withDefault("end")
)
const poll = Options.integer("poll").pipe(
  Options.withDescription("milliseconds between reads once caught up"),
  Options.withDefault(250)
)

/** An event as the CLI prints it: a line for people, or the recorded event as JSON. */
const show = (asJson: boolean) => (event: Event.RecordedEvent) =>
  print(
    asJson,
    {
      ...event,
      recordedAt: DateTime.formatIso(event.recordedAt),
      checkpoint: checkpointText(Event.checkpointOf(event))
    },
    (e) =>
      `${e.checkpoint} ${e.streamId}@${e.version} ${e.type} ${e.recordedAt} ${JSON.stringify(e.data)}` +
      (Object.keys(e.metadata).length === 0 ? "" : ` ${JSON.stringify(e.metadata)}`)
  )

const checkpointText = (checkpoint: Event.Checkpoint) => `${checkpoint.transaction}:${checkpoint.position}`

const parseFrom = (text: string): Effect.Effect<Option.Option<Event.Checkpoint>, CliError> => {
  if (text === "end") return Effect.succeedNone
  if (text === "start") return Effect.succeedSome(Event.start)
  const match = /^([0-9]+):([0-9]+)$/.exec(text)
  return match === null
    ? Effect.fail(
        new CliError({ message: `--from takes end, start or TRANSACTION:POSITION, not ${JSON.stringify(text)}` })
      )
    : Effect.succeedSome({ transaction: BigInt(match[1]!), position: BigInt(match[2]!) })
}

/** The event store on the connection's tables, never creating or changing them. */
export const store = (connection: Connection.Connection) =>
  Effect.flatMap(Connection.tableOptions(connection), (tables) =>
    Effect.mapError(
      SqlEventStore.make({ ...tables, migrate: false, commandPruning: false }),
      (error) => new CliError({ message: `cannot open the event store: ${String(error.cause)}` })
    )
  )

/** Runs `f` with the event store of `connection`, once the database answered. */
export const withStore = <A, E, R>(
  connection: Connection.Connection,
  f: (events: EventStore["Type"]) => Effect.Effect<A, E, R>
) => Connection.withDatabase(connection, { create: false }, Effect.scoped(Effect.flatMap(store(connection), f)))

export const storeError = (error: { readonly _tag: string; readonly message: string }) =>
  new CliError({
    message: error._tag === "EventStoreError" ? `the event store failed: ${error.message}` : error.message
  })

/** `events tail`: follows the log from a checkpoint, printing each event as it is committed. */
export const tail = Command.make("tail", { ...Connection.options, category, type, from, poll, json }, (options) =>
  withStore(options, (events) =>
    Effect.gen(function* () {
      const start = yield* parseFrom(options.from)
      const cursor = yield* Ref.make(
        Option.isSome(start) ? start.value : yield* Effect.mapError(events.head, storeError)
      )
      yield* Console.error(`following the log after ${checkpointText(yield* Ref.get(cursor))} (Ctrl-C to stop)`)
      const readOnce = Effect.flatMap(Ref.get(cursor), (after) =>
        events
          .readAll({
            after,
            ...(options.category.length > 0 ? { categories: options.category } : {}),
            ...(options.type.length > 0 ? { types: options.type } : {})
          })
          .pipe(
            Stream.runForEach((event) =>
              Effect.zipRight(show(options.json)(event), Ref.set(cursor, Event.checkpointOf(event)))
            ),
            Effect.mapError(storeError)
          )
      )
      return yield* Effect.forever(Effect.zipRight(readOnce, Effect.sleep(Duration.millis(Math.max(10, options.poll)))))
    })
  )
).pipe(Command.withDescription("follow the global log live, one line per event (Ctrl-C stops)"))

/** `events stream ID`: one stream, in version order. */
export const stream = Command.make(
  "stream",
  { ...Connection.options, json, streamId: Args.text({ name: "stream-id" }) },
  (options) =>
    withStore(options, (events) =>
      events.readStream(options.streamId).pipe(Stream.runForEach(show(options.json)), Effect.mapError(storeError))
    )
).pipe(Command.withDescription("print one stream's events in version order"))

export const command = Command.make("events").pipe(
  Command.withDescription("read the log: follow it live, or print a stream"),
  Command.withSubcommands([tail, stream])
)
