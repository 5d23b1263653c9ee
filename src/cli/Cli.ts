/**
 * The command-line tool (the package's `bin`, `effect-eventsourcing`), built with `@effect/cli`: help on
 * every command (`--help`), completions (`--completions bash|zsh|fish|sh`) and a wizard (`--wizard`). It
 * talks to the database only (`--url`), so it runs beside the application, not inside it.
 *
 * Errors are one line on stderr and exit code 1; a command that failed changed nothing, except `prune`
 * commands, which delete in batches (what they deleted stays deleted: harmless, and done again by the
 * next run).
 */
import * as CliCommand from "@effect/cli/Command"
import type * as CliApp from "@effect/cli/CliApp"
import type * as ValidationError from "@effect/cli/ValidationError"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Events from "./events.js"
import * as Housekeeping from "./housekeeping.js"
import { CliError } from "./internal/output.js"
import * as Keys from "./keys.js"
import * as Migrate from "./migrate.js"
import * as Operations from "./operations.js"
import * as Schema from "./schema.js"
import * as Streams from "./streams.js"

export { CliError } from "./internal/output.js"

/** The root command, for embedding in a CLI of your own. */
export const command = CliCommand.make("effect-eventsourcing").pipe(
  CliCommand.withDescription("operate effect-eventsourcing's SQL stores"),
  CliCommand.withSubcommands([
    Migrate.command,
    Events.command,
    Streams.command,
    Streams.retention,
    Operations.projections,
    Operations.deadLetters,
    Operations.sagas,
    Housekeeping.snapshots,
    Housekeeping.commands,
    Schema.command,
    Keys.command
  ])
)

/**
 * Runs the CLI on `argv` (as `process.argv`). A `CliError` is printed as one line on stderr; the effect
 * then fails, so that the process exits with code 1 (`NodeRuntime.runMain` with error reporting off).
 * Logs go to stderr, in logfmt.
 */
export const run = (
  argv: ReadonlyArray<string>,
  version: string
): Effect.Effect<void, CliError | ValidationError.ValidationError, CliApp.CliApp.Environment> =>
  CliCommand.run(command, { name: "effect-eventsourcing", version })(argv).pipe(
    Effect.tapError((error) => (error instanceof CliError ? Console.error(`error: ${error.message}`) : Effect.void)),
    // logs (the stores', the runners') go to stderr: stdout is the commands' output
    Effect.provide(Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger)))
  )
