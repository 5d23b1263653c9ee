/**
 * SQLite for the SQL services (`effect-eventsourcing/sql`): the client Layer with the settings they rely on
 * (one connection, handed out fairly). Needs `@effect/sql-sqlite-node`.
 */
export * as Sqlite from "./Sqlite.js"
