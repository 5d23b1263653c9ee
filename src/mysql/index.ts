/**
 * MySQL and MariaDB for the SQL services (`effect-eventsourcing/sql`): the client Layer with the settings
 * they rely on. Needs `@effect/sql-mysql2`.
 */
export * as Mysql from "./Mysql.js"
