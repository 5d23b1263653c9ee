/**
 * Where a driver error enters the library: whether it is worth retrying (transient) or can never succeed
 * unchanged (permanent), decided once from the driver's codes, the only place they are read.
 *
 * - **Permanent**: the server refused the statement or its data. PostgreSQL SQLSTATE classes 0A (not
 *   supported), 22 (data), 23 (integrity), 2F/3F/P0 (routines, schemas), 42 (syntax, access), 54
 *   (program limits: a jsonb value or an argument too large) and ES (the append function's own refusals,
 *   see `pg/internal/functions`), and 25P02 (a statement in a transaction that already failed); MySQL/MariaDB
 *   errors of the same kinds (a packet over `max_allowed_packet`, too many placeholders, bad data,
 *   syntax); SQLite's constraint, mismatch, range, too-big and plain errors (too many variables, syntax),
 *   and a damaged file.
 * - **Transient**: everything else, above all a lost connection (a server restart, a terminated backend,
 *   a killed connection: often an error without any code), a deadlock, a lock or statement timeout, a busy
 *   database, a server out of connections.
 *
 * @internal
 */
import { EventStoreError } from "../EventStore.js"

/** Whether the failure behind `error` (an `SqlError`, or the driver's own error) may pass if retried. */
export const isTransient = (error: unknown): boolean => {
  const driver = driverError(error)
  if (driver === undefined) return true
  const { code, errno, sqlState } = driver
  // mysql2: a server error has its number and SQLSTATE (client-side errors, a lost connection, have neither)
  if (typeof errno === "number" && errno > 0 && typeof sqlState === "string") return !permanentMysql.has(errno)
  if (typeof code !== "string") return true
  if (code.startsWith("SQLITE_")) return !permanentSqlite.test(code)
  if (/^[0-9A-Z]{5}$/.test(code)) return !permanentSqlState.test(code)
  return true
}

/** An `EventStoreError` for a driver failure, saying whether it is transient. */
export const storeError = (operation: string) => (cause: unknown) =>
  new EventStoreError({ operation, cause, transient: isTransient(cause) })

/**
 * Whether the failure is a statement refused because its transaction had already failed (PostgreSQL
 * 25P02: the work in it went on after a statement failed), so that the transaction can only roll back.
 */
export const isAbortedTransaction = (error: unknown): boolean => driverError(error)?.code === "25P02"

/**
 * Whether an INSERT was refused for a key already taken: on MySQL/MariaDB, one a transaction reading its
 * snapshot could not foresee (the rows are there, committed since); on SQLite, one not looked for first.
 */
export const isDuplicateKey = (error: unknown): boolean => {
  const driver = driverError(error)
  return driver?.errno === 1062 || driver?.code === "SQLITE_CONSTRAINT_UNIQUE"
}

/** Whether InnoDB rolled the whole transaction back, to break a lock cycle or after a lock wait timeout. */
export const isDeadlock = (error: unknown): boolean => {
  const errno = driverError(error)?.errno
  return errno === 1213 || errno === 1205
}

interface DriverError {
  readonly code?: unknown
  readonly errno?: unknown
  readonly sqlState?: unknown
}

/** The innermost error with a code, through `SqlError`s (and defects made typed again) wrapping it. */
const driverError = (error: unknown): DriverError | undefined => {
  let current: unknown = error
  for (let depth = 0; depth < 8 && typeof current === "object" && current !== null; depth++) {
    const candidate = current as DriverError & { readonly _tag?: unknown; readonly cause?: unknown }
    if (candidate._tag !== "SqlError" && (candidate.code !== undefined || candidate.errno !== undefined)) {
      return candidate
    }
    current = candidate.cause
  }
  return undefined
}

const permanentSqlState = /^(0A|22|23|2F|3F|42|54|P0|ES)|^25P02$/

const permanentSqlite = /^SQLITE_(CONSTRAINT|MISMATCH|RANGE|TOOBIG|ERROR|CORRUPT|NOTADB|FORMAT)/

/** MySQL/MariaDB errors that no retry passes. */
const permanentMysql = new Set([
  1048, // column cannot be null
  1054, // unknown column
  1062, // duplicate entry
  1064, // syntax error
  1118, // row size too large
  1146, // no such table
  1153, // packet bigger than max_allowed_packet
  1264, // out of range value
  1292, // incorrect value
  1301, // result larger than max_allowed_packet
  1366, // incorrect string value
  1390, // too many placeholders (65,535)
  1406, // data too long for column
  1451, // row referenced by a foreign key
  1452, // foreign key fails
  3140, // invalid JSON text (MySQL)
  4025 // CHECK constraint failed (MariaDB's JSON check)
])
