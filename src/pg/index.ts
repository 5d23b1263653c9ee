/**
 * PostgreSQL for the SQL services (`effect-eventsourcing/sql`): the client Layer with the settings they rely
 * on, the event store's fast path on its pool, and LISTEN/NOTIFY wake-ups. Needs `@effect/sql-pg` and `pg`.
 */
export * as Postgres from "./Postgres.js"
