/**
 * SQL implementations of the library's services, written against `@effect/sql`'s `SqlClient`, and client
 * Layers configured for them. A separate entry point (`effect-eventsourcing/sql`) so that users of the
 * core modules do not load database drivers.
 */
export * as Mysql from "./Mysql.js"
export * as Postgres from "./Postgres.js"
export * as SqlCheckpointStore from "./SqlCheckpointStore.js"
export * as SqlEventStore from "./SqlEventStore.js"
export * as SqlInbox from "./SqlInbox.js"
export * as SqlSagaStore from "./SqlSagaStore.js"
export * as SqlSnapshotStore from "./SqlSnapshotStore.js"
export * as Sqlite from "./Sqlite.js"
