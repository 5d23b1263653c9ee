/**
 * A PostgreSQL client Layer with the settings the SQL services rely on.
 *
 * `idle_in_transaction_session_timeout` is set on every connection: a transaction left open holds back
 * the read horizon of every `readAll` reader in the cluster (see `SqlEventStore`), so the server ends a
 * session that sits idle inside a transaction longer than that.
 */
import { PgClient } from "@effect/sql-pg"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Duration from "effect/Duration"
import type * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"

/** Options of {@link layer}. */
export interface Options {
  /** `postgres://user@host:port/database` */
  readonly url: string | Redacted.Redacted
  /** Pool size; default 10. */
  readonly maxConnections?: number
  /** Server-side bound on idle-in-transaction time; default 60 seconds. */
  readonly idleInTransactionTimeout?: Duration.DurationInput
  readonly applicationName?: string
}

/** `PgClient` and `SqlClient` for the SQL services. */
export const layer = (options: Options): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, SqlError> => {
  const url = new URL(typeof options.url === "string" ? options.url : Redacted.value(options.url))
  const idle = Duration.toMillis(Duration.decode(options.idleInTransactionTimeout ?? "60 seconds"))
  const settings = `-c idle_in_transaction_session_timeout=${Math.round(idle)}`
  const existing = url.searchParams.get("options")
  url.searchParams.set("options", existing === null ? settings : `${existing} ${settings}`)
  return PgClient.layer({
    url: Redacted.make(url.toString()),
    maxConnections: options.maxConnections ?? 10,
    applicationName: options.applicationName ?? "effect-eventsourcing"
  })
}
