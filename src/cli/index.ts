/**
 * The command-line tool as a library: `Cli.command` (the root command, for a CLI of your own) and
 * `Cli.run`. The executable is the package's `bin`, `effect-eventsourcing`. Needs `@effect/cli` (with
 * `@effect/printer`, `@effect/printer-ansi`), `@effect/platform` and `@effect/platform-node`, and the
 * driver of the database it talks to.
 */
export * as Cli from "./Cli.js"
