/**
 * The SQL implementations of the library's services, written against `@effect/sql`'s `SqlClient` and free
 * of any driver: they run on the client a backend's entry point provides (`effect-eventsourcing/pg`,
 * `/sqlite` or `/mysql`), so that a user installs only the driver of the database they use.
 */
export * as HotPath from "./HotPath.js"
export * as SqlCheckpointStore from "./SqlCheckpointStore.js"
export * as SqlEventStore from "./SqlEventStore.js"
export * as SqlInbox from "./SqlInbox.js"
export * as SqlKeyStore from "./SqlKeyStore.js"
export * as SqlSagaStore from "./SqlSagaStore.js"
export * as SqlSnapshotStore from "./SqlSnapshotStore.js"
export * as SqlTransactions from "./SqlTransactions.js"
