/**
 * The `pg` side of the event store's hot path on PostgreSQL (see `sql/HotPath`):
 *
 * - **Named prepared statements.** `@effect/sql-pg` sends every statement unnamed, so the server parses
 *   and plans it on every call. A hot statement is instead sent as a named prepared statement, parsed and
 *   planned once per connection (about 50 µs less per append here), unless the Layer was told not to.
 * - **Straight on the pool.** Outside a transaction, a hot statement runs on a `pg` pool connection instead
 *   of going through `@effect/sql`'s statement machinery (a span, a scope, a connection acquired through
 *   Effect, the statement compiled again on every call): about 50 µs less CPU per append here, where the
 *   whole client side of an append costs about 100 µs.
 *
 * @internal
 */
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import pg from "pg"
import * as HotPath from "../../sql/HotPath.js"

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

/** Statements straight on `pool`, as named prepared statements when `prepared` (see the module doc). */
export const onPool =
  (pool: pg.Pool, prepared: boolean): HotPath.Run =>
  // no canceller: an interrupted caller stops waiting, and the pool takes the connection back when the
  // statement ends (`@effect/sql` would send a best-effort cancel; either way the outcome is unknown)
  (text, params, options) =>
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
        const query: pg.QueryConfig = { text, values: params as Array<unknown> }
        if (prepared && options?.prepare !== false) query.name = nameOf(text)
        if (options?.arrays === true) (query as pg.QueryArrayConfig).rowMode = "array"
        client!.query(query, (cause: Error | undefined, result: pg.QueryResult | undefined) =>
          cause === undefined || cause === null ? finish(undefined, result!.rows) : finish(cause, [])
        )
      })
    })
