/**
 * Guarded transactions for an `SqlClient` of your own: `@effect/sql`'s `withTransaction` turns a failed
 * COMMIT or ROLLBACK into a defect, and a guarded client's makes it a typed failure. The client Layers of
 * the backends (`Postgres.layer`, `Sqlite.layer`, `Mysql.layer`) provide guarded clients already; a client
 * built otherwise (`PgClient.layer`, `MysqlClient.layer`, ...) is left as it is, unless you provide
 * {@link layerGuarded}. Guarding never alters a client: it makes a guarded copy ({@link guard}).
 *
 * The SQL services guard their own transactions whatever the client; this module is about yours (a
 * `sql.withTransaction` around an append, your own writes).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { guardTransactions, isGuarded as isGuardedClient } from "./transaction.js"

/**
 * A copy of `client` whose `withTransaction` is guarded (see {@link layerGuarded}); `client` itself is left
 * as it was. The copy is callable like the client and keeps every member of it, driver ones included (a
 * `PgClient`'s `json`, `listen`, `notify`), on the same pool: statements of either join a transaction of
 * the other. A guarded client is returned as it is.
 */
export const guard: <C extends SqlClient.SqlClient>(client: C) => C = guardTransactions

/** Whether `client`'s transactions are guarded (a client of a backend's Layer, or one {@link guard} made). */
export const isGuarded: (client: SqlClient.SqlClient) => boolean = isGuardedClient

/**
 * Replaces the `SqlClient` service with a guarded copy of it ({@link guard}): a transaction whose COMMIT
 * or ROLLBACK fails is a typed failure, never a defect.
 *
 * Why: `@effect/sql`'s `withTransaction` runs COMMIT and ROLLBACK under `Effect.orDie`. On a connection that
 * is gone (a terminated backend, a killed connection, a server restart) the ROLLBACK after a failed
 * statement fails too, so a `sql.withTransaction` around an append that failed with a typed, transient
 * `EventStoreError` dies instead, and retries and error handling never see it. Guarded, the transaction
 * fails with its body's own error when its ROLLBACK failed (the server ends a transaction whose connection
 * is gone), and with a typed `SqlError` when its COMMIT failed (it may or may not have committed).
 *
 * When: only with a client you build yourself. `Postgres.layer`, `Sqlite.layer` and `Mysql.layer` guard
 * theirs already (providing this on top of them changes nothing). Provide it between your client and
 * everything that uses it, merged, so that your own code gets the guarded client too:
 *
 * ```ts
 * const Client = SqlTransactions.layerGuarded.pipe(Layer.provideMerge(PgClient.layer({ url })))
 * const Stores = SqlEventStore.layer().pipe(Layer.provideMerge(Client))
 * ```
 *
 * **Gotchas**: only the `SqlClient` service is replaced. The driver's own tag (`PgClient`, `MysqlClient`,
 * `SqliteClient`) still holds the unguarded client, so a transaction run through it can still die on a
 * failed ROLLBACK; guard it yourself if you use it for transactions
 * (`Layer.effect(PgClient.PgClient, Effect.map(PgClient.PgClient, SqlTransactions.guard))`). Without this
 * Layer, the SQL services still guard their own transactions, but a `sql.withTransaction` of yours around
 * them is `@effect/sql`'s: a lost connection inside it is a defect.
 */
export const layerGuarded: Layer.Layer<SqlClient.SqlClient, never, SqlClient.SqlClient> = Layer.effect(
  SqlClient.SqlClient,
  Effect.map(SqlClient.SqlClient, guardTransactions)
)
