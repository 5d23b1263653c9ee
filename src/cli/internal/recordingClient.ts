/**
 * An `SqlClient` of a dialect that runs nothing: it records every statement, with its parameters written
 * in as literals, and answers every query with no rows. `migrate sql` runs the migrations on it to print
 * their SQL without a database.
 *
 * @internal
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"

export type Dialect = "pg" | "sqlite" | "mysql"

/** A client of `dialect` and the statements it recorded so far. */
export const make = (
  dialect: Dialect
): Effect.Effect<{ readonly client: SqlClient.SqlClient; readonly statements: ReadonlyArray<string> }> => {
  const statements: Array<string> = []
  const record = (sql: string, params: ReadonlyArray<unknown>) =>
    Effect.sync(() => {
      statements.push(inline(dialect, sql, params))
      return [] as Array<never>
    })
  const connection: Connection = {
    execute: record,
    executeRaw: record,
    executeUnprepared: record,
    executeValues: record,
    executeStream: (sql, params) => Stream.drain(Stream.fromEffect(record(sql, params)))
  }
  return SqlClient.make({
    acquirer: Effect.succeed(connection),
    compiler: compilers[dialect](),
    spanAttributes: []
  }).pipe(
    Effect.map((client) => ({ client, statements })),
    Effect.provide(Reactivity.layer)
  )
}

const compilers: Record<Dialect, () => Statement.Compiler> = {
  pg: () =>
    Statement.makeCompiler({
      dialect: "pg",
      placeholder: (index) => `$${index}`,
      onIdentifier: Statement.defaultEscape('"'),
      onRecordUpdate: () => ["", []],
      onCustom: () => ["", []]
    }),
  mysql: () =>
    Statement.makeCompiler({
      dialect: "mysql",
      placeholder: () => "?",
      onIdentifier: Statement.defaultEscape("`"),
      onRecordUpdate: () => ["", []],
      onCustom: () => ["", []]
    }),
  sqlite: () => Statement.makeCompilerSqlite()
}

/** `sql` with each placeholder replaced by its parameter as a literal (quoted text and identifiers are skipped). */
export const inline = (dialect: Dialect, sql: string, params: ReadonlyArray<unknown>): string => {
  if (params.length === 0) return sql
  let out = ""
  let next = 0
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i]!
    if (c === "'" || c === '"' || c === "`") {
      const end = sql.indexOf(c, i + 1)
      const stop = end === -1 ? sql.length - 1 : end
      out += sql.slice(i, stop + 1)
      i = stop
    } else if (dialect === "pg" && c === "$" && /[0-9]/.test(sql[i + 1] ?? "")) {
      const digits = /^[0-9]+/.exec(sql.slice(i + 1))![0]
      out += literal(dialect, params[Number(digits) - 1])
      i += digits.length
    } else if (dialect !== "pg" && c === "?") {
      out += literal(dialect, params[next++])
    } else {
      out += c
    }
  }
  return out
}

const literal = (dialect: Dialect, value: unknown): string => {
  if (value === null || value === undefined) return "NULL"
  if (typeof value === "number" || typeof value === "bigint") return String(value)
  if (typeof value === "boolean") return dialect === "pg" ? String(value) : value ? "1" : "0"
  if (value instanceof Date) return literal(dialect, value.toISOString())
  const text = typeof value === "string" ? value : JSON.stringify(value)
  const escaped = text.replaceAll("'", "''")
  return `'${dialect === "mysql" ? escaped.replaceAll("\\", "\\\\") : escaped}'`
}
