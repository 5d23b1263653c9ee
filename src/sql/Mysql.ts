/**
 * A MySQL/MariaDB client Layer (`@effect/sql-mysql2`) for the SQL services.
 *
 * **Gotchas**: only `SqlEventStore` has a MySQL dialect so far (the other SQL services refuse it with a
 * typed error when built). Tables need InnoDB and a utf8mb4 character set; key columns use the
 * `utf8mb4_nopad_bin` collation (MariaDB 10.2+). Stores are isolated by `tablePrefix` (the `schema` option
 * is PostgreSQL's); the database in the URL holds them.
 */
import { MysqlClient } from "@effect/sql-mysql2"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as ConfigError from "effect/ConfigError"
import type * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"

/** Options of {@link layer}. */
export interface Options {
  /** `mysql://user:password@host:port/database` */
  readonly url: string | Redacted.Redacted
  /** Pool size; default 10. */
  readonly maxConnections?: number
}

/** `MysqlClient` and `SqlClient` for the SQL services. */
export const layer = (
  options: Options
): Layer.Layer<MysqlClient.MysqlClient | SqlClient.SqlClient, ConfigError.ConfigError | SqlError> =>
  MysqlClient.layer({
    url: typeof options.url === "string" ? Redacted.make(options.url) : options.url,
    maxConnections: options.maxConnections ?? 10
  })
