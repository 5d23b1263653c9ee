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
import { errors as NatsErrors, type Msg, type Subscription } from "@nats-io/transport-node"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
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

const subjectOf = (prefix: string, tag: string) => `${prefix}.${tag}`

const checkSubjects = (prefix: string, tags: ReadonlyArray<string>) => {
  const token = /^[A-Za-z0-9_-]+$/
  const problems = [
    ...prefix
      .split(".")
      .filter((t) => !token.test(t))
      .map((t) => `subject prefix token ${JSON.stringify(t)} is not plain`),
    ...tags.filter((t) => !token.test(t)).map((t) => `command tag ${JSON.stringify(t)} cannot be a subject token`)
  ]
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
      const { connection } = yield* Nats
      const prefix = options.subjectPrefix ?? "commands"
      const queue = options.queue ?? "command-bus"
      yield* checkSubjects(prefix, [...bus.commands.map((c) => c._tag), queue])
      const maxBytes = options.maxCommandBytes ?? defaultMaxCommandBytes
      const concurrency = Math.max(1, options.concurrency ?? 256)
      const semaphore = yield* Effect.makeSemaphore(concurrency)
      const requests = yield* FiberSet.make<void>()
      const run = yield* FiberSet.runtime(requests)<never>()
      let inProgress = 0
      const served: Array<Served> = []
      // runs after the subscriptions' finalizers (registered later), before the set interrupts what is left
      yield* Effect.addFinalizer(() =>
        Effect.repeat(FiberSet.size(requests), { until: (n) => n === 0, schedule: Schedule.spaced("10 millis") }).pipe(
          Effect.timeoutOption("10 seconds")
        )
      )
      for (const command of bus.commands) {
        const reply = Schema.encodeEither(replySchema(command))
        const failure = (error: CommandBusError) => Either.getOrElse(reply(Exit.fail(error)), () => "")
        const answer = (msg: Msg, exit: Exit.Exit<unknown, unknown>) =>
          Effect.sync(() => {
            const encoded = Either.match(reply(exit), {
              onLeft: () =>
                failure(
                  new CommandTransportError({ commandTag: command._tag, detail: "the result could not be encoded" })
                ),
              onRight: (json) => json
            })
            // a reply over the server's payload limit cannot be sent: say so instead of leaving the caller waiting
            msg.respond(
              Buffer.byteLength(encoded) <= (connection.info?.max_payload ?? defaultMaxPayload)
                ? encoded
                : failure(
                    new CommandTransportError({ commandTag: command._tag, detail: "the result is too large to send" })
                  )
            )
          })
        const invalid = (detail: string) =>
          new CommandValidationError({ commandTag: command._tag, reason: "InvalidCommand", detail })
        const handle = (msg: Msg) =>
          Effect.gen(function* () {
            if (msg.data.length > maxBytes) {
              return yield* new CommandValidationError({
                commandTag: command._tag,
                reason: "TooLarge",
                detail: `${msg.data.length} bytes, the limit is ${maxBytes}`
              })
            }
            const request = yield* Schema.decodeUnknown(Request)(msg.string()).pipe(
              Effect.mapError((error) => invalid(error.message))
            )
            const decoded = yield* Schema.decodeUnknown(command, { onExcessProperty: "error" })(request.command).pipe(
              Effect.mapError((error) => invalid(error.message))
            )
            return yield* bus.dispatch(decoded as Command).pipe(Event.withCommandContext(request.metadata))
          }).pipe(
            semaphore.withPermits(1),
            Effect.exit,
            Effect.flatMap((exit) => answer(msg, exit)),
            Effect.withSpan("CommandBus.serve", {
              attributes: { "command.tag": command._tag },
              captureStackTrace: false
            })
          )
        // runs inside the client's reader: nothing may throw here (a throw stops it for every subscription)
        const callback = (error: Error | null, msg: Msg) => {
          if (error !== null) return // the server refused the subscription: the Layer fails (below)
          if (inProgress >= 2 * concurrency) {
            // a draining or closed connection refuses the reply: the caller times out, as it would anyway
            Either.try(() => msg.respond(failure(new BusOverloaded({ commandTag: command._tag }))))
            return
          }
          inProgress++
          run(
            Effect.ensuring(
              handle(msg),
              Effect.sync(() => inProgress--)
            )
          )
        }
        const subject = subjectOf(prefix, command._tag)
        served.push({ subject, subscription: connection.subscribe(subject, { queue, callback }) })
      }
      yield* Effect.addFinalizer(() =>
        Effect.sync(() =>
          served.forEach(({ subscription }) => {
            if (!subscription.isClosed()) subscription.unsubscribe()
          })
        )
      )
      // the subscriptions are known to the server before the Layer is up, or refused (permissions)
      yield* Effect.promise(() => connection.flush())
      const refused = yield* Effect.forEach(
        served.filter(({ subscription }) => subscription.isClosed()),
        ({ subject, subscription }) =>
          Effect.map(
            Effect.promise(() => subscription.closed),
            (reason) => `${subject}: ${reasonOf(reason)}`
          )
      )
      if (refused.length > 0) return yield* new CommandBusConfigError({ problems: refused })
    })
  )

/** A command subject this instance serves. */
interface Served {
  readonly subject: string
  readonly subscription: Subscription
}

const reasonOf = (reason: void | Error) => (reason instanceof Error ? reason.message : "refused")

/** NATS's default max payload, for a connection that no longer knows the server's. */
const defaultMaxPayload = 1024 * 1024

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
          if (!(yield* nats.connected)) return yield* transportError("not connected to NATS")
          const msg = yield* Effect.tryPromise({
            try: () =>
              nats.connection.request(subjectOf(prefix, tag), JSON.stringify({ command: encoded, metadata }), {
                timeout
              }),
            catch: (cause) =>
              cause instanceof NatsErrors.TimeoutError ||
              (cause instanceof NatsErrors.RequestError && cause.cause instanceof NatsErrors.TimeoutError)
                ? new CommandTimeout({ commandTag: tag, timeoutMillis: timeout })
                : cause instanceof NatsErrors.RequestError && cause.isNoResponders()
                  ? transportError("no instance serves this command")
                  : transportError(cause instanceof Error ? cause.message : String(cause))
          })
          const exit = route.reply(msg.string())
          if (Either.isLeft(exit)) return yield* transportError(`undecodable reply: ${exit.left.message}`)
          // the server's interruption is not this fiber's
          if (Exit.isInterrupted(exit.right)) return yield* transportError("the command was interrupted on the server")
          return (yield* exit.right) as Success<C>
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
