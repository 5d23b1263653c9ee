/**
 * The command bus: typed commands routed to their handlers, through a middleware chain, synchronously
 * (`dispatch`) or through a bounded queue served by worker fibers (`send`).
 *
 * Commands are `Schema.TaggedRequest` classes: each declares its payload, its success and its failure
 * (domain errors) as Schemas, so a dispatch is typed end to end and can cross a process boundary (see
 * `nats/NatsCommandTransport`). Handlers are registered per {@link group} of commands with
 * `group.toLayer(handlers)`; {@link layer} builds the bus from groups. Bad input never reaches a handler,
 * domain errors are final, transient failures are retried under one command id: the guarantees and
 * Gotchas are on {@link layer}.
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Tracer from "effect/Tracer"
import * as Aggregate from "./Aggregate.js"
import * as Event from "./Event.js"
import type * as EventStore from "./EventStore.js"
import * as Requests from "./internal/requests.js"
import { saysTransient } from "./internal/transient.js"
import * as Uuid from "./internal/uuid.js"
import * as Metrics from "./Metrics.js"

// ---------------------------------------------------------------------------------------------------
// commands
// ---------------------------------------------------------------------------------------------------

/** A command: an instance of a `Schema.TaggedRequest` class. */
export type Command = Schema.TaggedRequest.All

/** What a command succeeds with. */
export type Success<C> = Schema.WithResult.Success<C>

/** The command's domain errors. */
export type Failure<C> = Schema.WithResult.Failure<C>

/** A command class (a `Schema.TaggedRequest`): a Schema of commands, with its success and failure Schemas. */
export interface CommandClass extends Schema.Schema.AnyNoContext {
  readonly _tag: string
  readonly success: Schema.Schema.Any
  readonly failure: Schema.Schema.All
}

// ---------------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------------

/** The command was refused before reaching its handler; nothing ran. */
export class CommandValidationError extends Schema.TaggedError<CommandValidationError>()("CommandValidationError", {
  commandTag: Schema.String,
  reason: Schema.Literal("InvalidCommand", "TooLarge", "UnknownCommand"),
  detail: Schema.String
}) {
  override get message() {
    return `Command ${this.commandTag} refused (${this.reason}): ${this.detail}`
  }
}

/** The principal lacks a role the command requires. */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  commandTag: Schema.String,
  principal: Schema.optional(Schema.String),
  required: Schema.Array(Schema.String)
}) {
  override get message() {
    return `${this.principal ?? "An anonymous caller"} may not ${this.commandTag} (needs ${this.required.join(", ")})`
  }
}

/** The command did not complete in time; it may still complete (retry it with the same command id). */
export class CommandTimeout extends Schema.TaggedError<CommandTimeout>()("CommandTimeout", {
  commandTag: Schema.String,
  timeoutMillis: Schema.Number
}) {
  override get message() {
    return `Command ${this.commandTag} timed out after ${this.timeoutMillis} ms`
  }
}

/** The handler died (a bug); reported by the `recoverDefects` middleware. */
export class CommandDefect extends Schema.TaggedError<CommandDefect>()("CommandDefect", {
  commandTag: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `Command ${this.commandTag} failed unexpectedly: ${this.detail}`
  }
}

/** An infrastructure failure that outlasted the command's retries; retry later with the same command id. */
export class CommandUnavailable extends Schema.TaggedError<CommandUnavailable>()("CommandUnavailable", {
  commandTag: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `Command ${this.commandTag} could not be handled: ${this.detail}`
  }
}

/** The handler failed with an error the command does not declare, and retrying would not help. */
export class CommandFailed extends Schema.TaggedError<CommandFailed>()("CommandFailed", {
  commandTag: Schema.String,
  /** The `_tag` of the handler's error, if it has one. */
  errorTag: Schema.optional(Schema.String),
  detail: Schema.String
}) {
  override get message() {
    return `Command ${this.commandTag} failed: ${this.detail}`
  }
}

/** `send` found the queue full (with `whenFull: "fail"`), or the bus is shutting down. */
export class BusOverloaded extends Schema.TaggedError<BusOverloaded>()("BusOverloaded", {
  commandTag: Schema.String
}) {
  override get message() {
    return `The command bus cannot take ${this.commandTag} now`
  }
}

/** A queued command was dropped unhandled because the bus shut down (`onShutdown: "cancel"`). */
export class CommandCancelled extends Schema.TaggedError<CommandCancelled>()("CommandCancelled", {
  commandTag: Schema.String
}) {
  override get message() {
    return `Command ${this.commandTag} was cancelled: the bus shut down`
  }
}

/** A remote bus could not be reached or answered nonsense (see `NatsCommandTransport`). */
export class CommandTransportError extends Schema.TaggedError<CommandTransportError>()("CommandTransportError", {
  commandTag: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `Command ${this.commandTag} could not be delivered: ${this.detail}`
  }
}

/** Every error the bus itself may fail a command with (beside the command's domain errors). */
export const CommandBusError = Schema.Union(
  CommandValidationError,
  Unauthorized,
  CommandTimeout,
  CommandDefect,
  CommandUnavailable,
  CommandFailed,
  BusOverloaded,
  CommandCancelled,
  CommandTransportError
)
export type CommandBusError = typeof CommandBusError.Type

/** The bus is wired wrong: a command with two handlers, a group with a missing handler... */
export class CommandBusConfigError extends Schema.TaggedError<CommandBusConfigError>()("CommandBusConfigError", {
  problems: Schema.Array(Schema.String)
}) {
  override get message() {
    return `Invalid command bus: ${this.problems.join("; ")}`
  }
}

// ---------------------------------------------------------------------------------------------------
// groups and handlers
// ---------------------------------------------------------------------------------------------------

/** The handler of one command of a group: typed by the command's success; fails with anything. */
export type Handler<C extends Command, R> = (command: C) => Effect.Effect<Success<C>, unknown, R>

/** One handler per command of the union `C`, by tag. */
export type Handlers<C extends Command, R> = {
  readonly [Tag in C["_tag"]]: Handler<Extract<C, { readonly _tag: Tag }>, R>
}

/** A registered handler, with its requirements already provided. */
export interface Route {
  readonly command: CommandClass
  readonly handle: (command: Command) => Effect.Effect<unknown, unknown>
}

/** The service a group's `toLayer` provides: its routes. */
export interface GroupHandlers<C extends Command> {
  readonly _: (_: C) => C
}

/** A set of commands whose handlers are registered together (an aggregate's commands, say). */
export interface Group<C extends Command> {
  readonly commands: ReadonlyArray<CommandClass>
  readonly tag: Context.Tag<GroupHandlers<C>, ReadonlyArray<Route>>
  /** The group's handlers as a Layer; a missing or unknown handler fails the Layer. */
  readonly toLayer: <R>(
    handlers: Handlers<C, R>
  ) => Layer.Layer<GroupHandlers<C>, CommandBusConfigError, Exclude<R, import("effect/Scope").Scope>>
}

/**
 * Groups commands (Schema.TaggedRequest classes) to register their handlers in one call.
 *
 * **Gotchas**: a group's handlers are one service, keyed by its commands' tags: two `toLayer`s of the
 * same group (or of two groups of the same tags) provide the same service, and the last one wins.
 */
export const group = <const Classes extends ReadonlyArray<CommandClass>>(
  ...commands: Classes
): Group<Schema.Schema.Type<Classes[number]>> => {
  type C = Schema.Schema.Type<Classes[number]>
  const tags = commands.map((c) => c._tag)
  const tag = Context.GenericTag<GroupHandlers<C>, ReadonlyArray<Route>>(
    `effect-eventsourcing/CommandBus/Group/${[...tags].sort().join(",")}`
  )
  return {
    commands,
    tag,
    toLayer: <R>(handlers: Handlers<C, R>) =>
      Requests.groupLayer({
        tag,
        classes: commands,
        handlers,
        route: (command, handle): Route => ({ command, handle }),
        refuse: (problems) => new CommandBusConfigError({ problems })
      }) as never
  }
}

/**
 * The command a decider receives when it handles a group's commands (see {@link deciderLayer}): each
 * command's fields but `IdField`, the one naming the aggregate (optional fields stay optional). A bus
 * command is one (it has more), and so is a plain object with those fields (what decider tests write).
 */
export type DeciderCommand<C extends Command, IdField extends string> = C extends unknown
  ? { readonly [K in keyof C as K extends IdField ? never : K extends string ? K : never]: C[K] }
  : never

/**
 * A group's handlers, each handing its command to a decider: the aggregate the command's `idField` names
 * handles it (`Aggregate.handler`: conflicts retried, command ids deduplicated) and the command answers
 * `success(result)`. With it, an aggregate's commands are declared once, as the bus's
 * `Schema.TaggedRequest`s, and its decider's command type is {@link DeciderCommand} of them.
 */
export const deciderLayer = <
  C extends Command,
  const IdField extends Extract<keyof C, string>,
  E extends { readonly _tag: string },
  S,
  DE
>(
  group: Group<C>,
  decider: Aggregate.Decider<DeciderCommand<C, IdField>, E, S, DE>,
  options: {
    /** The field of every command that holds the id of the aggregate it acts on (without its category). */
    readonly idField: IdField
    /** Put before every aggregate id: tests isolate their aggregates with one. */
    readonly idPrefix?: string
    /** The command's answer, from what handling it wrote. */
    readonly success: (result: Aggregate.HandleResult<E>) => Success<C>
  }
): Layer.Layer<GroupHandlers<C>, CommandBusConfigError, EventStore.EventStore> => {
  const handle = Aggregate.handler(decider)
  const prefix = options.idPrefix ?? ""
  const handlers = Object.fromEntries(
    group.commands.map((command) => [
      command._tag,
      (c: C) =>
        Effect.map(
          handle(`${prefix}${String(c[options.idField])}`, c as unknown as DeciderCommand<C, IdField>),
          options.success
        )
    ])
  )
  return group.toLayer(handlers as unknown as Handlers<C, EventStore.EventStore>)
}

// ---------------------------------------------------------------------------------------------------
// middleware
// ---------------------------------------------------------------------------------------------------

/** What middleware knows of the command being dispatched. */
export interface CommandInfo {
  readonly tag: string
  /** The command id: the caller's (`Event.CommandContext`), or one given by the bus. */
  readonly commandId: string
  /** The command context's metadata (principal, correlation id...), with the command id. */
  readonly metadata: Event.CommandContext["Type"]
}

/**
 * A step around every dispatch: `wrap` runs `next` (the rest of the chain and the handler) or not. The
 * first middleware of the list is the outermost.
 */
export interface Middleware<R = never> {
  readonly name: string
  readonly wrap: (
    command: Command,
    info: CommandInfo,
    next: Effect.Effect<unknown, unknown>
  ) => Effect.Effect<unknown, unknown, R>
}

// ---------------------------------------------------------------------------------------------------
// the bus
// ---------------------------------------------------------------------------------------------------

/** The command bus service. */
export class CommandBus extends Context.Tag("effect-eventsourcing/CommandBus")<
  CommandBus,
  {
    /** Validates, runs the middleware and the handler, and returns the command's result. */
    readonly dispatch: <C extends Command>(command: C) => Effect.Effect<Success<C>, Failure<C> | CommandBusError>
    /**
     * Queues the command for the bus's workers; the outer Effect waits for room (or fails, see
     * `SendOptions`), the inner one for the result.
     */
    readonly send: <C extends Command>(
      command: C
    ) => Effect.Effect<Effect.Effect<Success<C>, Failure<C> | CommandBusError>, CommandBusError>
    /** The commands this bus handles (for transports). */
    readonly commands: ReadonlyArray<CommandClass>
  }
>() {}

/** Options of `send`'s queue. */
export interface SendOptions {
  /** Commands waiting at most; default 1,000. */
  readonly capacity?: number
  /** Worker fibers; default 8. */
  readonly workers?: number
  /** A full queue makes `send` wait (default) or fail with {@link BusOverloaded}. */
  readonly whenFull?: "wait" | "fail"
  /** At shutdown, handle what is queued (default) or cancel it with {@link CommandCancelled}. */
  readonly onShutdown?: "drain" | "cancel"
  /** How long a drain may take before the rest is cancelled; default 30 seconds. */
  readonly drainTimeout?: Duration.DurationInput
}

/** Options of {@link layer}. */
export interface Options<Groups extends ReadonlyArray<Group<any>>, R> {
  readonly groups: Groups
  /** Outermost first. */
  readonly middleware?: ReadonlyArray<Middleware<R>>
  /** Retries of transient failures; default 3, exponential from 50 ms, jittered. By command tag too. */
  readonly retry?: Schedule.Schedule<unknown, unknown> | ((tag: string) => Schedule.Schedule<unknown, unknown>)
  /** Which failures are transient (retried); default {@link isTransient}. */
  readonly isTransient?: (error: unknown) => boolean
  readonly send?: SendOptions
  /** Largest encoded command (JSON), in bytes; default 1 MiB. */
  readonly maxCommandBytes?: number
}

/** What a list of groups requires: each one's handlers. */
export type HandlersOf<G> = G extends Group<infer C> ? GroupHandlers<C> : never

const defaultRetry = Schedule.exponential("50 millis").pipe(Schedule.jittered, Schedule.intersect(Schedule.recurs(3)))

/**
 * Builds the bus from its groups' handlers, refusing duplicate and missing handlers when the Layer is built.
 *
 * Guarantees:
 * - **Validation at the boundary**: a command is re-encoded and decoded by its Schema (refinements,
 *   excess properties, size) before anything runs; bad input, however hostile (deeply nested, huge),
 *   fails with {@link CommandValidationError} and reaches no handler.
 * - **Domain errors are final**: a failure matching the command's failure schema is returned as is and
 *   never retried. A transient failure (the store unavailable, a conflict that outlasted the aggregate's
 *   own retries: see `isTransient`) is retried by the command's `Schedule`, then reported as
 *   {@link CommandUnavailable}. Any other failure (a unique value taken that the command does not
 *   declare, an undecodable stored event...) is reported at once as {@link CommandFailed}.
 * - **Idempotency**: each command gets a command id (the caller's, from `Event.CommandContext`, or a
 *   new one) kept across the bus's retries, so the aggregate's command dedup makes a retry safe.
 * - **Metrics**: every dispatch counts in `eventsourcing_commands_total{command,outcome}` and
 *   `eventsourcing_command_duration_seconds{command}` (see `Metrics`); a command the bus does not know is
 *   counted as `(unknown)`.
 * - **Queued commands complete visibly**: every `send` ends in its result, its failure, or
 *   {@link CommandCancelled} when the bus shuts down with `onShutdown: "cancel"`.
 *
 * **Gotchas**: middleware sees every command as `Command` and may fail with the bus's own errors only;
 * defects in handlers are defects unless the `recoverDefects` middleware turns them into
 * {@link CommandDefect}.
 */
export const layer = <const Groups extends ReadonlyArray<Group<any>>, R = never>(
  options: Options<Groups, R>
): Layer.Layer<CommandBus, CommandBusConfigError, HandlersOf<Groups[number]> | R> =>
  Layer.scoped(
    CommandBus,
    Effect.gen(function* () {
      const routes = new Map<string, Route>()
      const problems: Array<string> = []
      for (const g of options.groups) {
        for (const route of yield* g.tag) {
          if (routes.has(route.command._tag)) problems.push(`${route.command._tag} is handled twice`)
          routes.set(route.command._tag, route)
        }
      }
      if (problems.length > 0) return yield* new CommandBusConfigError({ problems })
      const context = yield* Effect.context<R>()
      const middleware = options.middleware ?? []
      const retryOf = (tag: string) =>
        options.retry === undefined
          ? defaultRetry
          : typeof options.retry === "function"
            ? options.retry(tag)
            : options.retry
      const maxBytes = options.maxCommandBytes ?? defaultMaxCommandBytes
      const transient = options.isTransient ?? isTransient

      // the metric label is the command's tag only when the bus knows it: any other tag is caller input
      const metricLabelOf = (tag: string) => (routes.has(tag) ? tag : "(unknown)")

      const dispatch = <C extends Command>(command: C): Effect.Effect<Success<C>, Failure<C> | CommandBusError> =>
        Effect.gen(function* () {
          const tag = commandTagOf(command)
          const route = routes.get(tag)
          if (route === undefined) {
            return yield* new CommandValidationError({
              commandTag: tag,
              reason: "UnknownCommand",
              detail: "no handler is registered for this command"
            })
          }
          const valid = (yield* validateCommand(route.command, command, maxBytes)).command
          const caller = yield* contextWithCommandId
          const commandId = caller.commandId!
          const metadata = { ...caller, correlationId: caller.correlationId ?? commandId }
          const info: CommandInfo = { tag, commandId, metadata }
          const isDomain = Schema.is(route.command.failure as Schema.Schema.Any)
          const core = route.handle(valid).pipe(
            Effect.retry({ schedule: retryOf(tag), while: (error) => !isDomain(error) && transient(error) }),
            Effect.catchIf(
              (error) => !isDomain(error),
              (error) =>
                Effect.fail(
                  transient(error)
                    ? new CommandUnavailable({ commandTag: tag, detail: describe(error) })
                    : new CommandFailed({ commandTag: tag, detail: describe(error), ...tagOf(error) })
                )
            ),
            Event.withCommandContext(metadata)
          )
          const chain = middleware.reduceRight<Effect.Effect<unknown, unknown>>(
            (next, m) => Effect.provide(m.wrap(valid, info, next), context),
            core
          )
          return (yield* chain) as Success<C>
        }).pipe(Metrics.trackCommand(metricLabelOf(commandTagOf(command)))) as Effect.Effect<
          Success<C>,
          Failure<C> | CommandBusError
        >

      const send = yield* makeSend(dispatch, options.send ?? {})
      return CommandBus.of({ dispatch, send, commands: [...routes.values()].map((r) => r.command) })
    })
  ) as Layer.Layer<CommandBus, CommandBusConfigError, HandlersOf<Groups[number]> | R>

/**
 * The command as its Schema sees it, and its encoded form: re-encoded and decoded, excess properties
 * refused, size bounded. For transports: the bus runs it on every dispatch.
 */
export const validateCommand = (
  schema: CommandClass,
  command: unknown,
  maxBytes: number
): Effect.Effect<{ readonly command: Command; readonly encoded: unknown }, CommandValidationError> =>
  Either.match(Requests.validate(schema, command, maxBytes), {
    onLeft: ({ detail, reason }) =>
      Effect.fail(
        new CommandValidationError({
          commandTag: schema._tag,
          reason: reason === "Invalid" ? "InvalidCommand" : reason,
          detail
        })
      ),
    onRight: ({ encoded, request }) => Effect.succeed({ command: request, encoded })
  })

/** Largest encoded command by default: 1 MiB. */
export const defaultMaxCommandBytes = 1024 * 1024

/** The tag of something passed as a command, for errors and routing (it may be hostile input). */
export const commandTagOf: (command: unknown) => string = Requests.requestTagOf

/**
 * The command context with a command id: the caller's, or a new one. The bus and its transports give
 * each command its id once, so every retry of it carries the same one.
 */
export const contextWithCommandId: Effect.Effect<Event.CommandContext["Type"]> = Effect.flatMap(
  Event.CommandContext,
  (context) =>
    context.commandId === undefined
      ? Effect.map(Uuid.v7, (commandId) => ({ ...context, commandId }))
      : Effect.succeed(context)
)

/**
 * The default transient failures: an error that says it is transient (the event store, checkpoint store,
 * saga store or a broker unavailable: see their `transient`), a concurrency conflict that outlasted the
 * aggregate's own retries (handling the command again reloads the stream), a timeout. A failure that says
 * nothing (a handler's own `SqlError`, say) is not retried: map it to an error of yours that says.
 */
export const isTransient = (error: unknown): boolean => {
  const tag = tagOf(error).errorTag
  return saysTransient(error) || tag === "ConcurrencyConflict" || tag === "TimeoutException"
}

const tagOf = Requests.errorTagOf

const describe = Requests.describeError

// ---------------------------------------------------------------------------------------------------
// send
// ---------------------------------------------------------------------------------------------------

interface Job {
  readonly command: Command
  /** The sender's command context, with the command id given at send time. */
  readonly metadata: Event.CommandContext["Type"]
  /** The sender's span: the dispatch continues its trace. */
  readonly parent: Option.Option<Tracer.AnySpan>
  readonly done: Deferred.Deferred<unknown, unknown>
}

const makeSend = (dispatch: (command: Command) => Effect.Effect<unknown, unknown>, options: SendOptions) =>
  Effect.gen(function* () {
    const capacity = Math.max(1, options.capacity ?? 1000)
    // a dropping queue refuses when full (fail fast); a bounded one makes the sender wait
    const queue = yield* options.whenFull === "fail" ? Queue.dropping<Job>(capacity) : Queue.bounded<Job>(capacity)
    const accepting = yield* Ref.make(true)
    // every job not completed yet, queued or running: what a shutdown must cancel
    const pending = new Set<Job>()
    const running = yield* Ref.make(0)
    const cancel = (job: Job) => Deferred.fail(job.done, new CommandCancelled({ commandTag: job.command._tag }))
    const run = (job: Job) =>
      dispatch(job.command).pipe(Event.withCommandContext(job.metadata), (dispatched) =>
        Option.match(job.parent, {
          onNone: () => dispatched,
          onSome: (span) => Effect.withParentSpan(dispatched, span)
        })
      )
    // a job taken is counted as running, and ends completed or cancelled, even when the worker is interrupted
    const worker = Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        const job = yield* restore(Queue.take(queue))
        yield* Ref.update(running, (n) => n + 1)
        const exit = yield* Effect.exit(restore(run(job)))
        yield* Exit.isInterrupted(exit) ? cancel(job) : Deferred.done(job.done, exit)
        pending.delete(job)
        yield* Ref.update(running, (n) => n - 1)
      })
    ).pipe(Effect.forever)
    yield* Effect.forkScoped(
      Effect.all(
        Array.from({ length: Math.max(1, options.workers ?? 8) }, () => worker),
        { concurrency: "unbounded", discard: true }
      )
    )
    // runs before the workers are interrupted (finalizers run in reverse order)
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        yield* Ref.set(accepting, false)
        if (options.onShutdown !== "cancel") {
          const idle = Effect.map(Effect.zip(Queue.size(queue), Ref.get(running)), ([size, n]) => size <= 0 && n === 0)
          yield* Effect.repeat(idle, { until: (done) => done, schedule: Schedule.spaced(Duration.millis(5)) }).pipe(
            Effect.timeoutOption(options.drainTimeout ?? "30 seconds")
          )
        }
        yield* Effect.forEach([...pending], cancel, { discard: true })
        pending.clear()
        yield* Queue.shutdown(queue)
      })
    )
    return <C extends Command>(
      command: C
    ): Effect.Effect<Effect.Effect<Success<C>, Failure<C> | CommandBusError>, CommandBusError> =>
      Effect.gen(function* () {
        const tag = commandTagOf(command)
        if (!(yield* Ref.get(accepting))) return yield* new BusOverloaded({ commandTag: tag })
        const job: Job = {
          command,
          metadata: yield* contextWithCommandId,
          parent: yield* Effect.option(Effect.currentSpan),
          done: yield* Deferred.make<unknown, unknown>()
        }
        pending.add(job)
        // a shutdown interrupts a sender waiting for room: its job is cancelled by then
        const offered = yield* Queue.offer(queue, job).pipe(Effect.catchAllCause(() => Effect.succeed(true)))
        if (!offered) {
          pending.delete(job)
          return yield* new BusOverloaded({ commandTag: tag })
        }
        return Deferred.await(job.done) as Effect.Effect<Success<C>, Failure<C> | CommandBusError>
      })
  })
