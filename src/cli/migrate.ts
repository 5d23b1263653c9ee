/**
 * `migrate`: the tables of every SQL service. `migrate sql` prints their DDL for a dialect without a
 * database (for users who apply migrations with their own tool), `migrate up` applies what is pending,
 * `migrate status` says what is applied.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Migrations from "../sql/migrations.js"
import * as Connection from "./internal/connection.js"
import { CliError, json, print, table } from "./internal/output.js"
import * as RecordingClient from "./internal/recordingClient.js"

const dialect = Options.choice("dialect", ["pg", "sqlite", "mysql"]).pipe(
  Options.withDescription("the SQL dialect to print")
)

/**
 * `migrate sql --dialect D`: the statements `migrate up` would run on an empty database, with the
 * migrations tables' records, so that stores started on it later find their migrations applied. Apply the
 * output with `psql -v ON_ERROR_STOP=1`, `mariadb` or `sqlite3`.
 */
export const sql = Command.make(
  "sql",
  { dialect, schema: Connection.options.schema, tablePrefix: Connection.options.tablePrefix },
  (options) =>
    Effect.gen(function* () {
      if (Option.isSome(options.schema) && options.dialect !== "pg") {
        return yield* new CliError({ message: "--schema is PostgreSQL-only; use --table-prefix" })
      }
      const t = yield* Effect.mapError(
        Migrations.tables({
          tablePrefix: options.tablePrefix,
          ...Option.match(options.schema, { onNone: () => ({}), onSome: (schema) => ({ schema }) })
        }),
        (error) => new CliError({ message: String(error.cause) })
      )
      const recorder = yield* RecordingClient.make(options.dialect)
      for (const service of Migrations.services) {
        yield* Effect.orDie(
          Migrations.migrate(t, service, { lock: false }).pipe(
            Effect.provideService(SqlClient.SqlClient, recorder.client),
            // nothing is applied: no "applied migration" lines
            Logger.withMinimumLogLevel(LogLevel.Warning)
          )
        )
      }
      // the Migrator's reads (probes of its table) and savepoints are left out: the script only writes
      const script = recorder.statements
        .map((statement) => statement.trim())
        .filter((s) => !/^(select|savepoint|release)\b/i.test(s))
      yield* Console.log(script.map((statement) => `${statement};\n`).join("\n"))
    })
).pipe(Command.withDescription("print the DDL of every service's tables for a dialect, without a database"))

/** `migrate up`: applies the pending migrations of every service. */
export const up = Command.make("up", { ...Connection.options, json }, (options) =>
  Connection.withDatabase(
    options,
    { create: true },
    Effect.gen(function* () {
      const t = yield* Effect.flatMap(Connection.tableOptions(options), (o) =>
        Effect.mapError(Migrations.tables(o), (e) => new CliError({ message: String(e.cause) }))
      )
      const applied: Array<{ service: Migrations.Service; migrations: ReadonlyArray<Migrations.Migration> }> = []
      for (const service of Migrations.services) {
        const before = yield* migrationError(Migrations.status(t, service))
        yield* migrationError(Migrations.migrate(t, service))
        applied.push({ service, migrations: before.pending })
      }
      yield* print(options.json, applied, (rows) =>
        rows.map(({ migrations, service }) =>
          migrations.length === 0
            ? `${service}: up to date`
            : `${service}: applied ${migrations.map((m) => `${m.id}_${m.name}`).join(", ")}`
        )
      )
    })
  )
).pipe(Command.withDescription("apply the pending migrations of every service"))

/** `migrate status`: what is applied and what is pending, per service. */
export const status = Command.make("status", { ...Connection.options, json }, (options) =>
  Connection.withDatabase(
    options,
    { create: false },
    Effect.gen(function* () {
      const t = yield* Effect.flatMap(Connection.tableOptions(options), (o) =>
        Effect.mapError(Migrations.tables(o), (e) => new CliError({ message: String(e.cause) }))
      )
      const statuses = yield* migrationError(Effect.forEach(Migrations.services, (s) => Migrations.status(t, s)))
      const name = (m: Migrations.Migration) => `${m.id}_${m.name}`
      yield* print(options.json, statuses, (rows) =>
        table(
          ["service", "applied", "pending"],
          rows.map((s) => [s.service, s.applied.map(name).join(" ") || "-", s.pending.map(name).join(" ") || "-"])
        )
      )
    })
  )
).pipe(Command.withDescription("list the migrations applied and pending, per service"))

export const command = Command.make("migrate").pipe(
  Command.withDescription("the SQL services' tables: print, apply, inspect"),
  Command.withSubcommands([sql, up, status])
)

const migrationError = <A, R>(effect: Effect.Effect<A, { readonly cause: unknown }, R>) =>
  Effect.mapError(effect, (error) => new CliError({ message: `migration failed: ${describe(error.cause)}` }))

/** A cause in one line: its message, or the message of the error inside it. */
export const describe = (cause: unknown): string => {
  const inner = (cause as { readonly cause?: unknown }).cause
  const message = cause instanceof Error ? cause.message : String(cause)
  return inner instanceof Error && inner.message !== message ? `${message}: ${inner.message}` : message
}
