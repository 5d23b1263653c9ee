/**
 * The `ON CONFLICT` clauses PostgreSQL and SQLite share (see their dialect records).
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as Statement from "@effect/sql/Statement"

/** The end of an INSERT whose rows are skipped when their `key` is taken. */
export const ignore = (sql: SqlClient.SqlClient, key: ReadonlyArray<string>): Statement.Fragment =>
  sql`on conflict (${columns(sql, key)}) do nothing`

/** The end of an INSERT whose rows, when their `key` is taken, set the stored row's `updated` columns to theirs. */
export const update = (
  sql: SqlClient.SqlClient,
  key: ReadonlyArray<string>,
  updated: ReadonlyArray<string>
): Statement.Fragment =>
  sql`on conflict (${columns(sql, key)}) do update set ${sql.csv(
    updated.map((column) => sql`${sql(column)} = excluded.${sql(column)}`)
  )}`

const columns = (sql: SqlClient.SqlClient, names: ReadonlyArray<string>) =>
  sql.csv(names.map((name) => sql`${sql(name)}`))
