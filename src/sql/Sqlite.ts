/**
 * An SQLite client Layer for the embedded default: a file (or `:memory:`) in WAL mode with full
 * synchronous commits, so an acknowledged append survives a power loss.
 *
 * **Gotchas**: one process writes a database file at a time; within the process, the client serializes
 * transactions on its single connection. `:memory:` lives as long as the Layer.
 */
import { SqliteClient } from "@effect/sql-sqlite-node"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** Options of {@link layer}. */
export interface Options {
  /** Database file path, or `":memory:"`. */
  readonly filename: string
  /** `FULL` (default) survives power loss; `NORMAL` in WAL mode only survives process crashes. */
  readonly synchronous?: "FULL" | "NORMAL"
}

/** `SqliteClient` and `SqlClient` for the SQL services. */
export const layer = (
  options: Options
): Layer.Layer<SqliteClient.SqliteClient | SqlClient.SqlClient, ConfigError.ConfigError | SqlError> =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe(`pragma synchronous = ${options.synchronous === "NORMAL" ? "NORMAL" : "FULL"}`)
      yield* sql`pragma busy_timeout = 5000`
    })
  ).pipe(Layer.provideMerge(SqliteClient.layer({ filename: options.filename })))
