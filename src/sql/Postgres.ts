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
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as Wakeup from "../Wakeup.js"

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

/** Options of {@link layerWakeup}. */
export interface WakeupOptions {
  /** LISTEN/NOTIFY channel; default `"effect_eventsourcing"`. Stores sharing a database may use their own. */
  readonly channel?: string
  /** Least time between two NOTIFYs sent by this process; default 10 ms (hints in between are merged). */
  readonly coalesce?: Duration.DurationInput
}

/**
 * Wake-up hints across processes: a hint is published in process at once and sent as a NOTIFY after
 * commit, outside any append transaction (a NOTIFY inside one would serialize commits cluster-wide),
 * merging hints that arrive while one is being sent. Each process LISTENs and relays what it hears to
 * its readers, re-listening after connection losses. Needs the `PgClient` (see {@link layer}).
 */
export const layerWakeup = (options: WakeupOptions = {}): Layer.Layer<Wakeup.Wakeup, never, PgClient.PgClient> =>
  Layer.scoped(
    Wakeup.Wakeup,
    Effect.gen(function* () {
      const pg = yield* PgClient.PgClient
      const channel = options.channel ?? "effect_eventsourcing"
      const coalesce = options.coalesce ?? "10 millis"
      const local = yield* Wakeup.make
      const pending = yield* Queue.sliding<void>(1)
      yield* Queue.take(pending).pipe(
        // not `pg.notify`: NOTIFY takes no bind parameters, and listeners drop empty payloads
        Effect.zipRight(pg`select pg_notify(${channel}, 'hint')`),
        Effect.catchAll((error) => Effect.logWarning("wake-up NOTIFY failed; readers fall back to polling", error)),
        Effect.zipRight(Effect.sleep(coalesce)),
        Effect.forever,
        Effect.forkScoped
      )
      // each (re)listen starts with a hint: events committed while not listening are read at once
      yield* Effect.zipRight(local.notify, pg.listen(channel).pipe(Stream.runForEach(() => local.notify))).pipe(
        Effect.catchAll((error) => Effect.logWarning("wake-up LISTEN lost; listening again", error)),
        Effect.zipRight(Effect.sleep("1 second")),
        Effect.forever,
        Effect.forkScoped
      )
      return Wakeup.Wakeup.of({
        notify: Effect.zipRight(local.notify, Effect.asVoid(Queue.offer(pending, undefined))),
        subscribe: local.subscribe
      })
    })
  )
