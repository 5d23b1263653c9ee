/**
 * Middleware for the command bus: values that wrap every dispatch (see `CommandBus.Middleware`). List
 * them in `CommandBus.layer({ middleware })`, outermost first; a usual order is
 * `[tracing, logging, recoverDefects, timeout(...), authorization(...)]`, so that the span and the log
 * line cover everything and authorization runs closest to the handler.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { CommandDefect, CommandTimeout, CommandValidationError, type Middleware, Unauthorized } from "./CommandBus.js"
import type * as CommandBus from "./CommandBus.js"

/** A user-defined middleware. */
export const make = <R = never>(name: string, wrap: Middleware<R>["wrap"]): Middleware<R> => ({ name, wrap })

/**
 * One structured log line per command: tag, command id, outcome (`success`, the error's tag, or
 * `defect`) and duration; failures at warning level.
 */
export const logging: Middleware = make("logging", (_command, info, next) =>
  Effect.gen(function* () {
    const start = yield* Clock.currentTimeMillis
    const exit = yield* Effect.exit(next)
    const millis = (yield* Clock.currentTimeMillis) - start
    const outcome =
      exit._tag === "Success"
        ? "success"
        : exit.cause._tag === "Fail"
          ? String((exit.cause.error as { _tag?: unknown })?._tag ?? "failure")
          : exit.cause._tag === "Interrupt"
            ? "interrupted"
            : "defect"
    const log = outcome === "success" ? Effect.logInfo : Effect.logWarning
    yield* log(`command ${info.tag} ${outcome}`).pipe(
      Effect.annotateLogs({ command: info.tag, commandId: info.commandId, outcome, durationMs: millis })
    )
    return yield* exit
  })
)

/**
 * A span `CommandBus.dispatch` per command, with its tag and id. The events the command appends carry
 * the span's `traceparent` in their metadata (see `Aggregate`), which links them to it.
 */
export const tracing: Middleware = make("tracing", (_command, info, next) =>
  Effect.withSpan(next, "CommandBus.dispatch", {
    kind: "server",
    attributes: {
      "command.tag": info.tag,
      "command.id": info.commandId,
      ...(info.metadata.correlationId === undefined ? {} : { "command.correlation_id": info.metadata.correlationId })
    },
    captureStackTrace: false
  })
)

/** A defect in a handler (or below) becomes {@link CommandDefect}, logged with its cause; the bus goes on. */
export const recoverDefects: Middleware = make("recoverDefects", (_command, info, next) =>
  Effect.catchAllDefect(next, (defect) =>
    Effect.zipRight(
      Effect.logError(`command ${info.tag} died`, defect),
      Effect.fail(
        new CommandDefect({ commandTag: info.tag, detail: defect instanceof Error ? defect.message : String(defect) })
      )
    )
  )
)

/**
 * Fails a command that takes longer than `limit` (per command tag when a function) with
 * {@link CommandTimeout}; the handler is interrupted. The command may still have been handled: retry it
 * with the same command id.
 */
export const timeout = (limit: Duration.DurationInput | ((tag: string) => Duration.DurationInput)): Middleware =>
  make("timeout", (_command, info, next) => {
    const duration = Duration.decode(typeof limit === "function" ? limit(info.tag) : limit)
    return Effect.timeoutFail(next, {
      duration,
      onTimeout: () => new CommandTimeout({ commandTag: info.tag, timeoutMillis: Duration.toMillis(duration) })
    })
  })

/** Options of {@link authorization}. */
export interface AuthorizationOptions {
  /** Command tag -> roles allowed to issue it (any one suffices). */
  readonly rules: { readonly [tag: string]: ReadonlyArray<string> }
  /** Refuse commands without a rule; default false (they are open). */
  readonly defaultDeny?: boolean
  /**
   * The principal's roles; default: the command context's `roles` metadata (an array of strings), or none.
   * The principal is the command context's `principal`.
   */
  readonly rolesOf?: (info: CommandBus.CommandInfo) => Effect.Effect<ReadonlyArray<string>>
}

/** Role-based authorization: a command whose rule names none of the principal's roles fails with {@link Unauthorized}. */
export const authorization = (options: AuthorizationOptions): Middleware =>
  make("authorization", (_command, info, next) =>
    Effect.gen(function* () {
      const rule = Object.hasOwn(options.rules, info.tag) ? options.rules[info.tag] : undefined
      if (rule === undefined && options.defaultDeny !== true) return yield* next
      const roles = options.rolesOf === undefined ? rolesInMetadata(info) : yield* options.rolesOf(info)
      if (rule !== undefined && rule.some((role) => roles.includes(role))) return yield* next
      return yield* new Unauthorized({
        commandTag: info.tag,
        required: rule ?? [],
        ...(info.metadata.principal === undefined ? {} : { principal: info.metadata.principal })
      })
    })
  )

const rolesInMetadata = (info: CommandBus.CommandInfo): ReadonlyArray<string> => {
  const roles = info.metadata.roles
  return Array.isArray(roles) ? roles.filter((r): r is string => typeof r === "string") : []
}

/** User-defined validation of commands: a problem (a string) fails the command with `CommandValidationError`. */
export const validation = (check: (command: CommandBus.Command, info: CommandBus.CommandInfo) => string | undefined) =>
  make("validation", (command, info, next) => {
    const problem = check(command, info)
    return problem === undefined
      ? next
      : Effect.fail(new CommandValidationError({ commandTag: info.tag, reason: "InvalidCommand", detail: problem }))
  })
