/**
 * A PostgreSQL client Layer with the settings the SQL services rely on.
 *
 * `idle_in_transaction_session_timeout` is set on every connection: a transaction left open holds back
 * the read horizon of every `readAll` reader in the cluster (see `SqlEventStore`), so the server ends a
 * session that sits idle inside a transaction longer than that.
 *
 * TCP keepalive is on (first probe after 10 seconds idle): a connection whose server vanished without
 * closing it (a host gone, a network partition) is found dead and fails its statement with an error,
 * instead of waiting for a reply forever; how soon depends on the system's probe interval and count.
 *
 * Transactions of the client never die on a failed COMMIT or ROLLBACK (a connection lost inside one): the
 * transaction fails with its own error, or a typed `SqlError` (see `SqlTransactions`).
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import { PgClient } from "@effect/sql-pg"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import pg from "pg"
import * as HotPath from "../sql/HotPath.js"
import { guardTransactions } from "../sql/transaction.js"
import * as Wakeup from "../Wakeup.js"
import * as Hosts from "./internal/hosts.js"
import { onPool } from "./internal/poolHotPath.js"

/** Options of {@link layer}. */
export interface Options {
  /**
   * `postgres://user@host:port/database`. Several hosts, as libpq takes them, for a primary and its
   * standbys: `postgres://user@h1:5432,h2:5432/database?target_session_attrs=read-write`. Each new
   * connection then goes to the first host, in turn from the one that served last, that answers and whose
   * sessions have the `target_session_attrs` asked for (`any`, the default, `read-write`, `read-only`,
   * `primary`, `standby` or `prefer-standby`); a host is checked on a short connection of its own first
   * (up to 5 seconds). When none does, the statement fails with a transient error, and the next one tries
   * again: after a failover, connections go to the promoted standby (see docs/stores.md, "Replicas and
   * failover").
   */
  readonly url: string | Redacted.Redacted
  /** Pool size; default 10. */
  readonly maxConnections?: number
  /** Server-side bound on idle-in-transaction time; default 60 seconds. */
  readonly idleInTransactionTimeout?: Duration.DurationInput
  readonly applicationName?: string
  /**
   * Whether the event store's append calls outside transactions (its `HotPath`) run as named prepared
   * statements, parsed and planned once per connection instead of on every call; default true. Turn it
   * off behind a connection pooler that cannot keep prepared statements (PgBouncer in transaction mode
   * before version 1.21). Appends inside a transaction go through the client, unprepared.
   */
  readonly preparedStatements?: boolean
}

/** The `pg` pool behind the client {@link layer} made (its LISTEN connections are made like the pool's). */
export class Pool extends Context.Tag("effect-eventsourcing/pg/Pool")<Pool, pg.Pool>() {}

/**
 * `PgClient` and `SqlClient` for the SQL services, on a `pg` pool of its own (closed with the layer), and
 * the event store's `HotPath` on that pool: outside transactions, the store runs its append calls on the
 * pool directly, without `@effect/sql`'s per-statement work; everything else goes through the client.
 *
 * **Gotchas**: with `preparedStatements` on, a connection keeps the append calls' plans until it closes;
 * PostgreSQL re-plans them after a migration, but one that changed the append function's result columns
 * fails them until the connections are replaced.
 */
export const layer = (
  options: Options
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient | HotPath.HotPath | Pool, SqlError> => {
  const hosts = Hosts.parse(typeof options.url === "string" ? options.url : Redacted.value(options.url))
  const url = hosts.url
  const idle = Duration.toMillis(Duration.decode(options.idleInTransactionTimeout ?? "60 seconds"))
  const settings = `-c idle_in_transaction_session_timeout=${Math.round(idle)}`
  const existing = url.searchParams.get("options")
  url.searchParams.set("options", existing === null ? settings : `${existing} ${settings}`)
  const config: pg.PoolConfig = {
    connectionString: url.toString(),
    max: options.maxConnections ?? 10,
    application_name: options.applicationName ?? "effect-eventsourcing",
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    // several hosts, or sessions of a kind: each connection goes to the first host that fits (see `Options.url`)
    ...(hosts.targets.length > 1 || hosts.attrs !== "any"
      ? { Client: Hosts.clientClass(hosts.targets, hosts.attrs) as unknown as new () => pg.ClientBase }
      : {})
  }
  const pool = Effect.acquireRelease(
    Effect.sync(() => new pg.Pool(config).on("error", () => {})),
    // as `PgClient.layer` does: a pool that will not end in a second is left to the process's exit
    (pool) => Effect.promise(() => pool.end()).pipe(Effect.interruptible, Effect.timeoutOption("1 second"))
  ).pipe(
    // as `PgClient.layer` does: fail the layer, not the first statement, if the server cannot be reached in 5 s
    Effect.tap((pool) =>
      Effect.tryPromise({
        try: () => pool.query("select 1"),
        catch: (cause) => new SqlError({ cause, message: "PgClient: Failed to connect" })
      }).pipe(
        Effect.timeoutFail({
          duration: "5 seconds",
          onTimeout: () =>
            new SqlError({ cause: new Error("Connection timed out"), message: "PgClient: Connection timed out" })
        })
      )
    )
  )
  // as `PgClient.layerFromPool` does, with the pool and the store's hot path on it beside the client
  return Layer.scopedContext(
    Effect.gen(function* () {
      const acquired = yield* pool
      const client = guardTransactions(yield* PgClient.fromPool({ acquire: Effect.succeed(acquired) }))
      return Context.make(PgClient.PgClient, client).pipe(
        Context.add(SqlClient.SqlClient, client),
        Context.add(HotPath.HotPath, { outsideTransaction: onPool(acquired, options.preparedStatements !== false) }),
        Context.add(Pool, acquired)
      )
    })
  ).pipe(Layer.provide(Reactivity.layer))
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
 *
 * On a client {@link layer} made, the LISTEN has a connection of its own, watched: one that breaks, or
 * stops answering a query sent every 10 seconds, is replaced a second later (`@effect/sql-pg`'s own
 * listener does not notice a lost connection, which left readers on polling until a restart). On any
 * other `PgClient`, its listener is used.
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
      const pool = yield* Effect.serviceOption(Pool)
      // each (re)listen starts with a hint: events committed while not listening are read at once
      const listening: Effect.Effect<unknown, unknown> = Option.match(pool, {
        onNone: () => Effect.zipRight(local.notify, pg.listen(channel).pipe(Stream.runForEach(() => local.notify))),
        onSome: (pool) => listenOn(pool, channel, local.notify)
      })
      yield* listening.pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("wake-up LISTEN lost; listening again", cause)),
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

/**
 * LISTENs on a connection of its own until it breaks (an error, its end, or no answer to a query within
 * 5 seconds, asked every 10): then fails. `heard` runs for each notification, and once LISTEN is active.
 */
const listenOn = (pool: pg.Pool, channel: string, heard: Effect.Effect<void>): Effect.Effect<never, unknown> =>
  Effect.scoped(
    Effect.gen(function* () {
      const notifications = yield* Queue.sliding<void>(1)
      const broken = yield* Deferred.make<never, Error>()
      // the pool's own client class: with several hosts, the LISTEN connection follows a failover too
      const Client = (pool as unknown as { readonly Client?: typeof pg.Client }).Client ?? pg.Client
      const client = new Client({
        ...pool.options,
        application_name: `${pool.options.application_name ?? "effect-eventsourcing"}-listen`
      })
      // before connecting: an 'error' event without a listener would crash the process
      client.on("error", (error) => Deferred.unsafeDone(broken, Effect.fail(error)))
      client.on("end", () => Deferred.unsafeDone(broken, Effect.fail(new Error("the LISTEN connection ended"))))
      client.on("notification", (message) => {
        if (message.channel === channel) notifications.unsafeOffer(undefined)
      })
      yield* Effect.acquireRelease(
        Effect.tryPromise(() => client.connect()),
        () => Effect.promise(() => client.end().catch(() => undefined))
      )
      yield* Effect.tryPromise(() => client.query(`listen ${client.escapeIdentifier(channel)}`))
      yield* heard
      const relay = Effect.forever(Effect.zipRight(Queue.take(notifications), heard))
      const watch = Effect.sleep("10 seconds").pipe(
        Effect.zipRight(Effect.tryPromise(() => client.query("select 1"))),
        Effect.timeoutFail({
          duration: "15 seconds",
          onTimeout: () => new Error("the LISTEN connection stopped answering")
        }),
        Effect.forever
      )
      return yield* Effect.raceFirst(Deferred.await(broken), Effect.raceFirst(relay, watch))
    })
  )
