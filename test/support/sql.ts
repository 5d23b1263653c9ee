/**
 * SQL test databases: the shared PostgreSQL with a schema per test file (dropped afterwards) and SQLite
 * in memory or in a temporary file.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Mysql from "../../src/mysql/Mysql.js"
import * as Postgres from "../../src/pg/Postgres.js"
import * as Sqlite from "../../src/sqlite/Sqlite.js"
import { mysqlUrl, pgUrl } from "./config.js"

/**
 * A client of the shared PostgreSQL (`options` override the defaults); `schema` is dropped when the Layer
 * is released (through a connection of its own, since the client's pool may already be closed by then).
 */
export const pgWithSchema = (schema: string, options: Partial<Postgres.Options> = {}) => {
  const url = options.url ?? pgUrl
  const client = Postgres.layer({ url, maxConnections: 20, ...options })
  const dropSchema = Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql`drop schema if exists ${sql(schema)} cascade`
  ).pipe(Effect.provide(Postgres.layer({ url, maxConnections: 1 })), Effect.orDie)
  return Layer.merge(client, Layer.scopedDiscard(Effect.addFinalizer(() => dropSchema))).pipe(Layer.orDie)
}

/**
 * A database of its own on the shared PostgreSQL, for an application that uses the default schema and table
 * names (the bank): its URL. Dropped (its connections ended) when the scope closes.
 */
export const freshPgDatabase = (prefix: string) =>
  Effect.gen(function* () {
    const database = `${prefix}_${process.pid}_${Math.floor(Math.random() * 1e9)}`
    const admin = (statement: string) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statement)).pipe(
        Effect.provide(Postgres.layer({ url: pgUrl, maxConnections: 1 })),
        Effect.orDie
      )
    yield* Effect.acquireRelease(admin(`create database ${database}`), () =>
      admin(`drop database if exists ${database} with (force)`)
    )
    return pgUrl.replace(/\/[^/]*$/, `/${database}`)
  })

/** SQLite in a fresh temporary file, deleted when the Layer is released. */
export const sqliteFile = Layer.unwrapScoped(
  Effect.gen(function* () {
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "ees-sqlite-"))),
      (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
    )
    return Sqlite.layer({ filename: path.join(dir, "events.db") })
  })
).pipe(Layer.orDie)

export const sqliteMemory = Sqlite.layer({ filename: ":memory:" }).pipe(Layer.orDie)

/**
 * A client of the shared MariaDB whose tables all start with `prefix` (a test file's own), dropped when
 * the Layer is released.
 */
export const mysqlWithPrefix = (prefix: string, url: string = mysqlUrl) => {
  const dropTables = Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ readonly name: string }>`
      select table_name as name from information_schema.tables
      where table_schema = database() and table_name like ${`${prefix.replace(/_/g, "\\_")}%`}`
    for (const { name } of rows) yield* sql`drop table if exists ${sql(name)}`
  }).pipe(Effect.provide(Mysql.layer({ url, maxConnections: 1 })), Effect.orDie)
  return Layer.merge(
    Mysql.layer({ url, maxConnections: 20 }),
    Layer.scopedDiscard(Effect.addFinalizer(() => dropTables))
  ).pipe(Layer.orDie)
}
