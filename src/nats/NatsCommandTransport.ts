/**
 * The command bus across processes, over NATS request-reply.
 *
 * - {@link serve}: serves a process's `CommandBus` on one subject per command tag,
 *   `<prefix>.<Tag>`, in a queue group, so several instances share the load (each request goes to one).
 * - {@link layerClient}: a `CommandBus` whose `dispatch` sends the command to whichever instance serves
 *   it and returns its result: the same typed signature as the local bus.
 *
 * The wire format and the Gotchas (the server trusts the metadata it receives): {@link serve}.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Event from "../Event.js"
import {
  BusOverloaded,
  type Command,
  CommandBus,
  CommandBusConfigError,
  CommandBusError,
  type CommandClass,
  commandTagOf,
  contextWithCommandId,
  CommandTimeout,
  CommandTransportError,
  CommandValidationError,
  defaultMaxCommandBytes,
  type Failure,
  type Group,
  type Success,
  validateCommand
} from "../CommandBus.js"
import * as RequestReply from "./internal/requestReply.js"
import { Nats } from "./Nats.js"

/** Options shared by both sides. */
export interface Options {
  /** Subject prefix; default `"commands"`. Commands travel on `<prefix>.<Tag>`. */
  readonly subjectPrefix?: string
}

/** Options of {@link serve}. */
export interface ServeOptions extends Options {
  /** Queue group shared by the instances; default `"command-bus"`. */
  readonly queue?: string
  /** Requests handled at once by this instance; default 256. */
  readonly concurrency?: number
  /** Largest request accepted, in bytes; default 1 MiB. */
  readonly maxCommandBytes?: number
}

/** Options of {@link layerClient}. */
export interface ClientOptions extends Options {
  /** The commands this client sends, by group. */
  readonly groups: ReadonlyArray<Group<any>>
  /** How long to wait for a reply; default 10 seconds. */
  readonly timeout?: Duration.DurationInput
}

const Request = Schema.parseJson(Schema.Struct({ command: Schema.Unknown, metadata: Event.Metadata }))

/** The reply of one command: its Exit, with domain and bus errors as failures. */
const replySchema = (command: CommandClass): Schema.Schema<Exit.Exit<unknown, unknown>, string> =>
  Schema.parseJson(
    Schema.Exit({
      success: command.success,
      failure: Schema.Union(command.failure as Schema.Schema.Any, CommandBusError),
      defect: Schema.Defect
    })
  ) as unknown as Schema.Schema<Exit.Exit<unknown, unknown>, string>

const checkSubjects = (prefix: string, tags: ReadonlyArray<string>) => {
  const problems = RequestReply.subjectProblems(prefix, tags, "command")
  return problems.length > 0 ? Effect.fail(new CommandBusConfigError({ problems })) : Effect.void
}

/**
 * Serves the `CommandBus` in context over NATS until the Layer is released: then it unsubscribes and
 * gives requests in progress up to 10 seconds to finish their reply. Requests beyond `concurrency`
 * running and as many waiting are answered at once with `BusOverloaded`.
 *
 * Wire format (JSON): the request is `{ command, metadata }` (the command encoded by its Schema, and the
 * caller's command context: command id, correlation id, principal...); the reply is the encoded `Exit`
 * of the dispatch, whose failures are the command's domain errors or the bus's own errors, so both
 * come back typed. A reply that does not decode is a `CommandTransportError`.
 *
 * **Gotchas**: the server trusts the metadata it receives (the principal and roles that authorization
 * checks): secure the subjects with NATS permissions. A timed-out command may still complete on the
 * server; retrying it with the same command id is safe (the aggregate dedups it). The client fails fast
 * with `CommandTransportError` while disconnected instead of waiting for its timeout. A subscription the
 * server refuses (permissions) fails the serving Layer; permissions taken away later, by a configuration
 * reload, end a queue subscription without the client being told (NATS 2.9): that instance then serves
 * nothing for the command until it is restarted.
 */
export const serve = (options: ServeOptions = {}): Layer.Layer<never, CommandBusConfigError, CommandBus | Nats> =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      const bus = yield* CommandBus
      const nats = yield* Nats
      const prefix = options.subjectPrefix ?? "commands"
      const queue = options.queue ?? "command-bus"
      yield* checkSubjects(prefix, [...bus.commands.map((c) => c._tag), queue])
      yield* RequestReply.serve({
        nats,
        prefix,
        queue,
        concurrency: Math.max(1, options.concurrency ?? 256),
        maxBytes: options.maxCommandBytes ?? defaultMaxCommandBytes,
        span: "CommandBus.serve",
        attribute: "command.tag",
        refuse: (problems) => new CommandBusConfigError({ problems }),
        endpoints: bus.commands.map((command): RequestReply.Endpoint => {
          const invalid = (detail: string) =>
            new CommandValidationError({ commandTag: command._tag, reason: "InvalidCommand", detail })
          return {
            tag: command._tag,
            encode: Schema.encodeEither(replySchema(command)),
            tooLarge: (detail) => new CommandValidationError({ commandTag: command._tag, reason: "TooLarge", detail }),
            overloaded: new BusOverloaded({ commandTag: command._tag }),
            undeliverable: (detail) => new CommandTransportError({ commandTag: command._tag, detail }),
            handle: (text) =>
              Effect.gen(function* () {
                const request = yield* Schema.decodeUnknown(Request)(text).pipe(
                  Effect.mapError((error) => invalid(error.message))
                )
                const decoded = yield* Schema.decodeUnknown(command, { onExcessProperty: "error" })(
                  request.command
                ).pipe(Effect.mapError((error) => invalid(error.message)))
                return yield* bus.dispatch(decoded as Command).pipe(Event.withCommandContext(request.metadata))
              })
          }
        })
      })
    })
  )

/**
 * A `CommandBus` that sends its commands over NATS to the instances serving them. `send` runs the
 * dispatch in the background (in the Layer's scope) and returns its result; it does not queue, the
 * serving instances do (and answer `BusOverloaded` when full).
 */
export const layerClient = (options: ClientOptions): Layer.Layer<CommandBus, CommandBusConfigError, Nats> =>
  Layer.scoped(
    CommandBus,
    Effect.gen(function* () {
      const nats = yield* Nats
      const prefix = options.subjectPrefix ?? "commands"
      const commands = options.groups.flatMap((g) => g.commands)
      yield* checkSubjects(
        prefix,
        commands.map((c) => c._tag)
      )
      const routes = new Map(commands.map((c) => [c._tag, { command: c, reply: Schema.decodeEither(replySchema(c)) }]))
      const timeout = Duration.toMillis(options.timeout ?? "10 seconds")
      const fibers = yield* FiberSet.make<unknown, unknown>()

      const dispatch = <C extends Command>(command: C): Effect.Effect<Success<C>, Failure<C> | CommandBusError> =>
        Effect.gen(function* () {
          const tag = commandTagOf(command)
          const route = routes.get(tag)
          if (route === undefined) {
            return yield* new CommandValidationError({
              commandTag: tag,
              reason: "UnknownCommand",
              detail: "this client does not send this command"
            })
          }
          const { encoded } = yield* validateCommand(route.command, command, defaultMaxCommandBytes)
          const metadata = yield* contextWithCommandId
          const transportError = (detail: string) => new CommandTransportError({ commandTag: tag, detail })
          const reply = yield* RequestReply.request<CommandTimeout | CommandTransportError>(
            nats,
            RequestReply.subjectOf(prefix, tag),
            JSON.stringify({ command: encoded, metadata }),
            timeout,
            {
              timeout: (timeoutMillis) => new CommandTimeout({ commandTag: tag, timeoutMillis }),
              transport: transportError
            }
          )
          return (yield* RequestReply.replied(route.reply(reply), transportError)) as Success<C>
        }).pipe(
          Effect.withSpan("CommandBus.dispatch", {
            kind: "client",
            attributes: { "command.tag": command?._tag },
            captureStackTrace: false
          })
        ) as Effect.Effect<Success<C>, Failure<C> | CommandBusError>

      const send = <C extends Command>(command: C) =>
        Effect.map(FiberSet.run(fibers, dispatch(command)), (fiber) =>
          Effect.flatten(Effect.exit(fiber.await)).pipe(Effect.flatten)
        ) as Effect.Effect<Effect.Effect<Success<C>, Failure<C> | CommandBusError>, CommandBusError>

      return CommandBus.of({ dispatch, send, commands })
    })
  )
