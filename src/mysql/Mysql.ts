/**
 * A MySQL/MariaDB client Layer (`@effect/sql-mysql2`) for the SQL services.
 *
 * Every SQL service has a MySQL dialect: the event store (see `serialAppend` for its global order), the
 * snapshot, checkpoint and saga stores, and the inbox.
 *
 * **Gotchas**: tables are InnoDB with utf8mb4 text; key columns use the `utf8mb4_nopad_bin` collation
 * (exact: case and trailing spaces count), which MariaDB has (10.2+) and MySQL 8 has not (there, create
 * the tables yourself with `utf8mb4_0900_bin`). Timeout claims use `SKIP LOCKED` (MariaDB 10.6+, MySQL 8).
 * Stores are isolated by `tablePrefix` (the `schema` option is PostgreSQL's) in the URL's database.
 */
import { MysqlClient } from "@effect/sql-mysql2"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { guardTransactions } from "../sql/transaction.js"

/** Options of {@link layer}. */
export interface Options {
  /** `mysql://user:password@host:port/database` */
  readonly url: string | Redacted.Redacted
  /** Pool size; default 10. */
  readonly maxConnections?: number
}

/**
 * `MysqlClient` and `SqlClient` for the SQL services: one client under both tags, whose transactions never
 * die on a failed COMMIT or ROLLBACK (a connection killed inside one): they fail with their own error, or a
 * typed `SqlError` (see `SqlTransactions`).
 */
export const layer = (
  options: Options
): Layer.Layer<MysqlClient.MysqlClient | SqlClient.SqlClient, ConfigError.ConfigError | SqlError> =>
  MysqlClient.layer({
    url: typeof options.url === "string" ? Redacted.make(options.url) : options.url,
    maxConnections: options.maxConnections ?? 10
  }).pipe(
    Layer.map((context) => {
      // one guarded copy under both tags (`MysqlClient.layer` provides one client under both)
      const client = guardTransactions(Context.get(context, MysqlClient.MysqlClient))
      return Context.make(MysqlClient.MysqlClient, client).pipe(Context.add(SqlClient.SqlClient, client))
    })
  )
