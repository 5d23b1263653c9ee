/**
 * What the PostgreSQL and SQLite dialect records share: `ON CONFLICT` clauses and `RETURNING` (MySQL has
 * neither, see its record).
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import type { SqlDialect } from "./dialect.js"

/** The members of a dialect record written with `ON CONFLICT` and `RETURNING`. */
export const statements = (
  sql: SqlClient.SqlClient
): Pick<SqlDialect, "onConflictIgnore" | "onConflictUpdate" | "insertNew" | "matched" | "updateReturning"> => {
  const columns = (names: ReadonlyArray<string>) => sql.csv(names.map((name) => sql`${sql(name)}`))
  const ignore = (key: ReadonlyArray<string>) => sql`on conflict (${columns(key)}) do nothing`
  return {
    onConflictIgnore: ignore,
    onConflictUpdate: (key, updated) =>
      sql`on conflict (${columns(key)}) do update set ${sql.csv(
        updated.map((column) => sql`${sql(column)} = excluded.${sql(column)}`)
      )}`,
    insertNew: (table, row, key) =>
      Effect.map(
        sql`insert into ${sql(table)} ${sql.insert(row)} ${ignore(key)} returning 1`,
        (rows) => rows.length > 0
      ),
    matched: (statement) => Effect.map(sql`${statement} returning 1`, (rows) => rows.length),
    updateReturning: <Row extends object>(update: Statement.Statement<unknown>, returned: Statement.Fragment) =>
      sql<Row>`${update} returning ${returned}`
  }
}
