/**
 * The `pg` side of the event store's hot path on PostgreSQL (see `sql/HotPath`):
 *
 * - **Named prepared statements.** `@effect/sql-pg` sends every statement unnamed, so the server parses
 *   and plans it on every call. A statement whose text starts with `HotPath.marker` is instead sent as a
 *   named prepared statement, parsed and planned once per connection (about 50 µs less per append here).
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

/** A `pg` client that runs marked statements as named prepared statements, and everything else as given. */
export class PreparingClient extends pg.Client {
  // `any`: this stands in for every overload of `pg.Client.query`, and passes each call through
  override query(config: any, values?: any, callback?: any): any {
    return typeof config === "string" && config.startsWith(HotPath.marker)
      ? super.query({ name: nameOf(config), text: config, values }, callback)
      : super.query(config, values, callback)
  }
}

/** Statements straight on `pool` (see the module doc). */
export const onPool =
  (pool: pg.Pool): HotPath.Run =>
  // no canceller: an interrupted caller stops waiting, and the pool takes the connection back when the
  // statement ends (`@effect/sql` would send a best-effort cancel; either way the outcome is unknown)
  (text, params) =>
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
