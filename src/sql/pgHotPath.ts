/**
 * The event store's hot statements on PostgreSQL (the append calls), made cheaper in two ways:
 *
 * - **Named prepared statements.** `@effect/sql-pg` sends every statement unnamed, so the server parses
 *   and plans it on every call. A statement whose text starts with {@link marker} is instead sent as a
 *   named prepared statement, parsed and planned once per connection (about 50 µs less per append here).
 *   Only statements whose plan cannot depend on their arguments are marked, and their texts are fixed
 *   per store, so each connection holds a small, bounded set of them.
 * - **Straight on the pool.** Outside a transaction, a hot statement runs on a `pg` pool connection instead
 *   of going through `@effect/sql`'s statement machinery (a span, a scope, a connection acquired through
 *   Effect, the statement compiled again on every call): about 50 µs less CPU per append here, where the
 *   whole client side of an append costs about 100 µs. This needs the pool, so it applies to clients
 *   `Postgres.layer` made (it registers them); on any other `SqlClient` the statement goes through it.
 *   Inside a transaction the statement always goes through the client, on the transaction's connection.
 *
 * @internal
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import pg from "pg"

/** The leading comment that marks a statement to be prepared. */
export const marker = "/* prepared */ "

/** Statement text -> its name; a text keeps its name on every connection. */
const names = new Map<string, string>()

const nameOf = (text: string): string => {
  let name = names.get(text)
  if (name === undefined) {
    name = `effect_eventsourcing_${names.size + 1}`
    names.set(text, name)
  }
  return name
}

/** A `pg` client that runs marked statements as named prepared statements, and everything else as given. */
export class PreparingClient extends pg.Client {
  // `any`: this stands in for every overload of `pg.Client.query`, and passes each call through
  override query(config: any, values?: any, callback?: any): any {
    return typeof config === "string" && config.startsWith(marker)
      ? super.query({ name: nameOf(config), text: config, values }, callback)
      : super.query(config, values, callback)
  }
}

/** The pools behind the clients `Postgres.layer` made. */
const pools = new WeakMap<SqlClient.SqlClient, pg.Pool>()

/** Records that `client` runs on `pool`, so that hot statements on it may run on the pool directly. */
export const register = (client: SqlClient.SqlClient, pool: pg.Pool): void => void pools.set(client, pool)

/** The pool behind `client`, if `Postgres.layer` made it. */
export const poolOf = (client: SqlClient.SqlClient): pg.Pool | undefined => pools.get(client)

/** Runs one statement (text and parameters), answering its rows. */
export type Run = (text: string, params: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<any>, SqlError>

/** The two ways to run a hot statement on `sql`. */
export interface Runners {
  /** Through the client: the only way inside a transaction. No `sql.execute` span: the operation has its own. */
  readonly viaClient: Run
  /** Straight on the pool behind `sql` if there is one, else through the client; never inside a transaction. */
  readonly outsideTransaction: Run
}

/** How hot statements run on `sql`. */
export const runners = (sql: SqlClient.SqlClient): Runners => {
  const viaClient: Run = (text, params) => Effect.withTracerEnabled(sql.unsafe(text, params), false)
  const pool = pools.get(sql)
  if (pool === undefined) return { viaClient, outsideTransaction: viaClient }
  // no canceller: an interrupted caller stops waiting, and the pool takes the connection back when the
  // statement ends (`@effect/sql` would send a best-effort cancel; either way the outcome is unknown)
  const onPool: Run = (text, params) =>
    Effect.async((resume) => {
      const failed = (cause: Error) =>
        resume(Effect.fail(new SqlError({ cause, message: "Failed to execute statement" })))
      pool.connect((connectError, client, release) => {
        if (connectError !== undefined && connectError !== null) return failed(connectError)
        // the connection may break while the statement runs: then it errors (as `pool.query` handles it;
        // an 'error' event without a listener would crash the process) and the statement may never answer
        let released = false
        const finish = (cause: Error | undefined, rows: ReadonlyArray<any>) => {
          if (released) return
          released = true
          client!.removeListener("error", onError)
          if (cause === undefined) {
            release()
            return resume(Effect.succeed(rows))
          }
          // an error the server answered for the statement alone (severity ERROR: a refusal, a constraint)
          // leaves the connection good; any other (FATAL, the connection broke) has the pool close it
          release(cause instanceof pg.DatabaseError && cause.severity === "ERROR" ? undefined : cause)
          failed(cause)
        }
        const onError = (cause: Error) => finish(cause, [])
        client!.once("error", onError)
        client!.query(text, params as Array<unknown>, (cause: Error | undefined, result: pg.QueryResult | undefined) =>
          cause === undefined || cause === null ? finish(undefined, result!.rows) : finish(cause, [])
        )
      })
    })
  return { viaClient, outsideTransaction: onPool }
}
