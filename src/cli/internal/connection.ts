/**
 * The CLI's database: `--url` (`postgres://`, `mysql://`/`mariadb://`, or an SQLite file path) with the
 * same `--schema` / `--table-prefix` as the Layers. A backend's entry point is imported only when its URL
 * is given, so the CLI needs only the driver of the database it talks to.
 *
 * @internal
 */
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { type TableOptions, tables } from "../../sql/migrations.js"
import { CliError } from "./output.js"

/** The options every command that talks to a database takes. */
export const options = {
  url: Options.text("url").pipe(
    Options.withDescription("the database: postgres://user@host:port/db, mysql://user@host:port/db, or an SQLite file")
  ),
  schema: Options.text("schema").pipe(
    Options.withDescription("PostgreSQL schema of the tables (default: the connection's search path)"),
    Options.optional
  ),
  tablePrefix: Options.text("table-prefix").pipe(
    Options.withDescription("prefix of every table name"),
    Options.withDefault("es_")
  )
}

export interface Connection {
  readonly url: string
  readonly schema: Option.Option<string>
  readonly tablePrefix: string
}

/** The backend a URL names. */
export const backendOf = (url: string): "pg" | "mysql" | "sqlite" =>
  /^postgres(ql)?:\/\//i.test(url) ? "pg" : /^(mysql|mariadb):\/\//i.test(url) ? "mysql" : "sqlite"

/** The table options of a connection, validated (a bad name, or a schema off PostgreSQL, is refused). */
export const tableOptions = (connection: Connection): Effect.Effect<TableOptions, CliError> => {
  const options: TableOptions = {
    tablePrefix: connection.tablePrefix,
    ...Option.match(connection.schema, { onNone: () => ({}), onSome: (schema) => ({ schema }) })
  }
  if (Option.isSome(connection.schema) && backendOf(connection.url) !== "pg") {
    return Effect.fail(new CliError({ message: "--schema is PostgreSQL-only; use --table-prefix" }))
  }
  return Effect.as(
    Effect.mapError(tables(options), (error) => new CliError({ message: String(error.cause) })),
    options
  )
}

/**
 * The `SqlClient` for the URL, from the backend's own entry point. `create: false` refuses an SQLite file
 * that does not exist (instead of creating an empty database); the client is checked to answer.
 */
export const layer = (
  connection: Connection,
  options: { readonly create: boolean }
): Layer.Layer<SqlClient.SqlClient, CliError, FileSystem.FileSystem> =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const url = connection.url
      switch (backendOf(url)) {
        case "pg": {
          const { Postgres } = yield* load(() => import("../../pg/index.js"), "PostgreSQL", "@effect/sql-pg pg")
          return Postgres.layer({ url: Redacted.make(url), maxConnections: 2 })
        }
        case "mysql": {
          const { Mysql } = yield* load(() => import("../../mysql/index.js"), "MySQL/MariaDB", "@effect/sql-mysql2")
          return Mysql.layer({ url: Redacted.make(url.replace(/^mariadb:/i, "mysql:")), maxConnections: 2 })
        }
        case "sqlite": {
          const fs = yield* FileSystem.FileSystem
          if (!options.create && !(yield* Effect.orElseSucceed(fs.exists(url), () => false))) {
            return yield* new CliError({ message: `no SQLite database at ${url}` })
          }
          const { Sqlite } = yield* load(() => import("../../sqlite/index.js"), "SQLite", "@effect/sql-sqlite-node")
          return Sqlite.layer({ filename: url })
        }
      }
    })
  ).pipe(Layer.catchAll((error) => Layer.fail(error instanceof CliError ? error : unreachable(connection.url, error))))

/**
 * Runs `effect` on the database of `connection`, once it answered a first query (so an unreachable one is
 * one clear error before anything else runs).
 */
export const withDatabase = <A, E, R>(
  connection: Connection,
  options: { readonly create: boolean },
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | CliError, FileSystem.FileSystem | Exclude<R, SqlClient.SqlClient>> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.mapError(sql`select 1`, (error) => unreachable(connection.url, error))
  ).pipe(Effect.zipRight(effect), Effect.provide(layer(connection, options)))

const load = <A>(importer: () => Promise<A>, backend: string, packages: string) =>
  Effect.tryPromise({
    try: importer,
    catch: () => new CliError({ message: `the ${backend} driver is not installed: npm install ${packages}` })
  })

/** A database that could not be reached, in one line, without the URL's password. */
const unreachable = (url: string, error: unknown): CliError => {
  const cause = (error as { readonly cause?: { readonly message?: unknown } }).cause?.message
  const message = typeof cause === "string" ? cause : error instanceof Error ? error.message : String(error)
  return new CliError({ message: `cannot connect to ${redact(url)}: ${message}` })
}

const redact = (url: string) => url.replace(/\/\/([^:@/]+):[^@/]*@/, "//$1:***@")
